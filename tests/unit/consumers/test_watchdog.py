"""The watchdog on blocking librdkafka calls, and the SIGTERM bound: no broker needed, real threads and
real processes (a stuck call is a call that does not return, whatever is inside it)."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import TopicPartition

from consumers.publisher import Publisher, ScoredBatch
from stream.kafka.watchdog import StuckCallError, Watchdog
from stream.signals import EXIT_ABANDONED, StopFlag


def test_a_call_that_returns_in_time_returns_its_value_and_raises_its_own_errors() -> None:
    guard = Watchdog(margin_s=1.0)
    assert guard.call("add", 1.0, lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        guard.call("divide", 1.0, lambda: 1 / 0)
    assert guard.overruns == 0


def test_a_call_past_its_timeout_and_margin_raises_and_the_next_call_gets_a_fresh_thread() -> None:
    guard = Watchdog(margin_s=0.2)
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(StuckCallError, match=r"send_offsets_to_transaction did not return within its 0.1s"):
        guard.call("send_offsets_to_transaction", 0.1, release.wait)
    assert 0.3 <= time.monotonic() - started < 2.0
    # The stuck helper thread is abandoned, not reused: the next call runs at once.
    assert guard.call("flush", 0.1, lambda: 0) == 0
    assert guard.overruns == 1
    release.set()


def test_a_timeout_keyword_passes_through_to_the_call() -> None:
    assert Watchdog(margin_s=1.0).call("committed", 0.5, lambda timeout: timeout, timeout=0.5) == 0.5


def test_submit_gives_up_when_stopped_while_the_publisher_is_stuck() -> None:
    """Issue 19: the worker thread looped in Publisher.submit, which never looked at the stop flag,
    while the publisher thread was stuck in librdkafka: SIGTERM was ignored."""
    stop = StopFlag(install=False)
    publisher = Publisher(None, None, eos=True, worker_id="w", dead_letter_topic="dl", stop=stop)  # type: ignore[arg-type]
    publisher.inbox.put(ScoredBatch(1, [], [TopicPartition("t", 0, 1)]))  # nobody takes it: stuck
    answer: queue.Queue[bool] = queue.Queue()
    waiter = threading.Thread(
        target=lambda: answer.put(publisher.submit(ScoredBatch(2, [], []))), daemon=True
    )
    waiter.start()
    stop.set()
    assert answer.get(timeout=5) is False, "submit must return once a stop is asked for"
    assert publisher.in_flight == 0


STUCK_AFTER_SIGTERM = """
import os, signal, threading
from stream.signals import ShutdownBound, StopFlag
stop = StopFlag()
ShutdownBound(1.0, "test process", lambda: "2 batches in flight").arm(stop)
print("ready", flush=True)
threading.Event().wait()  # stuck for good, as inside librdkafka
"""


def test_sigterm_ends_a_stuck_process_within_the_grace_period_with_one_line() -> None:
    process = subprocess.Popen([sys.executable, "-c", STUCK_AFTER_SIGTERM], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(15)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
    assert code == EXIT_ABANDONED
    assert took < 5, f"exited {took:.1f}s after SIGTERM with a 1s grace period"
    assert process.stderr is not None
    lines = process.stderr.read().strip().splitlines()
    assert lines == [
        "error: test process did not stop within the 1s grace period "
        "(ANOMSTREAM_RESILIENCE__SHUTDOWN_GRACE_S): exiting, abandoning 2 batches in flight"
    ]
