"""SIGTERM / SIGINT mapped to "finish what is in hand, commit, exit" for every long-running loop."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopFlag:
    """Set by SIGTERM or SIGINT (or by calling ``set``); loops check it between batches.

    >>> stop = StopFlag(install=False)
    >>> bool(stop), stop.set(), bool(stop)
    (False, None, True)
    """

    def __init__(self, install: bool = True) -> None:
        self._event = threading.Event()
        self.signal: int | None = None
        if install and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means "now"
        self.signal = signum
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)
