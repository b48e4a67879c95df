"""Every user error is one clear line and a nonzero exit, never a traceback (issue: hostile but fair
user). Each row is an invocation that misbehaved before: accepted with exit 0, a Python traceback, or
an unhelpful message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import data_root

NO_BROKER = "127.0.0.1:9"  # the discard port: connections are refused at once
ANSI = re.compile(r"\x1b\[[0-9;]*m")

CASES = [
    # (id, args, extra environment, exit code, what the one line must say)
    ("rate-negative", ["replay", "kdd", "--rate", "-5"], {}, 2, r"--rate.*-5"),
    ("rate-nan", ["replay", "kdd", "--rate", "nan"], {}, 2, r"--rate.*finite"),
    ("limit-negative", ["replay", "kdd", "--limit", "-3"], {}, 2, r"--limit"),
    ("replicas-zero", ["worker", "--replicas", "0"], {}, 2, r"--replicas"),
    ("replicas-negative", ["worker", "--replicas", "-2"], {}, 2, r"--replicas"),
    ("partitions-zero", ["topics", "create", "--partitions", "0"], {}, 2, r"--partitions"),
    ("partitions-negative", ["topics", "create", "--partitions", "-3"], {}, 2, r"--partitions"),
    ("partitions-huge", ["topics", "create", "--partitions", "100000"], {}, 2, r"--partitions"),
    ("severity-bogus", ["alerts", "tail", "--severity", "bogus"], {}, 2, r"--severity.*bogus"),
    ("verdict-bogus", ["alerts", "verdict", "9f0c1c0c", "maybe"], {}, 1, r"verdict must be benign or malicious, got 'maybe'"),  # noqa: E501
    ("verdict-reason-long", ["alerts", "verdict", "9f0c1c0c", "benign", "--reason", "x" * 2001], {}, 1, r"at most 2000"),  # noqa: E501
    ("verdict-no-broker", ["alerts", "verdict", "9f0c1c0c", "benign"], {}, 1, r"no Kafka broker answered"),
    ("replay-not-kdd", ["replay", "kdd", "--file", "/etc/passwd"], {}, 1, r"/etc/passwd is not a KDD Cup 99"),
    ("replay-missing-file", ["replay", "kdd", "--file", "/nonexistent.gz"], {}, 1, r"/nonexistent.gz"),
    ("replay-directory", ["replay", "kdd", "--file", "/tmp"], {}, 1, r"/tmp is a directory"),
    ("batch-size-text", ["worker"], {"ANOMSTREAM_BATCH_SIZE": "abc"}, 1, r"ANOMSTREAM_BATCH_SIZE='abc'"),
    ("broker-port-range", ["broker", "status"], {"ANOMSTREAM_BROKER_PORT": "99999"}, 1, r"ANOMSTREAM_BROKER_PORT"),  # noqa: E501
    ("kafka-property-unknown", ["topics", "create"], {"ANOMSTREAM_KAFKA__NO_SUCH": "1"}, 1, r"no\.such"),
    ("tail-no-broker", ["alerts", "tail"], {}, 1, r"no Kafka broker answered at 127\.0\.0\.1:9"),
    ("replay-no-broker", ["replay", "kdd", "--limit", "10"], {}, 1, r"no Kafka broker answered"),
    ("evaluate-unknown-stream", ["evaluate", "--stream", "nosuch"], {}, 2, r"--stream.*nosuch"),
    ("train-unknown-stream", ["train", "--stream", "nosuch"], {}, 2, r"--stream.*nosuch"),
    ("fetch-unknown-dataset", ["data", "fetch", "nosuch"], {}, 1, r"unknown dataset 'nosuch': use one of ecg, kdd, nab"),  # noqa: E501
    ("broker-start-with-cluster", ["broker", "start"], {"ANOMSTREAM_BOOTSTRAP_SERVERS": "k:9092"}, 1,
     r"ANOMSTREAM_BOOTSTRAP_SERVERS is set"),
    ("promote-unknown-model", ["models", "promote", "kdd", "ae", "7"], {}, 1, r"no model kdd/ae v7"),
    ("worker-no-model", ["worker"], {}, 1, r"anomstream train --stream kdd"),
    ("sensor-unknown-series", ["replay", "sensor", "--series", "nosuch"], {}, 1, r"nosuch"),
    ("up-negative-rate", ["up", "--rate", "-1"], {}, 2, r"--rate"),
    ("bench-no-events", ["bench", "--events", "0"], {}, 2, r"--events"),
    ("unknown-verb", ["frobnicate"], {}, 2, r"frobnicate"),
]  # fmt: skip


def _run(args: list[str], env: dict[str, str], home: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANOMSTREAM_")}
    environment |= {
        "ANOMSTREAM_BOOTSTRAP_SERVERS": NO_BROKER,
        "ANOMSTREAM_DATA_DIR": str(data_root()),
        "XDG_DATA_HOME": str(home / "share"),
        "XDG_STATE_HOME": str(home / "state"),
        "COLUMNS": "80",
        **env,
    }
    command = [sys.executable, "-m", "anomstream", *args]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)


@pytest.mark.data
@pytest.mark.parametrize(("args", "env", "code", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_invocation_is_one_clear_line_and_a_nonzero_exit(
    args: list[str], env: dict[str, str], code: int, says: str, tmp_path: Path
) -> None:
    result = _run(args, env, tmp_path)
    output = ANSI.sub("", result.stderr + result.stdout)
    lines = [line for line in output.splitlines() if line.strip()]
    assert result.returncode == code, output
    assert "Traceback" not in output and 'File "' not in output, output
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, output
    assert re.search(says, errors[0]), errors[0]


def test_verbose_shows_the_traceback_of_a_user_error(tmp_path: Path) -> None:
    result = _run(["-v", "replay", "kdd", "--file", "/etc/passwd"], {}, tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_up_on_a_busy_broker_port_is_one_line_naming_the_option_up_has(tmp_path: Path) -> None:
    """It printed a 48-line traceback ending "pick another with --port", an option `up` did not have."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run(["up", "--broker-port", str(port)], {"ANOMSTREAM_BOOTSTRAP_SERVERS": ""}, tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and f"port {port} is already in use" in errors[0] and "--broker-port" in errors[0]
