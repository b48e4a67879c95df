"""Score records of several ``scores`` partitions, merged back into one stream in event-time order.

A monitor watches a stream through every partition it holds, but a consumer catching up reads one
partition's backlog in large chunks before the next's: watched in that order, the end of one
partition followed by the start of another looks like a change (and is one, in time: backwards).
So records wait here, one queue per partition, and leave in the order of their first event time, as
Kafka Streams orders a task's partitions by timestamp: the oldest head leaves first, unless a
partition that is not caught up has nothing queued, in which case the merge waits for it (at most
``max_wait_s``, so a stalled partition delays the others by no more than that).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pending:
    partition: int
    offset: int
    timestamp: str  # ISO-8601 UTC, as the worker writes event times: sortable as text
    record: Any  # the decoded score record, or None when it could not be decoded


class RecordMerger:
    def __init__(self, max_wait_s: float = 1.0) -> None:
        self.max_wait_s = max_wait_s
        self.queues: dict[int, deque[Pending]] = {}
        self._blocked_since: float | None = None

    def add(self, item: Pending) -> None:
        self.queues.setdefault(item.partition, deque()).append(item)

    def queued(self, partition: int) -> int:
        return len(self.queues.get(partition, ()))

    def release(self, assigned: set[int], caught_up: Callable[[int], bool]) -> Iterator[Pending]:
        """Records that may be watched now, oldest first."""
        while True:
            heads = {p: q[0] for p, q in self.queues.items() if q}
            if not heads:
                self._blocked_since = None
                return
            starving = [p for p in assigned if p not in heads and not caught_up(p)]
            if starving:
                now = time.monotonic()
                self._blocked_since = self._blocked_since or now
                if now - self._blocked_since < self.max_wait_s:
                    return
            else:
                self._blocked_since = None
            partition = min(heads, key=lambda p: (heads[p].timestamp, p))
            yield self.queues[partition].popleft()

    def drop(self, partitions: set[int]) -> None:
        """Forget what was queued for partitions this monitor no longer holds (not yet watched)."""
        for partition in partitions:
            self.queues.pop(partition, None)
