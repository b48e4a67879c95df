"""Score records of several partitions, merged back into one stream in event-time order.

A monitor watches a stream through every partition it holds, but records do not arrive in time
order: a consumer catching up reads one partition's backlog in large chunks before the next's, and
one ``scores`` partition carries several input partitions in whatever order the workers scored them
(all of input partition 1's backlog, then all of 0's). Watched in arrival order, the end of one input
partition followed by the start of another looks like a change, backwards in time. So records wait
here, one queue per input partition, and leave in the order of their first event time, as Kafka
Streams orders a task's partitions by timestamp: the oldest head leaves first, unless an input
partition's queue is empty while its ``scores`` partition is not caught up (or a ``scores``
partition not caught up has brought nothing yet), in which case the merge waits for it, at most
``max_wait_s``, so a stalled partition delays the others by no more than that.

Records of one ``scores`` partition may so leave out of offset order; the offset to commit is the
lowest one still queued. After a restart the records past it are read again, and skipped as already
watched (the monitor's per-input-partition high-water marks).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pending:
    partition: int  # of the scores topic
    offset: int
    timestamp: str  # ISO-8601 UTC, as the worker writes event times: sortable as text
    record: Any  # the decoded score record, or None when it could not be decoded
    source: tuple[str, int] = ("", -1)  # input topic and partition the record scored


class RecordMerger:
    def __init__(self, max_wait_s: float = 5.0) -> None:
        self.max_wait_s = max_wait_s
        self.queues: dict[tuple[int, tuple[str, int]], deque[Pending]] = {}
        self.unwatched: dict[int, set[int]] = {}  # scores partition -> offsets queued
        self.fetched: dict[int, int] = {}  # scores partition -> highest offset queued
        self._blocked_since: float | None = None

    def add(self, item: Pending) -> None:
        self.queues.setdefault((item.partition, item.source), deque()).append(item)
        self.unwatched.setdefault(item.partition, set()).add(item.offset)
        self.fetched[item.partition] = max(self.fetched.get(item.partition, -1), item.offset)

    def queued(self, partition: int) -> int:
        return len(self.unwatched.get(partition, ()))

    def commit_offset(self, partition: int) -> int | None:
        """The offset from which ``partition`` must be read again after a restart, as far as this
        merge knows (None: nothing fetched from it)."""
        waiting = self.unwatched.get(partition)
        if waiting:
            return min(waiting)
        fetched = self.fetched.get(partition)
        return None if fetched is None else fetched + 1

    def release(self, assigned: set[int], caught_up: Callable[[int], bool]) -> Iterator[Pending]:
        """Records that may be watched now, oldest first."""
        while True:
            heads = {key: q[0] for key, q in self.queues.items() if q}
            if not heads:
                self._blocked_since = None
                return
            if self._starving(assigned, caught_up):
                now = time.monotonic()
                self._blocked_since = self._blocked_since or now
                if now - self._blocked_since < self.max_wait_s:
                    return
            else:
                self._blocked_since = None
            key = min(heads, key=lambda k: (heads[k].timestamp, k))
            item = self.queues[key].popleft()
            self.unwatched[item.partition].discard(item.offset)
            yield item

    def _starving(self, assigned: set[int], caught_up: Callable[[int], bool]) -> bool:
        behind = {p for p in assigned if not caught_up(p)}
        if not behind:
            return False
        holding = {p for (p, _), q in self.queues.items() if q}
        if behind - holding:
            return True  # a partition behind that has brought nothing yet
        return any(not q and p in behind for (p, _), q in self.queues.items())

    def drop(self, partitions: set[int]) -> None:
        """Forget what was queued for partitions this monitor no longer holds (not yet watched)."""
        for key in [k for k in self.queues if k[0] in partitions]:
            del self.queues[key]
        for partition in partitions:
            self.unwatched.pop(partition, None)
            self.fetched.pop(partition, None)
