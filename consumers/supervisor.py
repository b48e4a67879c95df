"""``anomstream worker --replicas N``: N worker processes in one consumer group, restarted on crash.

Each replica is a separate process (its own GIL, its own Kafka clients); the consumer group spreads
partitions across them. SIGTERM/SIGINT are forwarded so every replica finishes and commits its batch.
Each replica is started with the supervisor's settings as its environment
(:meth:`~stream.settings.Settings.environment`), not the caller's: settings given another way than the
environment (a test's, a demo's ``--broker-port``) reach the replicas too.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from stream.settings import Settings
from stream.signals import StopFlag

log = logging.getLogger(__name__)

MAX_RESTARTS_PER_MINUTE = 5


def worker_command(*args: str) -> list[str]:
    """The command line that starts one scoring worker process: ``anomstream worker ARGS``.

    Every launcher (the supervisor, the demo, the benchmark, tests) goes through here, with this
    interpreter, so a worker runs the same code and environment as whoever started it.
    """
    return [sys.executable, "-m", "anomstream", "worker", *args]


@dataclass
class Replica:
    index: int
    process: subprocess.Popen
    started: float
    restarts: list[float]


def combined_exit_code(codes: list[int]) -> int:
    """One exit code for several processes: 0 when all succeeded, else the first real failure, else
    the first interruption (130, or a signal's negative code as 128 + signal).

    Exit codes are not bit flags: OR-ing 130 (interrupted) and 1 (failed) made 131.

    >>> combined_exit_code([0, 130, 1]), combined_exit_code([0, 130]), combined_exit_code([-15, 0])
    (1, 130, 143)
    """
    normalised = [128 - code if code < 0 else code for code in codes]
    failures = [code for code in normalised if code and code not in (130, 143)]
    interrupts = [code for code in normalised if code in (130, 143)]
    return failures[0] if failures else interrupts[0] if interrupts else 0


class ReplicaSupervisor:
    def __init__(
        self,
        replicas: int,
        worker_args: list[str],
        stop: StopFlag | None = None,
        metrics_port: int | None = None,
        command: Callable[..., list[str]] = worker_command,
        grace_s: float = 25.0,
        settings: Settings | None = None,
    ) -> None:
        # A replica has grace_s to finish after SIGTERM (then it exits 75 on its own): SIGKILL only
        # a little after that.
        self.grace_s = grace_s
        self.count = replicas
        self.worker_args = worker_args
        self.metrics_port = metrics_port
        self.stop = stop if stop is not None else StopFlag()
        self.command = command  # builds one replica's command line from its arguments
        # None: the replicas inherit this process's environment (a caller with no settings object).
        # Fault hooks (ANOMSTREAM_TEST_*) are not settings: they are passed on as they are.
        self.env = None
        if settings is not None:
            hooks = {k: v for k, v in os.environ.items() if k.startswith("ANOMSTREAM_TEST_")}
            self.env = {**settings.environment(), **hooks}

    def _spawn(self, index: int) -> subprocess.Popen:
        # A stable id per replica slot: under --eos it is the transactional id, so a restarted
        # replica fences its crashed predecessor's open transaction instead of waiting it out.
        worker_id = f"replica-{index}"
        command = self.command("--worker-id", worker_id, *self.worker_args)
        if self.metrics_port is not None:
            command += ["--metrics-port", str(self.metrics_port + index)]
        return subprocess.Popen(command, env=self.env)  # noqa: S603 - our own interpreter and module

    def run(self) -> int:
        replicas = [Replica(i, self._spawn(i), time.monotonic(), []) for i in range(self.count)]
        log.info("supervising %d worker replicas: pids %s", self.count, [r.process.pid for r in replicas])
        exit_code = 0
        while not self.stop:
            for replica in replicas:
                code = replica.process.poll()
                if code is None:
                    continue
                now = time.monotonic()
                replica.restarts = [t for t in replica.restarts if now - t < 60] + [now]
                if len(replica.restarts) > MAX_RESTARTS_PER_MINUTE:
                    log.error(
                        "replica %d crashed %d times in a minute: giving up",
                        replica.index,
                        len(replica.restarts),
                    )
                    self.stop.set()
                    exit_code = 1
                    break
                log.warning("replica %d exited with %s: restarting", replica.index, code)
                replica.process = self._spawn(replica.index)
            self.stop.wait(0.5)
        return self._terminate(replicas) or exit_code

    def _terminate(self, replicas: list[Replica]) -> int:
        grace = self.grace_s + 5
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        codes = []
        for replica in replicas:
            try:
                codes.append(replica.process.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                log.warning("replica %d did not stop within %.0fs: killing it", replica.index, grace)
                replica.process.kill()
                codes.append(1)
        return combined_exit_code(codes)
