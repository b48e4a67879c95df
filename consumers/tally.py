"""Live accounting of the ``scores`` topic: events, alerts and precision/recall against the labels.

Reads score records (one per scored batch and partition) and keeps running totals; used by the demo's
live summary and by the benchmark.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import orjson

from stream.kafka import iter_topic
from stream.settings import Settings
from stream.signals import StopFlag

NORMAL_LABELS = frozenset({"normal", "0", "0.0", "false", "False"})


@dataclass
class Tally:
    events: int = 0
    alerts: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    unlabelled: int = 0
    offsets: set[tuple[str, int, int]] = field(default_factory=set)
    duplicates: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    def add(self, record: dict) -> None:
        topic, partition = record["topic"], record["partition"]
        rows = zip(record["offsets"], record["is_alert"], record["labels"], strict=True)
        for offset, flagged, label in rows:
            key = (topic, partition, offset)
            if key in self.offsets:
                self.duplicates += 1
                continue
            self.offsets.add(key)
            self.events += 1
            self.alerts += flagged
            if label is None:
                self.unlabelled += 1
                continue
            attack = label not in NORMAL_LABELS
            if flagged:
                self.tp += attack
                self.fp += not attack
            else:
                self.fn += attack
                self.tn += not attack


class ScoreTally:
    """Follows the scores topic from its current end in a background thread."""

    def __init__(self, settings: Settings, window_s: float = 5.0) -> None:
        self.settings = settings
        self.tally = Tally()
        self.stop = StopFlag(install=False)
        self._lock = threading.Lock()
        self._history: deque[tuple[float, int]] = deque()
        self.window_s = window_s
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="score-tally", daemon=True)

    def start(self) -> ScoreTally:
        self._thread.start()
        self._ready.wait(15)  # positioned at the end before anything new is scored
        return self

    def _follow(self) -> None:
        topic = self.settings.topic("scores")
        messages = iter_topic(
            self.settings, topic, from_beginning=False, follow=True, stop=self.stop, on_ready=self._ready.set
        )  # fmt: skip
        for message in messages:
            record = orjson.loads(message.value())
            with self._lock:
                self.tally.add(record)
                self._history.append((time.monotonic(), self.tally.events))

    def snapshot(self) -> tuple[Tally, float]:
        """A copy of the totals and the scoring rate over the last ``window_s`` seconds."""
        with self._lock:
            now = time.monotonic()
            while len(self._history) > 1 and now - self._history[0][0] > self.window_s:
                self._history.popleft()
            rate = 0.0
            if len(self._history) > 1:
                (t0, n0), (t1, n1) = self._history[0], self._history[-1]
                rate = (n1 - n0) / max(now - t0, 1e-9) if t1 > t0 else 0.0
            copy = Tally(**{k: v for k, v in vars(self.tally).items() if k != "offsets"})
            return copy, rate

    def close(self) -> None:
        self.stop.set()
        self._thread.join(5)
