"""Drift scenarios for ``anomstream replay``: streams with a known change point.

- KDD ``abrupt``: normal connections of the 10% training file (the traffic the model learnt), in
  file order, then from event ``at`` on the whole ``corrected`` file in its order (its own normal
  traffic and its attack mix, 17 attack types unseen in training among them).
- KDD ``gradual``: the same two sources mixed over ``span`` events: event ``at + i`` comes from
  ``corrected`` with probability ``(i + 1) / span`` (seeded), then ``corrected`` only.
- KDD ``shift``: a shift of *normal* traffic: the 10% file's normal connections, then from event ``at``
  the normal connections of NSL-KDD's 20% training file (another capture's normal traffic), in file
  order, repeated as needed; ``shift-attacks``: the same, with the NSL file's attacks mixed in at
  the file's own share (its rows in file order). The new phase lasts ``SHIFT_EVENTS`` events unless
  ``--limit`` says otherwise.
- sensor ``level``: from window ``at`` on, every row of the series moves up by ``magnitude``
  standard deviations of its rows before the change (ramped over ``span`` events if given).
- sensor ``variance``: from window ``at`` on, deviations from the pre-change mean grow ``magnitude``
  times (ramped likewise). A multivariate series changes every channel, each measured on its own.
- a dataset schema's ``series``: the sensor scenarios on its series; its ``records``: the same two on
  every numeric feature, row ``at`` being the first changed one, measured in standard deviations of
  the rows before it (:func:`drifted_records`).

Each event carries the true change in its ``drift.phase`` header: ``before``, ``after``, or during a
gradual change the share of the new source (``"0.250"``), so detection delay can be measured from
the input topic alone: :func:`true_change_offsets` finds the first changed offset per partition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from producers.kdd import encode_rows
from producers.replay import Event, ReplayProducer, ReplayStats
from producers.sensor import event_count, sensor_events
from stream.datasets import find_kdd_file, is_attack, read_kdd
from stream.datasets.sensor import SensorSeries, load_sensor_series
from stream.errors import ConfigurationError
from stream.kafka import header, iter_topic
from stream.settings import Settings
from stream.windows import WindowSpec, window_end_rows

PHASE_HEADER = "drift.phase"
BEFORE, AFTER = "before", "after"
SCENARIOS: dict[str, tuple[str, ...]] = {
    "kdd": ("abrupt", "gradual", "shift", "shift-attacks"),
    "sensor": ("level", "variance"),
    # A dataset schema's stream, by its kind.
    "series": ("level", "variance"),
    "records": ("level", "variance"),
}
SHIFTS = ("shift", "shift-attacks")
SHIFT_EVENTS = 100_000  # events after the change of a shift scenario, when no --limit is given
DEFAULT_MAGNITUDE = {"level": 3.0, "variance": 3.0}


@dataclass(frozen=True)
class DriftSpec:
    """A change of kind ``scenario`` at event ``at`` (0-based: the first changed event), unfolding over
    ``span`` events (0: at once; required > 0 for KDD ``gradual``)."""

    scenario: str
    at: int
    span: int = 0
    magnitude: float | None = None  # sensor: standard deviations (level) or variance factor
    seed: int = 0

    def check(self, stream: str) -> DriftSpec:
        if self.scenario not in SCENARIOS[stream]:
            raise ConfigurationError(
                f"unknown {stream} drift scenario {self.scenario!r}: "
                f"use one of {', '.join(SCENARIOS[stream])}"
            )
        if self.at < 0 or self.span < 0:
            raise ConfigurationError(
                f"--drift-at and --drift-span must not be negative, got {self.at}, {self.span}"
            )
        if self.scenario == "gradual" and self.span < 1:
            raise ConfigurationError(
                "a gradual drift needs --drift-span N (events over which the mixture grows)"
            )
        return self

    def share(self, index: int | np.ndarray) -> np.ndarray:
        """Share of the new regime at event ``index``: 0 before ``at``, growing to 1 over ``span``.

        >>> DriftSpec("gradual", at=10, span=4).share(np.arange(9, 16)).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
        """
        i = np.asarray(index, dtype=np.float64)
        if self.span == 0:
            return (i >= self.at).astype(np.float64)
        return np.clip((i - self.at + 1) / self.span, 0.0, 1.0) * (i >= self.at)

    def phase(self, index: int) -> str:
        """The ``drift.phase`` header of event ``index``.

        >>> spec = DriftSpec("gradual", at=2, span=4)
        >>> [spec.phase(i) for i in range(7)]
        ['before', 'before', '0.250', '0.500', '0.750', 'after', 'after']
        """
        share = float(self.share(index))
        if share <= 0.0:
            return BEFORE
        return AFTER if share >= 1.0 else f"{share:.3f}"


def with_phases(events: Iterable[Event], spec: DriftSpec, per_step: int = 1) -> Iterator[Event]:
    """``events`` with the ``drift.phase`` header; ``per_step`` events share one step (interleaved
    sensor channels advance one window together)."""
    for index, event in enumerate(events):
        phase = spec.phase(index // per_step)
        yield replace(event, headers=(*event.headers, (PHASE_HEADER, phase.encode())))


# -- KDD --------------------------------------------------------------------------------------------
def _events(frame: pd.DataFrame, source: str) -> list[Event]:
    labels = frame["label"].astype(str).tolist()
    rows = frame.index.tolist()
    return [
        Event(f"{source}-{row:07d}".encode(), value, label)
        for row, value, label in zip(rows, encode_rows(frame), labels, strict=True)
    ]


def _repeated(events: list[Event], count: int) -> list[Event]:
    """``count`` events: ``events`` in order, again and again; each pass's keys say which pass.

    >>> events = [Event(b"nsl-0000001", b"{}", "normal"), Event(b"nsl-0000002", b"{}", "normal")]
    >>> [e.key for e in _repeated(events, 3)]
    [b'nsl-0000001', b'nsl-0000002', b'nsl-p1-0000001']
    """
    if not events:
        raise ConfigurationError("the new phase of the shift scenario has no events")
    out = []
    for index in range(count):
        event = events[index % len(events)]
        passes = index // len(events)
        if passes:
            source, _, row = (event.key or b"").decode().rpartition("-")
            event = replace(event, key=f"{source}-p{passes}-{row}".encode())
        out.append(event)
    return out


def kdd_drift_events(
    before: pd.DataFrame,
    after: pd.DataFrame,
    spec: DriftSpec,
    limit: int | None = None,
    source: str = "corrected",
) -> list[Event]:
    """The events of a KDD scenario: ``before`` rows until the change, ``after`` rows (in order) from
    it, mixed over ``span`` events for ``gradual``; every event with its phase header.

    The ``before`` rows come in a seeded random order: the 10% file's normal traffic in file order is
    itself not stationary (a calibrated ADWIN finds about 150 changes per 100,000 of it), and the
    designed change must be the only one, or detection delay and false alarms mean nothing."""
    spec.check("kdd")
    before = before.sample(frac=1.0, random_state=spec.seed)
    old, new = _events(before, "kddcup.data_10_percent"), _events(after, source)
    needed_old = spec.at + (spec.span if spec.scenario == "gradual" else 0)
    if needed_old > len(old):
        raise ConfigurationError(
            f"--drift-at {spec.at:,} (+ span) needs {needed_old:,} events before the change; the 10% file "
            f"has {len(old):,} normal connections"
        )
    if spec.scenario in SHIFTS:
        wanted = max(0, (limit if limit is not None else spec.at + SHIFT_EVENTS) - spec.at)
        shifted = old[: min(spec.at, limit if limit is not None else spec.at)] + _repeated(new, wanted)
        return list(with_phases(shifted, spec))
    draws = np.random.default_rng(spec.seed).random(spec.span)
    out: list[Event] = []
    i_old = i_new = 0
    total = len(new) + spec.at + (spec.span if spec.scenario == "gradual" else 0)
    for index in range(total if limit is None else min(limit, total)):
        share = float(spec.share(index)) if spec.scenario == "gradual" else float(index >= spec.at)
        from_new = share >= 1.0 or (share > 0.0 and draws[index - spec.at] < share)
        if from_new and i_new < len(new):
            out.append(new[i_new])
            i_new += 1
        elif not from_new and i_old < len(old):
            out.append(old[i_old])
            i_old += 1
        else:
            break
    return list(with_phases(out, spec))


def load_kdd_drift_sources(
    data_dir: Path, scenario: str = "abrupt"
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Normal connections of the 10% file (original row numbers kept), and the new phase's rows with
    their source name: ``corrected`` whole, or for a shift NSL-KDD's 20% training file (its normal
    connections only for ``shift``; its 43rd column, the difficulty, is read and not scored)."""
    train = read_kdd(find_kdd_file(data_dir, "train"))
    before = train[~is_attack(train["label"])]
    if scenario in SHIFTS:
        nsl = read_kdd(find_kdd_file(data_dir, "nsl-train"))
        return before, (nsl[~is_attack(nsl["label"])] if scenario == "shift" else nsl), "nsl-train"
    return before, read_kdd(find_kdd_file(data_dir, "test")), "corrected"


