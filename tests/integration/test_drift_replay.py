"""``anomstream replay ... --drift`` as users type it, against the session broker: the change lands
at the asked event, and the drift.phase headers on the topic say where."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from producers.drift import PHASE_HEADER, true_change_offsets
from stream.kafka import header, read_all
from stream.settings import Settings

pytestmark = pytest.mark.integration


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = settings.environment() | {"COLUMNS": "200"}
    command = [sys.executable, "-m", "anomstream", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)


def test_kdd_gradual_drift_replay_carries_its_phases(kafka_settings: Settings) -> None:
    settings = kafka_settings
    run = _cli(settings, "replay", "kdd", "--drift", "gradual", "--drift-at", "1000", "--drift-span", "1000",
               "--limit", "3000")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "delivered 3,000, failed 0" in run.stderr
    messages = read_all(settings, settings.topic("kdd"))
    phases = Counter(header(m, PHASE_HEADER).decode() for m in messages)
    # The mixture share reaches 1 ("after") at the span's last event.
    assert phases["before"] == 1000 and phases["after"] == 1001
    assert sum(n for phase, n in phases.items() if phase not in ("before", "after")) == 999
    # The first changed event of each partition is where a detector's delay is measured from.
    first = true_change_offsets(settings, settings.topic("kdd"))
    changed = {(m.partition(), m.offset()) for m in messages if header(m, PHASE_HEADER) != b"before"}
    assert first == {p: min(o for q, o in changed if q == p) for p, _ in changed}


def test_sensor_level_drift_replay_from_the_command_line(kafka_settings: Settings) -> None:
    settings = kafka_settings
    run = _cli(settings, "replay", "sensor", "--series", "nyc_taxi", "--drift", "level", "--drift-at", "500",
               "--limit", "800")  # fmt: skip
    assert run.returncode == 0, run.stderr
    messages = read_all(settings, settings.topic("sensor"))
    assert [header(m, PHASE_HEADER) for m in messages] == [b"before"] * 500 + [b"after"] * 300
