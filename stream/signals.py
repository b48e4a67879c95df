"""SIGTERM / SIGINT mapped to "finish what is in hand, commit, exit" for every long-running loop,
within a bound (:class:`ShutdownBound`)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

EXIT_ABANDONED = 75  # EX_TEMPFAIL, as the watchdog's: restart me; what was in flight is not lost


class StopFlag:
    """Set by SIGTERM or SIGINT (or by calling ``set``); loops check it between batches.

    >>> stop = StopFlag(install=False)
    >>> bool(stop), stop.set(), bool(stop)
    (False, None, True)
    """

    def __init__(self, install: bool = True) -> None:
        self._event = threading.Event()
        self.signal: int | None = None
        self.since: float | None = None  # monotonic time of the first stop request
        # Only a flag that owns the process's signals may end the process (ShutdownBound): one in a
        # test or a helper thread never does.
        self.installed = install and threading.current_thread() is threading.main_thread()
        if self.installed:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means "now"
        self.signal = signum
        self.set()

    def set(self) -> None:
        if self.since is None:
            self.since = time.monotonic()
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


class ShutdownBound:
    """Once a stop is asked for, the process has ``grace_s`` seconds to finish; then it exits 75 with
    one line naming what it abandoned (``abandoned()``, e.g. "2 batches in flight (812 events)").

    Every wait loop checks its stop flag, so a stop is normally quick and clean; this is the bound when
    something does not return (a librdkafka call inside C, a broker that is gone). Under ``--eos`` what
    is abandoned is an open transaction, aborted by the broker; at-least-once, uncommitted offsets,
    re-delivered to the next owner. Armed only on a flag that owns the process's signals.

    >>> bound = ShutdownBound(0.1, "test", lambda: "nothing")
    >>> bound.finished()
    """

    def __init__(self, grace_s: float, process: str, abandoned: Callable[[], str]) -> None:
        self.grace_s = grace_s
        self.process = process
        self.abandoned = abandoned
        self._finished = threading.Event()
        self.enabled = True

    def arm(self, stop: StopFlag) -> ShutdownBound:
        """Count down from the moment ``stop`` is set. Only when it owns the process's signals: a
        loop run by a test or a helper thread (its own flag) never ends the process."""
        self.enabled = stop.installed
        if self.enabled:
            threading.Thread(target=self._watch, args=(stop,), name="shutdown-bound", daemon=True).start()
        return self

    def begin(self) -> ShutdownBound:
        """Count down from now: a failure's shutdown, or a server that handles signals itself."""
        if self.enabled:
            threading.Thread(target=self._count_down, name="shutdown-bound", daemon=True).start()
        return self

    def finished(self) -> None:
        """The process finished its shutdown: nothing to abandon."""
        self._finished.set()

    def _watch(self, stop: StopFlag) -> None:
        while not stop.wait(1.0):
            if self._finished.is_set():
                return
        self._count_down()

    def _count_down(self) -> None:
        if self._finished.wait(self.grace_s):
            return
        try:
            what = self.abandoned()
        except Exception as exc:  # noqa: BLE001 - the exit must happen whatever the description does
            what = f"(unknown: {type(exc).__name__}: {exc})"
        line = (
            f"error: {self.process} did not stop within the {self.grace_s:g}s grace period "
            f"(ANOMSTREAM_RESILIENCE__SHUTDOWN_GRACE_S): exiting, abandoning {what}"
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        print(line, file=sys.stderr, flush=True)
        os._exit(EXIT_ABANDONED)
