"""One stream's drift watch: attack bursts told apart from a change of normal traffic.

A stream's scores mix two populations: normal traffic, whose distribution is what a model was fitted
to, and attacks, which come and go. A drift detector watching every score would call each flood a
change, and a retrain on it would learn the flood as normal. So the watch splits the evidence:

* **Alerting scores are not normal evidence.** The score detector (:class:`ScoreDrift`, calibrated
  on the model's non-alerting validation scores) sees only scores that did not alert.
* **Bursts pause it.** While at least ``burst_rate`` of the last ``burst_window`` events alerted
  (and for ``burst_window`` events after), even the non-alerting scores are suspect: in a flood they
  are mostly the attacks the model missed (a 2% miss rate in KDD's 193,127-connection smurf run is
  ~3,900 near-identical scores), not normal traffic. They are skipped.
* **A burst that never ends is a change.** If the stream stays in a burst for more than
  ``max_burst`` events, longer than any attack burst in the data (KDD's 10% file: 194,637 with the
  default window), the watch reports an ``alert_rate`` change: a new normal that the model alerts on
  wholesale looks exactly like this. Below that, it is an attack and is left to the alerts.
* **One event per change.** After a detection the watch is silent for ``cooldown`` events.

Positions count every event given to the watch (alerting or not) from 0, so that a caller can map
them back to Kafka offsets.

>>> import numpy as np
>>> from models.drift import calibrate
>>> rng = np.random.default_rng(3)
>>> ref = rng.normal(size=5000)
>>> watch = DriftWatch(WatchConfig(calibrate("adwin", ref, target_ert=100_000)))
>>> flood = np.full(20_000, 9.0)                               # a 20,000-event attack burst ...
>>> normal = rng.normal(size=40_000)
>>> watch.update(np.r_[normal[:20_000], flood], np.r_[normal[:20_000] > 2.3, flood > 2.3])
[]
>>> shifted = rng.normal(0.8, 1.0, size=20_000)                # ... is no change; this is
>>> [(e.detector, e.change_position) for e in watch.update(shifted, shifted > 2.3)]
[('adwin', 40763)]

(The change began at 40,000 but the ~750 events after a flood are still guarded: the first
admitted ones are the first the watch can place a change at.)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.drift.config import DriftConfig
from models.drift.score_drift import ScoreDrift

ALERT_RATE = "alert_rate"


@dataclass(frozen=True)
class WatchConfig:
    """A calibrated score detector plus the burst rules (defaults measured on KDD's 10% file)."""

    score: DriftConfig
    burst_window: int = 500
    burst_rate: float = 0.5
    max_burst: int = 250_000
    cooldown: int = 50_000


@dataclass(frozen=True)
class WatchEvent:
    """A detected change: which detector, the event that completed it, the estimated first event of
    the new regime (positions), and the detector's statistic against its threshold."""

    detector: str
    position: int
    change_position: int
    statistic: float
    threshold: float


class DriftWatch:
    """Burst guard + calibrated score detector + alert-rate persistence, for one score sequence."""

    HISTORY = 1 << 20  # admitted scores whose positions are kept (to place a change)

    def __init__(self, config: WatchConfig) -> None:
        self.config = config
        self.drift = ScoreDrift(config.score)
        self.n = 0  # events seen
        self.admitted = 0  # scores given to the score detector
        self.guarded = 0  # events skipped as part of a burst
        self.alerts = 0
        self.quiet_until = 0  # cooldown: no event before this position
        self.burst_start = -1  # first position of the current burst; -1: none
        self.burst_reported = False
        self._last_burst = -(10**18)  # last position where the window was over the burst rate
        self._tail = np.zeros(0, dtype=bool)  # the last burst_window alert flags
        # Admitted positions as runs: run i starts at admitted index _run_admitted[i], position _run_pos[i].
        self._run_admitted = np.zeros(0, dtype=np.int64)
        self._run_pos = np.zeros(0, dtype=np.int64)
        self.last_admitted = np.zeros(0, dtype=bool)  # which events of the last update were admitted

    @property
    def in_burst(self) -> bool:
        return self.burst_start >= 0

    def update(self, scores: np.ndarray, is_alert: np.ndarray) -> list[WatchEvent]:
        """Give the next events in order; the changes they complete (after the cooldown rule)."""
        scores = np.asarray(scores, dtype=np.float64)
        is_alert = np.asarray(is_alert, dtype=bool)
        n = len(scores)
        if n == 0:
            return []
        start = self.n
        positions = np.arange(start, start + n, dtype=np.int64)
        guarded = self._guard(is_alert, positions)
        admitted = ~is_alert & ~guarded
        self.last_admitted = admitted
        events = self._alert_rate(guarded, positions)
        admitted_pos = positions[admitted]
        self._remember(admitted_pos)
        first_admitted = self.admitted
        self.admitted += len(admitted_pos)
        self.n += n
        self.alerts += int(is_alert.sum())
        self.guarded += int(guarded.sum())
        for hit in self.drift.last_detections if self.drift.update_many(scores[admitted]) else []:
            position = int(admitted_pos[hit.index - first_admitted])
            change = self._position_of(hit.change_index)
            events.append(WatchEvent(self.config.score.kind, position, change, hit.statistic, hit.threshold))
        events.sort(key=lambda e: e.position)
        kept = []
        for event in events:
            if event.position >= self.quiet_until:
                kept.append(event)
                self.quiet_until = event.position + self.config.cooldown
        return kept

    def acknowledge(self) -> None:
        """Another detector reported this change: start afresh from here and keep quiet a while."""
        self.drift = ScoreDrift(self.config.score)
        self._run_admitted, self._run_pos = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        self.admitted = 0
        self.quiet_until = max(self.quiet_until, self.n + self.config.cooldown)
        if self.in_burst:
            self.burst_reported = True

    # -- bursts ----------------------------------------------------------------------------------
    def _guard(self, is_alert: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Which events are inside a burst (or within burst_window after one)."""
        window = self.config.burst_window
        flags = np.concatenate([self._tail, is_alert])
        counts = np.cumsum(flags, dtype=np.int64)
        lagged = np.concatenate([np.zeros(window, dtype=np.int64), counts])[: len(counts)]
        in_window = (counts - lagged)[len(self._tail) :]
        over = in_window >= self.config.burst_rate * window
        self._tail = flags[-window:]
        last = np.maximum.accumulate(np.where(over, positions, self._last_burst))
        self._last_burst = int(last[-1])
        return positions - last < window

    def _alert_rate(self, guarded: np.ndarray, positions: np.ndarray) -> list[WatchEvent]:
        """Track the current burst; an ``alert_rate`` event once one outlasts ``max_burst``."""
        events = []
        # Split the batch into guarded runs; a run that reaches the batch's end continues the burst.
        edges = np.flatnonzero(np.diff(np.r_[False, guarded, False].astype(np.int8)))
        starts, ends = edges[::2], edges[1::2]
        if not len(starts) or starts[0] > 0:
            self._end_burst()
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            if s > 0:
                self._end_burst()
            if self.burst_start < 0:
                self.burst_start = int(positions[s])
            length_at_end = int(positions[e - 1]) - self.burst_start + 1
            if not self.burst_reported and length_at_end > self.config.max_burst:
                self.burst_reported = True
                at = self.burst_start + self.config.max_burst
                events.append(WatchEvent(ALERT_RATE, at, self.burst_start, float(at - self.burst_start + 1),
                                         float(self.config.max_burst)))  # fmt: skip
            if e < len(guarded):
                self._end_burst()
        return events

    def _end_burst(self) -> None:
        self.burst_start, self.burst_reported = -1, False

    # -- positions of admitted scores ------------------------------------------------------------
    def _remember(self, admitted_pos: np.ndarray) -> None:
        if not len(admitted_pos):
            return
        breaks = np.flatnonzero(np.diff(admitted_pos) != 1) + 1
        run_starts = np.r_[0, breaks]
        new_admitted = self.admitted + run_starts
        new_pos = admitted_pos[run_starts]
        if len(self._run_pos):  # continue the previous run when contiguous
            last_len = self.admitted - int(self._run_admitted[-1])
            if int(self._run_pos[-1]) + last_len == int(new_pos[0]):
                new_admitted, new_pos = new_admitted[1:], new_pos[1:]
        self._run_admitted = np.r_[self._run_admitted, new_admitted]
        self._run_pos = np.r_[self._run_pos, new_pos]
        oldest = self.admitted + len(admitted_pos) - self.HISTORY
        keep = max(int(np.searchsorted(self._run_admitted, oldest, side="right")) - 1, 0)
        self._run_admitted, self._run_pos = self._run_admitted[keep:], self._run_pos[keep:]

    def _position_of(self, admitted_index: int) -> int:
        """Stream position of the admitted score number ``admitted_index`` (oldest kept if older)."""
        if not len(self._run_admitted) or admitted_index < 0:
            return -1
        run = max(int(np.searchsorted(self._run_admitted, admitted_index, side="right")) - 1, 0)
        return int(self._run_pos[run] + max(admitted_index - int(self._run_admitted[run]), 0))

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "admitted": self.admitted,
            "guarded": self.guarded,
            "alerts": self.alerts,
            "quiet_until": self.quiet_until,
            "burst_start": self.burst_start,
            "burst_reported": self.burst_reported,
            "last_burst": self._last_burst,
            "tail": _pack(np.packbits(self._tail)),
            "tail_len": len(self._tail),
            "run_admitted": _pack(self._run_admitted.astype("<i8")),
            "run_pos": _pack(self._run_pos.astype("<i8")),
            "score": self.drift.state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        for name in ("n", "admitted", "guarded", "alerts", "quiet_until", "burst_start"):
            setattr(self, name, int(state[name]))
        self.burst_reported = bool(state["burst_reported"])
        self._last_burst = int(state["last_burst"])
        bits = np.frombuffer(_unpack(state["tail"]), dtype=np.uint8)
        self._tail = np.unpackbits(bits)[: int(state["tail_len"])].astype(bool)
        self._run_admitted = np.frombuffer(_unpack(state["run_admitted"]), dtype="<i8").astype(np.int64)
        self._run_pos = np.frombuffer(_unpack(state["run_pos"]), dtype="<i8").astype(np.int64)
        self.drift.set_state(state["score"])


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(array.tobytes()).decode()


def _unpack(text: str) -> bytes:
    return base64.b64decode(text)
