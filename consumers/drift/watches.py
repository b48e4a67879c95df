"""The drift watches of a monitor, one unit per stream, fed score records as plain data (no Kafka).

A record's scores reach its stream's unit only when they are the production model's (the
:class:`~consumers.drift.following.ModelFollower` says which) and their input offsets are above the
unit's high-water mark for that input partition (a worker's retried batch is watched once). What the
watch detects is returned, for the monitor to publish.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from consumers.drift.calibration_cache import WatchSpec
from consumers.drift.following import ModelFollower
from consumers.drift.monitor_metrics import DriftMetrics
from consumers.drift.state import SpanLog, Unit
from models.drift import DriftWatch, WatchEvent
from models.model_id import ModelId
from stream.messages import DriftEvent, ScoreRecord


@dataclass
class MonitorStats:
    records: int = 0
    scores: int = 0
    duplicates: int = 0  # scores of input offsets already watched (a worker's retried batch)
    stale: int = 0  # scores of a model version that is not the stream's production model
    malformed: int = 0
    events: list[DriftEvent] = field(default_factory=list)
    # Per event, the input offsets (per partition) of the scores that completed the detection.
    detected_at_offsets: list[dict[str, int]] = field(default_factory=list)
    checkpoints: int = 0


@dataclass
class Watched:
    """What one record added to a unit: the input offsets watched, and the changes detected."""

    unit: Unit
    offsets: np.ndarray
    events: list[WatchEvent]


class StreamWatches:
    """One :class:`~consumers.drift.state.Unit` per stream, following its production model."""

    def __init__(self, follower: ModelFollower, metrics: DriftMetrics, stats: MonitorStats) -> None:
        self.follower = follower
        self.metrics = metrics
        self.stats = stats
        self.units: dict[str, Unit] = {}

    def watch(self, record: ScoreRecord) -> Watched | None:
        """Watch a record's fresh scores; None when none were (another model's, or all seen)."""
        if record.stream not in self.follower.specs:
            spec = self.follower.adopt(record.stream)
            if spec is None:
                return None
            self.switch(spec)
        unit = self._unit(record)
        if unit is None:
            self.stats.stale += len(record.offsets)
            return None
        return self._watch(unit, record)

    def switch(self, spec: WatchSpec) -> None:
        """The stream's production model is ``spec``'s now: its unit starts afresh."""
        self.metrics.model_version.labels(spec.stream).set(spec.model.version)
        if spec.stream in self.units:
            _reset(self.units[spec.stream], spec)

    def _unit(self, record: ScoreRecord) -> Unit | None:
        """The unit watching this record's scores; None when they are not the production model's."""
        model = ModelId(record.detector, record.model_version)
        moved = self.follower.refresh(record.stream, model)
        if moved is not None:
            self.switch(moved)
        spec = self.follower.specs[record.stream]
        if model != spec.model:
            return None
        unit = self.units.get(record.stream)
        if unit is None:
            unit = self.units[record.stream] = Unit(
                record.stream, spec.model, DriftWatch(spec.config), checksum=spec.checksum
            )
        elif unit.model != spec.model:
            _reset(unit, spec)
        return unit

    def _watch(self, unit: Unit, record: ScoreRecord) -> Watched | None:
        offsets = np.asarray(record.offsets, dtype=np.int64)
        fresh = offsets > unit.high.get(record.partition, -1)
        self.stats.duplicates += int((~fresh).sum())
        if not fresh.any():
            return None
        rows = np.flatnonzero(fresh)
        scores = np.asarray(record.scores, dtype=np.float64)[rows]
        alerts = np.asarray(record.is_alert, dtype=bool)[rows]
        times = [record.event_times[int(rows[0])], record.event_times[int(rows[-1])]]
        unit.spans.add(unit.watch.n, record.partition, offsets[rows], times)
        unit.high[record.partition] = int(offsets[rows[-1]])
        events = unit.watch.update(scores, alerts)
        self.stats.scores += len(rows)
        self.metrics.scores.labels(unit.stream, "watched").inc(len(rows))
        self.metrics.in_burst.labels(unit.stream).set(1 if unit.watch.in_burst else 0)
        drift = unit.watch.drift
        self.metrics.statistic.labels(unit.stream, drift.config.kind).set(drift.statistic)
        self.metrics.threshold.labels(unit.stream, drift.config.kind).set(drift.threshold)
        return Watched(unit, offsets[rows], events)


def _reset(unit: Unit, spec: WatchSpec) -> None:
    # The offsets high-water marks stay: a new model does not make old input new.
    unit.model, unit.watch, unit.spans = spec.model, DriftWatch(spec.config), SpanLog()
    unit.checksum = spec.checksum
