"""What the drift monitor keeps per stream, and how it survives a restart.

A monitor keeps one unit per stream: a DriftWatch fed by every score record of that stream it reads,
whichever ``scores`` partition carried it (splitting a stream across several watches would leave each
a fraction of the evidence and multiply the detection delay). Each unit also keeps, per input
partition, the highest offset it watched, so a score record published twice (a worker's retried
batch) is never counted twice, and where each watch position came from, to report a change in
Kafka offsets.

The whole state is checkpointed with the next ``scores`` offset of every partition it covers, in one
file per monitor instance written atomically (and locked, so two monitors never share one). The
group's offsets are committed only after the checkpoint that covers them; a restarted monitor
resumes from its checkpoint, never re-counting what it covers.
"""

from __future__ import annotations

import fcntl
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.drift import DriftWatch
from models.model_id import ModelId
from stream.errors import AnomstreamError
from stream.state_store import FolderStateStore, StateStore

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

    def locate_time(self, when: str, high: dict[int, int]) -> dict[str, int]:
        """Per input partition, the first offset of the events from time ``when`` on (interpolated
        within a record). Each partition is searched in its own order, so records that reached the
        watch out of time order across partitions do not matter."""
        offsets = self.placed(when)
        for partition, last in high.items():
            offsets.setdefault(str(partition), last + 1)
        return dict(sorted(offsets.items(), key=lambda kv: int(kv[0])))

    def placed(self, when: str) -> dict[str, int]:
        """What :meth:`locate_time` finds in the spans alone: the partitions whose watched events
        reach time ``when``. Those whose events after it were not watched (yet) are left out."""
        moment = datetime.fromisoformat(when)
        offsets: dict[str, int] = {}
        for span in self.spans:
            key = str(span.partition)
            if key in offsets or span.last_time is None or datetime.fromisoformat(span.last_time) < moment:
                continue
            position = span.position
            if span.first_time is not None and span.count > 1 and span.last_time != span.first_time:
                t0, t1 = datetime.fromisoformat(span.first_time), datetime.fromisoformat(span.last_time)
                position += round(max((moment - t0) / (t1 - t0), 0.0) * (span.count - 1))
            offsets[key] = span.offset_at(position)
        return offsets

    def at(self, position: int) -> tuple[int, int] | None:
        """(input partition, offset) of the event watched at ``position``; None when forgotten."""
        for span in self.spans:
            if span.position <= position < span.position + span.count:
                return span.partition, span.offset_at(position)
        return None

    def state(self) -> list[list[Any]]:
        return [[s.position, s.count, s.partition, s.first_offset, s.last_offset, s.first_time, s.last_time]
                for s in self.spans]  # fmt: skip

    @classmethod
    def from_state(cls, rows: list[list[Any]]) -> SpanLog:
        return cls(deque(Span(*row) for row in rows))


@dataclass
class Unit:
    """One stream's drift watch, with the offsets it watched and where each position came from."""

    stream: str
    model: ModelId  # whose scores are watched
    watch: DriftWatch
    spans: SpanLog = field(default_factory=SpanLog)
    high: dict[int, int] = field(default_factory=dict)  # input partition -> highest offset watched
    skipped_stale: int = 0  # scores of another model version, not watched
    checksum: str = ""  # the watched version's calibration sha256 (version numbers repeat, models do not)

    def state(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "model": list(self.model),
            "checksum": self.checksum,
            "kind": self.watch.config.score.kind,
            "watch": self.watch.state(),
            "spans": self.spans.state(),
            "high": {str(k): v for k, v in self.high.items()},
        }


class InstanceInUseError(AnomstreamError, RuntimeError):
    """Another running drift monitor holds this instance id's checkpoint."""


class CheckpointStore:
    """A monitor instance's checkpoint, ``drift/<group>/<instance>.json`` in the state store (a folder,
    or an object store any host reaches: :mod:`stream.state_store`), held under a local lock so two
    monitors on one host never share an instance id."""

    def __init__(self, root: Path, group: str, instance: str, store: StateStore | None = None) -> None:
        folder = Path(root) / "drift" / group
        folder.mkdir(parents=True, exist_ok=True)
        self.store = store if store is not None else FolderStateStore(root)
        self.key = f"drift/{group}/{instance}.json"
        self.where = self.store.where(self.key)
        self._lock = (folder / f"{instance}.lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise InstanceInUseError(
                f"another drift monitor uses instance id {instance!r} (lock {folder}/{instance}.lock): "
                "give this one its own with --instance-id"
            ) from None

    def load(self) -> dict[str, Any] | None:
        return self.store.read(self.key)

    def save(self, offsets: dict[int, int], units: list[Unit], topic_id: str | None = None) -> None:
        data = {
            "topic_id": topic_id,
            "offsets": {str(p): o for p, o in sorted(offsets.items())},
            "units": [u.state() for u in units],
        }
        self.store.write(self.key, data)

    def close(self) -> None:
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()
