"""DynamicBatcher's maximum queue delay on a fake clock: what the worker pipeline's integration test
used to bound in wall time (a timing bound inside a correctness test), pinned here exactly."""

from __future__ import annotations

import pytest
from confluent_kafka import Message

from consumers.batching import DynamicBatcher
from tests.support import FakeClock


class ScriptedConsumer:
    """Messages that arrive at given times on ``clock``; a call that waits moves the clock to the next
    arrival or to the end of its timeout, as a consumer blocking on an idle topic would."""

    def __init__(self, clock: FakeClock, arrivals: list[float]) -> None:
        self.clock = clock
        self.arrivals = sorted(arrivals)
        self.offset = 0

    def _take(self, limit: int) -> list[Message]:
        ready = [t for t in self.arrivals if t <= self.clock.t][:limit]
        self.arrivals = self.arrivals[len(ready) :]
        first, self.offset = self.offset, self.offset + len(ready)
        return [Message(topic="t", partition=0, offset=first + i, value=b"{}") for i in range(len(ready))]

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if not (self.arrivals and self.arrivals[0] <= self.clock.t):
            upcoming = self.arrivals[0] if self.arrivals else float("inf")
            self.clock.t = max(self.clock.t, min(upcoming, self.clock.t + timeout))
        return self._take(num_messages)

    def poll(self, timeout: float) -> Message | None:
        found = self.consume(1, timeout)
        return found[0] if found else None


def _batcher(clock: FakeClock, arrivals: list[float], max_size: int = 100) -> DynamicBatcher:
    consumer = ScriptedConsumer(clock, arrivals)  # duck-typed: consume() and poll() are all it calls
    return DynamicBatcher(
        consumer,  # type: ignore[arg-type]
        max_size=max_size,
        max_delay_s=0.005,
        idle_wait_s=0.2,
        clock=clock.now,
    )


def test_one_event_on_an_idle_stream_is_handed_over_after_the_maximum_queue_delay() -> None:
    clock = FakeClock(start=0.0)
    batcher = _batcher(clock, [0.1])
    batch = batcher.next_batch()
    assert len(batch) == 1
    assert clock.t == pytest.approx(0.1 + 0.005), "waited the maximum queue delay, no longer"


def test_a_backlog_is_handed_over_in_full_batches_without_waiting() -> None:
    clock = FakeClock(start=1.0)
    batcher = _batcher(clock, [0.5] * 250, max_size=100)
    sizes = [len(batcher.next_batch()) for _ in range(3)]
    assert sizes == [100, 100, 50]
    assert clock.t == pytest.approx(1.0 + 0.005), "only the last, partial batch waited its queue delay"


def test_events_queued_while_the_caller_was_busy_add_no_delay_on_top_of_its_work() -> None:
    clock = FakeClock(start=0.0)
    batcher = _batcher(clock, [0.001, 0.002, 0.050, 0.051, 0.052])
    assert len(batcher.next_batch()) == 2  # the second came within the first's queue delay
    clock.advance(0.1)  # the caller scores that batch; three more queue up meanwhile
    before = clock.t
    assert len(batcher.next_batch()) == 3
    assert clock.t == before, "they waited since the previous hand-over: no further delay"


def test_an_idle_stream_returns_an_empty_batch_after_the_idle_wait() -> None:
    clock = FakeClock(start=0.0)
    batcher = _batcher(clock, [])
    assert batcher.next_batch() == []
    assert clock.t == pytest.approx(0.2)
