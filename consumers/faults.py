"""Faults a recovery test injects into a worker: an object the worker and its publisher are given.

A production worker is given :data:`NO_FAULTS`, whose hooks do nothing. ``anomstream worker`` builds a
:class:`CrashBeforeCommit` when ``ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT=N`` is set (:func:`from_env`): the
recovery tests run the worker as a process and SIGKILL it with batch N published and not committed, as
a machine failure would, with a second batch in flight behind it.

>>> crash = CrashBeforeCommit(3, kill=lambda batch, in_flight: print("killed", batch, in_flight))
>>> [crash.withhold(number, committed=number - 1) for number in (1, 2, 3, 4)]
[False, False, True, True]
>>> crash.scored(3, flush=lambda: None)  # batch 3 withheld, nothing behind it yet: alive
>>> crash.scored(4, flush=lambda: None)
killed 3 2
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

CRASH_ENV = "ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT"


class Faults(Protocol):
    """Where a worker can be made to fail. Each hook is called at one point of the commit path."""

    def withhold(self, number: int, committed: int) -> bool:
        """At-least-once: whether delivered batch ``number`` is kept from its offset commit, with
        ``committed`` batches committed before it."""
        ...

    def scored(self, number: int, flush: Callable[[], object]) -> None:
        """The worker loop, once batch ``number`` is the last one scored and handed over."""
        ...

    def before_commit_transaction(
        self, number: int, committed: int, flush: Callable[[], object], queued: Callable[[], int]
    ) -> None:
        """--eos: batch ``number``'s outputs and offsets are in its open transaction, not committed;
        ``queued`` says how many batches wait behind it."""
        ...


class NoFaults:
    """The production worker's faults: none."""

    def withhold(self, number: int, committed: int) -> bool:
        return False

    def scored(self, number: int, flush: Callable[[], object]) -> None:
        return None

    def before_commit_transaction(
        self, number: int, committed: int, flush: Callable[[], object], queued: Callable[[], int]
    ) -> None:
        return None


NO_FAULTS: Faults = NoFaults()


def sigkill(number: int, in_flight: int) -> None:
    """SIGKILL this process, as a machine failure would (the line the recovery tests look for first)."""
    log.warning(
        "%s: killing this worker before committing batch %d (%d batches in flight)",
        CRASH_ENV,
        number,
        in_flight,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class CrashBeforeCommit:
    """Kill the worker with batch ``batch`` (1, 2, ...) published and not committed, and the next batch
    scored behind it (two in flight), or after ``wait_s`` when the stream has nothing more."""

    def __init__(self, batch: int, wait_s: float = 10.0, kill: Callable[[int, int], None] = sigkill) -> None:
        self.batch = batch
        self.wait_s = wait_s
        self.kill = kill
        self._withheld = 0  # at-least-once: the first batch withheld stays the one named
        self._deadline: float | None = None

    def withhold(self, number: int, committed: int) -> bool:
        if not self._withheld and committed + 1 >= self.batch:
            self._withheld = number
        return bool(self._withheld)

    def scored(self, number: int, flush: Callable[[], object]) -> None:
        if not self._withheld:
            return
        if self._deadline is None:
            self._deadline = time.monotonic() + self.wait_s
        if number > self._withheld or time.monotonic() > self._deadline:
            flush()  # the withheld batch's outputs are written
            self.kill(self._withheld, number - self._withheld + 1)

    def before_commit_transaction(
        self, number: int, committed: int, flush: Callable[[], object], queued: Callable[[], int]
    ) -> None:
        if committed + 1 < self.batch:
            return
        flush()  # batch N's outputs are written (not committed)
        deadline = time.monotonic() + self.wait_s
        while not queued() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.kill(number, 1 + queued())


def from_env() -> Faults:
    """``ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT=N``: a :class:`CrashBeforeCommit` at batch N; else none."""
    batch = int(os.environ.get(CRASH_ENV) or 0)
    return CrashBeforeCommit(batch) if batch > 0 else NO_FAULTS
