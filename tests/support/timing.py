"""Time in tests: wait on a condition with a deadline (never sleep, then count), and a fake clock for
code that paces itself (a correctness test does not bound wall time; the benchmark measures it)."""

from __future__ import annotations

import time
from collections.abc import Callable

from stream.signals import StopFlag


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.5) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` seconds (checked every ``interval``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class FakeClock:
    """A :class:`producers.replay.Clock` that moves only when slept on, or when a test advances it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float, stop: StopFlag) -> None:
        if stop:
            return
        self.sleeps.append(seconds)
        self.t += seconds

    def advance(self, seconds: float) -> None:
        """Time spent working (producing) between two waits."""
        self.t += seconds
