"""Dynamic batching on a Kafka consumer: the maximum batch size and maximum queue delay of Triton
and TF Serving.

A batch is handed over as soon as it is full, or as soon as its oldest message has waited the
maximum queue delay, whichever comes first. At everyday rates that means small batches a few
milliseconds apart (low latency); when a backlog builds, ``consume`` returns full batches at once
(high throughput), with no fixed timeout in between.

When the oldest message arrived is only known to within the time the caller spent on the previous
batch: messages that queued up meanwhile are taken to have waited since the previous batch was
handed over, so a busy worker never adds a delay on top of its own work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, Message, TopicPartition

from stream.kafka import check_message


class DynamicBatcher:
    """Collects the next batch from ``consumer``.

    For example::

        batcher = DynamicBatcher(consumer, max_size=5000, max_delay_s=0.005)
        batch = batcher.next_batch()  # [] after ``idle_wait_s`` without a message

    ``clock`` (seconds, monotonic) is what the queue delay is measured with; a test passes a fake one.
    """

    def __init__(
        self,
        consumer: Consumer,
        max_size: int,
        max_delay_s: float,
        idle_wait_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer = consumer
        self.max_size = max_size
        self.max_delay_s = max_delay_s
        self.idle_wait_s = idle_wait_s
        self.clock = clock
        # Messages collected for the batch in progress; a rebalance may remove some (``discard``).
        self.pending: list[Message] = []
        self._handed_over = clock()

    def next_batch(self) -> list[Message]:
        """The next batch (possibly empty when nothing arrived within ``idle_wait_s``)."""
        pending = self.pending
        pending += _data(self.consumer.consume(self.max_size, 0))
        if pending:
            oldest = self._handed_over  # queued while the caller was busy: waited at least since then
        else:
            first = self.consumer.poll(self.idle_wait_s)
            if first is None or not check_message(first):
                self._handed_over = self.clock()
                return []
            pending.append(first)
            oldest = self.clock()
        deadline = oldest + self.max_delay_s
        while len(pending) < self.max_size:
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            pending += _data(self.consumer.consume(self.max_size - len(pending), remaining))
        batch, self.pending = pending, []
        self._handed_over = self.clock()
        return batch

    def collect(self, timeout: float) -> None:
        """Poll the consumer for up to ``timeout`` while the caller cannot hand a batch over (its
        group membership and rebalance callbacks are served only in a poll), keeping what arrives
        for the next batch (at least one message's room, so the poll happens)."""
        room = self.max_size - len(self.pending)
        self.pending += _data(self.consumer.consume(max(room, 1), timeout))

    def discard(self, partitions: Iterable[TopicPartition]) -> int:
        """Forget collected messages of revoked or lost partitions (their next owner reads them from
        the committed offset); returns how many were dropped."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        before = len(self.pending)
        self.pending[:] = [m for m in self.pending if (m.topic(), m.partition()) not in gone]
        return before - len(self.pending)


def _data(messages: list[Message]) -> list[Message]:
    return [m for m in messages if check_message(m)]
