"""The verbs users type, run as real processes against the session broker."""

from __future__ import annotations

import json
import subprocess
import sys

import orjson
import pytest

from stream.kafka import read_all
from stream.settings import Settings
from tests.support import run_worker

pytestmark = pytest.mark.integration


def _cli(settings: Settings, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = settings.environment() | {"COLUMNS": "200"}
    command = [sys.executable, "-m", "anomstream", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def test_replay_score_and_tail_alerts_from_the_command_line(kafka_settings: Settings) -> None:
    settings = kafka_settings
    created = _cli(settings, "topics", "create")
    assert created.returncode == 0 and f"{settings.topic('alerts')}: exists" in created.stderr

    replayed = _cli(settings, "replay", "kdd", "--limit", "3000", "--rate", "0")
    assert replayed.returncode == 0, replayed.stderr
    assert "sent 3,000" in replayed.stderr and "delivered 3,000, failed 0" in replayed.stderr

    stats = run_worker(settings, max_events=3000)
    assert stats.events == 3000

    tailed = _cli(settings, "alerts", "tail", "--from-beginning", "--json", "--limit", "20")
    assert tailed.returncode == 0, tailed.stderr
    alerts = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert len(alerts) == 20 and all(a["stream"] == "kdd" for a in alerts)

    # `tail` follows forever: ask for as many serious alerts as the topic holds (the first rows
    # of `corrected` are mostly normal traffic, so there are not many).
    published = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts"))]
    n_serious = sum(a["severity"] != "low" for a in published)
    assert n_serious > 0
    limit = str(min(n_serious, 10))
    serious = _cli(
        settings, "alerts", "tail", "--from-beginning", "--json", "--severity", "medium", "--limit", limit
    )
    assert serious.returncode == 0, serious.stderr
    severities = [json.loads(line)["severity"] for line in serious.stdout.splitlines()]
    assert len(severities) == int(limit) and "low" not in severities

    readable = _cli(settings, "alerts", "tail", "--from-beginning", "--limit", "3")
    lines = readable.stdout.splitlines()
    assert len(lines) == 3 and all("score" in line and "label=" in line for line in lines)


def test_models_list_shows_the_production_model(kafka_settings: Settings) -> None:
    listed = _cli(kafka_settings, "models", "list", "--stream", "kdd")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if " ae " in line)
    assert "kdd" in row and "production" in row


def test_unknown_stream_and_missing_model_errors_are_clear(kafka_settings: Settings, tmp_path) -> None:  # noqa: ANN001
    empty = kafka_settings.model_copy(update={"registry_dir": tmp_path})
    result = _cli(empty, "worker", "--streams", "kdd", timeout=120)
    assert result.returncode == 1
    assert "no production model" in result.stderr and "anomstream train --stream kdd" in result.stderr
