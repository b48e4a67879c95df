"""Log hygiene for Kafka clients: a repeated client error is logged once, then counted.

librdkafka retries by itself and reports every failed attempt, once through ``error_cb`` and once more
through its own log. During a 30 s broker outage that was over two thousand lines. Here the first
occurrence of an error is logged, later ones are counted, and the count is logged with the next
occurrence once ``interval`` seconds have passed ("... (repeated 57 times in the last 10 s)").
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Hashable

log = logging.getLogger("stream.kafka")
# librdkafka's own log lines (broker connection trouble, retries) go through Python logging.
rdkafka_log = logging.getLogger("librdkafka")

_NUMBERS = re.compile(r"\d+")


class RepeatThrottle:
    """Lets the first of a run of equal keys through, then one per ``interval`` with the count skipped.

    >>> now = [0.0]
    >>> throttle = RepeatThrottle(interval=10, clock=lambda: now[0])
    >>> [throttle.admit("refused") for _ in range(3)]
    [(True, 0), (False, 0), (False, 0)]
    >>> now[0] = 11.0
    >>> throttle.admit("refused")
    (True, 2)
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: dict[Hashable, float] = {}
        self._skipped: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: Hashable) -> tuple[bool, int]:
        """(log this one?, how many were skipped since the last one logged)."""
        with self._lock:
            now = self.clock()
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._skipped[key] = self._skipped.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._skipped.pop(key, 0)


def _repeated(skipped: int, interval: float) -> str:
    return f" (repeated {skipped} times in the last {interval:.0f} s)" if skipped else ""


class _ClientErrors:
    """``error_cb`` of every client: transient trouble as warnings, throttled; fatal errors always."""

    def __init__(self, throttle: RepeatThrottle) -> None:
        self.throttle = throttle

    def __call__(self, error) -> None:  # noqa: ANN001 - confluent_kafka.KafkaError
        if error.fatal():
            log.error("kafka client (fatal): %s", error.str())
            return
        admitted, skipped = self.throttle.admit(("error_cb", error.code()))
        if admitted:
            log.warning("kafka: %s%s", error.str(), _repeated(skipped, self.throttle.interval))


class _LibrdkafkaLines(logging.Filter):
    """librdkafka's own log: drop what ``error_cb`` already reports and benign start-up retries;
    throttle the rest by facility and message shape (numbers ignored)."""

    ALREADY_REPORTED = frozenset({"FAIL", "ERROR"})  # connection failures arrive through error_cb too
    BENIGN = ("Coordinator load in progress", "Not coordinator", "Broker handle destroyed")

    def __init__(self, throttle: RepeatThrottle) -> None:
        super().__init__()
        self.throttle = throttle

    def filter(self, record: logging.LogRecord) -> bool:
        facility = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        message = record.getMessage()
        if facility in self.ALREADY_REPORTED or any(text in message for text in self.BENIGN):
            return False
        admitted, skipped = self.throttle.admit(("rdkafka", facility, _NUMBERS.sub("#", message)))
        if admitted and skipped:
            record.msg, record.args = message + _repeated(skipped, self.throttle.interval), ()
        return admitted


THROTTLE = RepeatThrottle()
client_error_cb = _ClientErrors(THROTTLE)
rdkafka_log.addFilter(_LibrdkafkaLines(THROTTLE))


def delivery_failure(topic: str, error) -> None:  # noqa: ANN001 - confluent_kafka.KafkaError
    """Log a failed delivery, throttled per topic and error code."""
    admitted, skipped = THROTTLE.admit(("delivery", topic, error.code()))
    if admitted:
        log.error("delivery to %s failed: %s%s", topic, error.str(), _repeated(skipped, THROTTLE.interval))
