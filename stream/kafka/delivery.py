"""Producing with back-pressure, and counting delivery reports so a batch is committed only after
every output it produced was acknowledged."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from stream.kafka.logs import delivery_failure
from stream.kafka.watchdog import guarded

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


@dataclass
class DeliveryTracker:
    """Delivery-report callback that counts successes and keeps the first failure."""

    delivered: int = 0
    failed: int = 0
    first_error: KafkaError | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            if error is None:
                self.delivered += 1
            else:
                self.failed += 1
                if self.first_error is None:
                    self.first_error = error
                delivery_failure(message.topic(), error)

    def reset(self) -> None:
        with self._lock:
            self.delivered = self.failed = 0
            self.first_error = None


def produce(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | str | None = None,
    headers: Headers | None = None,
    on_delivery: Any = None,
    timestamp: int = 0,
    stop: Any = None,
) -> bool:
    """Produce one message, waiting for room when the local queue is full instead of failing; False
    when ``stop`` (a StopFlag) was set while it waited (a broker outage fills the queue for good)."""
    while True:
        try:
            producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery, timestamp=timestamp)
            return True
        except BufferError:
            if stop is not None and stop:
                return False
            producer.poll(0.05)


def flush_or_raise(producer: Producer, timeout: float = 60.0) -> None:
    """Flush, under the watchdog; raise when messages are left unacknowledged."""
    remaining = guarded("flush", timeout, producer.flush, timeout)
    if remaining:
        raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, f"{remaining} messages not delivered"))
