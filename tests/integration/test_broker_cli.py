"""`anomstream broker start|status|stop` manage a real local Kafka process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream.broker import free_port, port_open

pytestmark = pytest.mark.integration


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "anomstream", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)


def test_broker_lifecycle(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMSTREAM_")}
    port = free_port()
    where = ["--port", str(port), "--data-dir", str(tmp_path / "kafka")]
    started = _cli("broker", "start", *where, env=env)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"127.0.0.1:{port}"
        status = _cli("broker", "status", *where, env=env)
        assert status.returncode == 0 and "running at" in status.stdout
        # Asked by port alone (another --data-dir): the broker still answers, so it is running.
        by_port = _cli("broker", "status", "--port", str(port), env=env | {"XDG_STATE_HOME": str(tmp_path)})
        assert by_port.returncode == 0 and f"running at 127.0.0.1:{port}" in by_port.stdout, by_port
        assert (tmp_path / "kafka" / "logs" / "server.log").stat().st_size > 0
        again = _cli("broker", "start", *where, env=env)  # idempotent
        assert again.returncode == 0 and again.stdout.strip() == f"127.0.0.1:{port}"
    finally:
        stopped = _cli("broker", "stop", *where, env=env)
    assert stopped.returncode == 0 and "broker stopped" in stopped.stderr
    assert not port_open("127.0.0.1", port)
    assert _cli("broker", "status", *where, env=env).returncode == 1


def test_configured_cluster_means_no_broker_is_started_and_says_so(tmp_path: Path) -> None:
    # It used to start nothing and exit 0, so a script went on as if a broker ran.
    env = {**os.environ, "ANOMSTREAM_BOOTSTRAP_SERVERS": "kafka.example:9092"}
    result = _cli("broker", "start", "--data-dir", str(tmp_path / "k"), env=env)
    assert result.returncode == 1 and "ANOMSTREAM_BOOTSTRAP_SERVERS is set" in result.stderr
    assert not (tmp_path / "k").exists()