def replay_kdd_drift(
    settings: Settings, spec: DriftSpec, rate: float = 0.0, limit: int | None = None
) -> ReplayStats:
    """``anomstream replay kdd --drift abrupt|gradual|shift|shift-attacks --drift-at N [--drift-span M]``."""
    spec.check("kdd")
    before, after, source = load_kdd_drift_sources(settings.data_dir, spec.scenario)
    events = kdd_drift_events(before, after, spec, limit, source)
    producer = ReplayProducer(settings, settings.topic("kdd"), rate=rate)
    return producer.run(events, len(events), f"kdd {spec.scenario} drift at {spec.at:,}")


# -- sensor -----------------------------------------------------------------------------------------
def drifted_series(
    series: Sequence[SensorSeries], spec: DriftSpec, window: int, stride: int = 1
) -> list[SensorSeries]:
    """Copies of ``series`` with the change applied from the rows of window ``at // len(series)``
    on (the last row of that window is the first changed row), ramped over ``span`` events."""
    spec.check("sensor")
    per_step = max(len(series), 1)
    step_spec = DriftSpec(spec.scenario, math.ceil(spec.at / per_step), math.ceil(spec.span / per_step))
    out = []
    for item in series:
        ends = window_end_rows(len(item), window, stride)
        if step_spec.at >= len(ends):
            raise ConfigurationError(
                f"--drift-at {spec.at:,} is past the {len(ends) * per_step:,} events of {item.name}"
            )
        # Share of the change per row: the share of the first window that ends at or after the row.
        window_of_row = np.searchsorted(ends, np.arange(len(item)), side="left")
        share = step_spec.share(window_of_row)
        reference = item.values[: ends[step_spec.at]]
        # A flat series (std 0) still moves: by ``magnitude`` of its own units.
        std = reference.std(axis=0)
        values = _changed(item.values, share, reference.mean(axis=0), np.where(std > 0, std, 1.0), spec)
        out.append(replace(item, values=values))
    return out


