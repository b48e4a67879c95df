"""A watchdog for the librdkafka calls that can block longer than their own timeout.

librdkafka takes a timeout for every blocking call and almost always honours it, but not always: a
transactional coordinator request that ignores it (librdkafka #5456), a hang when the cached group
coordinator went away (#5511). Measured here (issue 19): after a broker restart a worker's
``send_offsets_to_transaction(..., 30)`` was still blocked six minutes later, and nothing noticed.

:meth:`Watchdog.call` runs the call in a helper thread and waits for it at most its own timeout
plus a margin (``ANOMSTREAM_RESILIENCE__CALL_MARGIN_S``). When it overruns, :class:`StuckCallError`
says which call, and the helper thread stays behind, blocked: a thread inside C cannot be
interrupted. So the caller never uses that client again. It recreates it (a transactional producer
is safe to recreate: the new one's ``init_transactions`` bumps the epoch and fences the old one), or
lets the error end the process with one line and exit code 75 (:data:`EXIT_STUCK`), for its
supervisor (``worker --replicas``), Docker (``restart: unless-stopped``) or Kubernetes to restart it.

Every guarded call, and what its overrun does:

============================================  ===============================================
call (where)                                  on overrun
============================================  ===============================================
``send_offsets_to_transaction``,              the worker's publisher recreates its transactional
``commit_transaction``, ``abort_transaction``  producer (retrying ``init_transactions`` on the new
``init_transactions``, ``flush`` (worker      one), asks the group what was committed, and
publisher, consumers/publisher.py)            retries the batch until ``recovery_s``
``committed`` (the publisher's own probe      as above: the batch is retried
consumer)
``commit`` (sync; worker shutdown, drift      StuckCallError ends the process: one line, exit 75
monitor checkpoint)
``flush`` (worker shutdown, drift monitor     StuckCallError ends the process: one line, exit 75
checkpoint via ``flush_or_raise``)
``flush`` (replay, at its end)                what is unacknowledged is reported as failed
``list_topics``, ``get_watermark_offsets``    raised like a broker error: the dashboard's feed
(``wait_for_broker``, ``partitions_of``,      makes new readers; a worker or monitor starting
``watermarks``), ``list_topics`` and          exits 75; one-shot commands exit 75
``committed`` (dashboard offsets poller)
``close`` (every consumer of the worker, the  abandoned, logged: the process is leaving anyway
drift monitor, the dashboard, readers)
============================================  ===============================================

Not guarded, on purpose: consumer calls made inside a rebalance callback (the worker's sync commit
in ``on_revoke``, the drift monitor's ``committed`` in ``on_assign`` and commit in ``on_revoke``):
from another thread they deadlock against the ``consume()`` the callback runs in (measured), so they
stay on the consuming thread, bounded by their own timeout, ``/healthz`` and the SIGTERM bound.
Calls that only read local state (``position``, cached watermarks, ``consumer_group_metadata``,
``assignment``), ``produce``, ``begin_transaction`` and ``poll``/``consume`` (their timeout is a wait
for messages) are not guarded either. Calls without a timeout of their own (``commit``, ``close``)
are given :data:`UNTIMED_CALL_S`.

A consumer can also stay out of its group after a coordinator restart with no call blocked at all
(librdkafka #2944, #3082): the worker recreates it past ``ANOMSTREAM_RESILIENCE__REJOIN_S``.

>>> Watchdog(margin_s=0.05).call("sleep", 0.05, __import__("time").sleep, 5)
Traceback (most recent call last):
...
stream.kafka.watchdog.StuckCallError: sleep did not return within its 0.05s timeout + 0.05s margin: ...
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from stream.errors import AnomstreamError

log = logging.getLogger(__name__)

T = TypeVar("T")

EXIT_STUCK = 75  # EX_TEMPFAIL: "try again later": restart me, nothing is lost
UNTIMED_CALL_S = 30.0  # the timeout given to calls that take none (sync commit, close)
DEFAULT_MARGIN_S = 15.0
IDLE_RUNNER_S = 60.0  # a helper thread with nothing to run for this long ends


class StuckCallError(AnomstreamError, RuntimeError):
    """A librdkafka call overran its own timeout by the margin; its client must not be used again."""

    exit_code = EXIT_STUCK

    def __init__(self, call: str, timeout: float, margin: float) -> None:
        super().__init__(
            f"{call} did not return within its {timeout:g}s timeout + {margin:g}s margin: librdkafka "
            "is stuck (broker or coordinator gone, librdkafka #5456/#5511); its client was abandoned, "
            "restart the process if it does not recover by itself"
        )
        self.call = call
        self.timeout = timeout


class _Runner:
    """One helper thread that runs the calls of one calling thread, one at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: tuple[Callable[..., Any], tuple, dict] | None = None
        self._wake = threading.Event()
        self._done = threading.Event()
        self._result: tuple[bool, Any] = (True, None)
        self.retired = False
        self._thread = threading.Thread(target=self._run, name="kafka-call", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> bool:
        """Hand over a call; False when this runner has retired (idle too long): make a new one."""
        with self._lock:
            if self.retired:
                return False
            self._job = (fn, args, kwargs)
            self._done.clear()
            self._wake.set()
            return True

    def wait(self, seconds: float) -> tuple[bool, Any] | None:
        """(ok, value or exception) once the call returned within ``seconds``; None when it did not."""
        if not self._done.wait(seconds):
            self.retired = True  # abandoned: blocked in C; it ends if the call ever returns
            return None
        return self._result

    def _run(self) -> None:
        while True:
            if not self._wake.wait(IDLE_RUNNER_S):
                with self._lock:
                    if not self._wake.is_set():
                        self.retired = True
                        return
            self._wake.clear()
            assert self._job is not None
            fn, args, kwargs = self._job
            self._job = None
            try:
                self._result = (True, fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
                self._result = (False, exc)
            self._done.set()
            if self.retired:
                return


class Watchdog:
    """Runs blocking librdkafka calls with a deadline: their own timeout plus ``margin_s``.

    One per process is enough (:func:`watchdog`); tests inject their own to force an overrun at a
    chosen step.
    """

    def __init__(self, margin_s: float = DEFAULT_MARGIN_S) -> None:
        self.margin_s = margin_s
        self.overruns = 0
        self._local = threading.local()

    def call(self, name: str, timeout: float, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, or StuckCallError once it ran ``timeout + margin_s`` seconds."""
        runner: _Runner | None = getattr(self._local, "runner", None)
        if runner is None or not runner.submit(fn, args, kwargs):
            runner = self._local.runner = _Runner()
            runner.submit(fn, args, kwargs)
        started = time.monotonic()
        outcome = runner.wait(timeout + self.margin_s)
        if outcome is None:
            self._local.runner = None
            self.overruns += 1
            error = StuckCallError(name, timeout, self.margin_s)
            log.error("watchdog: %s (after %.0fs)", error, time.monotonic() - started)
            raise error
        ok, value = outcome
        if not ok:
            raise value
        return value


_process = Watchdog()


def watchdog() -> Watchdog:
    """The process's watchdog (its margin set from the settings its clients are made with)."""
    return _process


def configure(margin_s: float) -> None:
    _process.margin_s = margin_s


def guarded(name: str, timeout: float, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """:meth:`Watchdog.call` on the process's watchdog."""
    return _process.call(name, timeout, fn, *args, **kwargs)


def close_quietly(client: Any, what: str, timeout: float = UNTIMED_CALL_S) -> None:
    """Close a consumer, abandoning it (logged) when librdkafka does not return: the process is
    leaving, and ``close`` has no timeout of its own."""
    try:
        guarded(f"close ({what})", timeout, client.close)
    except StuckCallError:
        log.warning("%s abandoned without closing: its partitions move after the session timeout", what)
    except Exception as exc:  # noqa: BLE001 - a consumer that cannot close cleanly is left to the broker
        log.warning("%s did not close cleanly: %s", what, exc)
