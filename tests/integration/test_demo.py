"""`anomstream up`, the README's demo command, as a user runs it: its own broker, worker, monitor, replay."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stream.broker import free_port
from tests.support import data_root

pytestmark = pytest.mark.integration


def test_the_demo_on_another_broker_port_scores_every_event(kdd_registry: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMSTREAM_")}
    env |= {
        "ANOMSTREAM_DATA_DIR": str(data_root()),
        "ANOMSTREAM_REGISTRY_DIR": str(kdd_registry),  # a model exists: the demo trains nothing
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "COLUMNS": "120",
    }
    port = str(free_port())
    command = [
        sys.executable,
        "-m",
        "anomstream",
        "up",
        "--broker-port",
        port,
        "--limit",
        "3000",
        "--rate",
        "0",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    worker_log = next((tmp_path / "state").rglob("worker.log"), None)
    printed = done.stdout + done.stderr  # rich writes the live table and the summary to stderr
    shown = printed + (worker_log.read_text()[-2000:] if worker_log else "")
    assert done.returncode == 0, shown
    # It used to start its workers on the default port (9092): "scored events 0" and a worker that
    # exited 1 with "no Kafka broker answered at 127.0.0.1:9092".
    summary = [line for line in printed.splitlines() if "scored events" in line]
    assert summary and "3,000" in summary[-1], shown
    assert "worker exited" not in printed, shown
    # The incident stage ran beside the worker: every alert grouped once, the label mix shown.
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in printed.splitlines()
            if line.count("│") >= 3}  # fmt: skip
    grouped, alerts = (int(n.replace(",", "")) for n in re.findall(r"[\d,]+", rows["alerts grouped"]))
    assert grouped == alerts > 0, shown
    assert int(rows["incidents"].split()[0].replace(",", "")) > 0, shown
    assert 0 < float(rows["incident label purity"]) <= 1, shown