def _changed(values: np.ndarray, share: np.ndarray, mean: np.ndarray, std: np.ndarray,
             spec: DriftSpec) -> np.ndarray:  # fmt: skip
    """``values`` (rows, or rows x columns) with ``spec``'s change applied, in ``share`` per row."""
    magnitude = spec.magnitude if spec.magnitude is not None else DEFAULT_MAGNITUDE[spec.scenario]
    share = share.reshape(-1, *([1] * (values.ndim - 1)))
    if spec.scenario == "level":
        return values + share * magnitude * std
    return mean + (values - mean) * (1.0 + share * (magnitude - 1.0))


def drifted_records(values: np.ndarray, spec: DriftSpec) -> np.ndarray:
    """The numeric features ``values`` (rows x features) with the change from row ``spec.at`` on,
    ramped over ``spec.span`` rows; sizes are measured on the rows before ``at``.

    A feature that never varied before the change has no size to measure: it stays as it is (moving
    it by an arbitrary unit would invent a change in a column the scenario does not describe).

    >>> values = np.array([[0.0, 5.0], [2.0, 5.0], [0.0, 5.0], [2.0, 5.0]])
    >>> drifted_records(values, DriftSpec("level", at=2, magnitude=2.0)).tolist()
    [[0.0, 5.0], [2.0, 5.0], [2.0, 5.0], [4.0, 5.0]]
    """
    spec.check("records")
    if not 1 <= spec.at < len(values):
        raise ConfigurationError(
            f"--drift-at {spec.at:,} must lie between 1 (a row before the change measures its size) and "
            f"the file's last row, {len(values) - 1:,}"
        )
    reference = values[: spec.at]
    share = spec.share(np.arange(len(values)))
    return _changed(values, share, reference.mean(axis=0), reference.std(axis=0), spec)


def sensor_drift_events(
    series: Sequence[SensorSeries], spec: DriftSpec, window: int, stride: int = 1, limit: int | None = None
) -> Iterator[Event]:
    """The events of a sensor scenario: the windows of the drifted series, interleaved as
    ``replay sensor`` does, each with its phase header."""
    counts = {item.name: len(window_end_rows(len(item), window, stride)) for item in series}
    if len(set(counts.values())) > 1:
        # The change is placed by step (one window of every series); steps of unequal series drift apart.
        raise ConfigurationError(
            f"a drift scenario changes series of equal length together; these have {min(counts.values()):,} "
            f"to {max(counts.values()):,} windows: replay one series (or key) at a time"
        )
    chosen = drifted_series(series, spec, window, stride)
    per_step = len(chosen)
    step_spec = DriftSpec(spec.scenario, math.ceil(spec.at / per_step), math.ceil(spec.span / per_step))
    return with_phases(sensor_events(chosen, window, stride, limit=limit), step_spec, per_step=per_step)


def replay_sensor_drift(
    settings: Settings,
    spec: DriftSpec,
    series: str | None = None,
    bearing: bool = False,
    window: int = 16,
    stride: int = 1,
    rate: float = 0.0,
    limit: int | None = None,
) -> ReplayStats:
    """``anomstream replay sensor --drift level|variance --drift-at N [--drift-span M]``."""
    spec.check("sensor")
    WindowSpec(window, stride)
    chosen = load_sensor_series(settings.data_dir, series, bearing)
    events = sensor_drift_events(chosen, spec, window, stride, limit)
    total = event_count(chosen, window, stride) if limit is None else limit
    producer = ReplayProducer(settings, settings.topic("sensor"), rate=rate)
    return producer.run(events, total, f"sensor {spec.scenario} drift at {spec.at:,}")


# -- measuring --------------------------------------------------------------------------------------
def true_change_offsets(settings: Settings, topic: str, timeout: float = 60.0) -> dict[int, int]:
    """First offset per partition whose ``drift.phase`` is not ``before``: the true change point on
    the topic (partitions without a changed event are left out)."""
    first: dict[int, int] = {}
    for message in iter_topic(settings, topic, timeout=timeout):
        phase = header(message, PHASE_HEADER)
        if phase is not None and phase != BEFORE.encode():
            p = message.partition()
            first[p] = min(first.get(p, message.offset()), message.offset())
    return first
