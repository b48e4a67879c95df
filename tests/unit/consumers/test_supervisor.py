"""The replica supervisor with real child processes (small Python programs standing in for workers):
ids and ports per replica, restarts after a crash, giving up on a crash loop, SIGTERM forwarded."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from consumers.supervisor import MAX_RESTARTS_PER_MINUTE, ReplicaSupervisor, worker_command
from stream.settings import Settings
from stream.signals import StopFlag


def _program(log: Path, body: str) -> object:
    """A command builder: a Python child that logs its arguments to ``log``, then runs ``body``."""
    script = (
        f"import signal, sys, time\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n" + body
    )

    def command(*args: str) -> list[str]:
        return [sys.executable, "-c", script, *args]

    return command


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_the_worker_command_runs_this_interpreter_s_anomstream() -> None:
    assert worker_command("--eos") == [sys.executable, "-m", "anomstream", "worker", "--eos"]


def test_each_replica_gets_a_stable_id_its_own_port_and_sigterm_on_stop(tmp_path: Path) -> None:
    log, stop = tmp_path / "args.log", StopFlag(install=False)
    # Each child waits for SIGTERM, then exits 0: a clean shutdown.
    body = "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\ntime.sleep(60)\nsys.exit(3)\n"
    supervisor = ReplicaSupervisor(3, ["--eos"], stop, metrics_port=9500, command=_program(log, body))
    threading.Timer(1.5, stop.set).start()
    started = time.monotonic()
    assert supervisor.run() == 0
    assert time.monotonic() - started < 10, "children stopped on SIGTERM, not after their sleep"
    assert sorted(_lines(log)) == [
        f"--worker-id replica-{i} --eos --metrics-port {9500 + i}" for i in range(3)
    ]


def test_a_crashed_replica_is_restarted_with_the_same_id(tmp_path: Path) -> None:
    log, stop = tmp_path / "args.log", StopFlag(install=False)
    marker = tmp_path / "crashed"
    # The first run crashes; the restarted one waits for SIGTERM.
    body = (
        f"import os\nif not os.path.exists({str(marker)!r}):\n"
        f"    open({str(marker)!r}, 'w').close(); sys.exit(1)\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\ntime.sleep(60)\n"
    )
    supervisor = ReplicaSupervisor(1, [], stop, command=_program(log, body))
    threading.Timer(3.0, stop.set).start()
    assert supervisor.run() == 0
    assert _lines(log) == ["--worker-id replica-0", "--worker-id replica-0"]


def test_a_crash_loop_gives_up_with_a_failure(tmp_path: Path) -> None:
    log, stop = tmp_path / "args.log", StopFlag(install=False)
    supervisor = ReplicaSupervisor(1, [], stop, command=_program(log, "sys.exit(1)\n"))
    threading.Timer(60, stop.set).start()  # a safety net: the supervisor must give up long before
    assert supervisor.run() == 1
    assert len(_lines(log)) == MAX_RESTARTS_PER_MINUTE + 1
    stop.set()


def test_exit_codes_are_combined_not_or_ed(tmp_path: Path) -> None:
    """One replica interrupted (130), one failed (1): the supervisor reports the failure, 1 (it said 131)."""
    log, stop = tmp_path / "args.log", StopFlag(install=False)
    body = (
        "code = 130 if 'replica-0' in sys.argv else 1\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(code))\ntime.sleep(60)\n"
    )
    supervisor = ReplicaSupervisor(2, [], stop, command=_program(log, body))
    threading.Timer(1.5, stop.set).start()
    assert supervisor.run() == 1


def test_replicas_get_the_supervisor_s_settings_not_the_caller_s_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 28: ``worker --replicas N`` children read os.environ, so settings given otherwise (a
    demo's --broker-port, a test's) never reached them: they looked for the broker elsewhere."""
    monkeypatch.setenv("ANOMSTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("ANOMSTREAM_TOPIC_PREFIX", "callers.")
    settings = Settings(bootstrap_servers="127.0.0.1:39092", topic_prefix="mine.", batch_size=77)
    log, stop = tmp_path / "args.log", StopFlag(install=False)
    body = (
        f"import os\nopen({str(tmp_path / 'env.log')!r}, 'a').write(' '.join(os.environ.get(k, '-') for k in "
        "('ANOMSTREAM_BOOTSTRAP_SERVERS', 'ANOMSTREAM_TOPIC_PREFIX', 'ANOMSTREAM_BATCH_SIZE')) + '\\n')\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\ntime.sleep(60)\n"
    )
    supervisor = ReplicaSupervisor(2, [], stop, command=_program(log, body), settings=settings)
    seen = tmp_path / "env.log"
    threading.Thread(target=lambda: (_wait_for_lines(seen, 2), stop.set()), daemon=True).start()
    assert supervisor.run() == 0
    assert _lines(seen) == ["127.0.0.1:39092 mine. 77"] * 2


def _wait_for_lines(path: Path, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_lines(path)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
