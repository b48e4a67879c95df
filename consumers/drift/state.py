"""What the drift monitor keeps per unit of work, and how it survives a restart.

A unit is one stream's score sequence within one partition of the ``scores`` topic: score records are
keyed by their input partition, so a scores partition carries whole input partitions, in order, and
whoever owns the scores partition owns their drift state. The state of every unit of a scores
partition is checkpointed together with the next scores offset to read, in one file written
atomically; the consumer group's offset is committed only after the checkpoint that covers it, and a
restarted monitor resumes from the checkpoint (never re-counting what it covers).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.drift import DriftWatch

SPAN_HISTORY = 400_000  # events whose offsets are kept, to place a change (> max_burst)


@dataclass
class Span:
    """Consecutive watch positions that came from one score record (one input partition)."""

    position: int
    count: int
    partition: int
    first_offset: int
    last_offset: int
    first_time: str | None
    last_time: str | None

    def offset_at(self, position: int) -> int:
        """Offset of the event at ``position`` (interpolated when the record skipped offsets)."""
        step = position - self.position
        if step <= 0 or self.count <= 1:
            return self.first_offset
        if self.last_offset - self.first_offset + 1 == self.count:
            return self.first_offset + step
        return self.first_offset + round(step * (self.last_offset - self.first_offset) / (self.count - 1))

    def time_at(self, position: int) -> str | None:
        if self.first_time is None or self.last_time is None or self.count <= 1:
            return self.first_time
        start, end = datetime.fromisoformat(self.first_time), datetime.fromisoformat(self.last_time)
        share = min(max(position - self.position, 0) / (self.count - 1), 1.0)
        return (start + (end - start) * share).isoformat(timespec="milliseconds")


@dataclass
class SpanLog:
    """Where each watch position came from: input partition, offset, event time."""

    spans: deque[Span] = field(default_factory=deque)

    def add(self, position: int, partition: int, offsets: np.ndarray, times: list[str | None]) -> None:
        self.spans.append(Span(position, len(offsets), partition, int(offsets[0]), int(offsets[-1]),
                               times[0], times[-1]))  # fmt: skip
        newest = position + len(offsets)
        while self.spans and self.spans[0].position + self.spans[0].count < newest - SPAN_HISTORY:
            self.spans.popleft()

    def locate(self, position: int, high: dict[int, int]) -> tuple[dict[str, int], str | None]:
        """The first offset at or after ``position`` in every input partition (the next offset to
        come for a partition with nothing since), and the event time at ``position``."""
        offsets: dict[str, int] = {}
        when = None
        for span in self.spans:
            end = span.position + span.count
            if end <= position:
                continue
            key = str(span.partition)
            if key not in offsets:
                offsets[key] = span.offset_at(max(position, span.position))
            if when is None and span.position <= position < end:
                when = span.time_at(position)
        for partition, last in high.items():
            offsets.setdefault(str(partition), last + 1)
        if when is None:
            later = [s for s in self.spans if s.position + s.count > position]
            when = later[0].first_time if later else None
        return dict(sorted(offsets.items(), key=lambda kv: int(kv[0]))), when

    def state(self) -> list[list[Any]]:
        return [[s.position, s.count, s.partition, s.first_offset, s.last_offset, s.first_time, s.last_time]
                for s in self.spans]  # fmt: skip

    @classmethod
    def from_state(cls, rows: list[list[Any]]) -> SpanLog:
        return cls(deque(Span(*row) for row in rows))


@dataclass
class Unit:
    """One stream's drift watch within one scores partition."""

    stream: str
    model: tuple[str, int]  # (detector, version) whose scores are watched
    watch: DriftWatch
    spans: SpanLog = field(default_factory=SpanLog)
    high: dict[int, int] = field(default_factory=dict)  # input partition -> highest offset watched
    skipped_stale: int = 0  # scores of another model version, not watched

    def state(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "model": list(self.model),
            "kind": self.watch.config.score.kind,
            "watch": self.watch.state(),
            "spans": self.spans.state(),
            "high": {str(k): v for k, v in self.high.items()},
        }


class CheckpointStore:
    """One JSON file per scores partition under ``state_dir/drift/<group>/``, replaced atomically."""

    def __init__(self, root: Path, group: str, topic: str) -> None:
        self.folder = Path(root) / "drift" / group / topic
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, partition: int) -> Path:
        return self.folder / f"partition-{partition}.json"

    def load(self, partition: int) -> dict[str, Any] | None:
        path = self.path(partition)
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def save(self, partition: int, next_offset: int, units: list[Unit]) -> None:
        data = {"partition": partition, "next_offset": next_offset, "units": [u.state() for u in units]}
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".partition-{partition}.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path(partition))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
