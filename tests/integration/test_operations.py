"""Operating mistakes and outages against a real broker: a replay before `topics create` says what to
do at once; a broker outage is logged as a handful of lines, not one per failed attempt."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.broker import temporary_broker
from stream.kafka import create_topics
from stream.settings import Settings
from tests.support import corrected_sample, make_settings, replay, spawn_worker, wait_until
from tests.support.outages import all_scored

pytestmark = pytest.mark.integration


def test_replaying_before_the_topics_exist_is_one_line_that_says_create_them(
    kafka_settings: Settings,
) -> None:
    fresh = kafka_settings.model_copy(update={"topic_prefix": "never-created."})
    command = [sys.executable, "-m", "anomstream", "replay", "kdd", "--limit", "500"]
    result = subprocess.run(command, capture_output=True, text=True, env=fresh.environment(), timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1
    assert lines == [
        "error: topic never-created.kdd.connections does not exist: create the topics with "
        "`anomstream topics create` (add --schema S for a dataset schema's topic)"
    ], result.stderr  # it used to retry for 30 s and print ~1,500 delivery failures


def test_a_worker_started_before_its_topic_exists_says_create_it_in_one_line(
    kafka_settings: Settings,
) -> None:
    fresh = kafka_settings.model_copy(update={"topic_prefix": "never-created-w."})
    command = [sys.executable, "-m", "anomstream", "worker", "--streams", "kdd"]
    result = subprocess.run(command, capture_output=True, text=True, env=fresh.environment(), timeout=180)
    assert result.returncode == 1, result.stderr
    # It used to end on librdkafka's "KafkaException: ... Subscribed topic not available" as a bug.
    assert result.stderr.strip().splitlines()[-1] == (
        "error: topic never-created-w.kdd.connections does not exist: create the topics with "
        "`anomstream topics create` (add --schema S for a dataset schema's topic)"
    ), result.stderr


def test_a_broker_outage_is_logged_once_with_counts_not_per_attempt(
    kdd_registry: Path, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with temporary_broker() as broker:
        settings = make_settings(broker.bootstrap, kdd_registry)
        create_topics(settings)
        worker = spawn_worker(settings, log_path=log)
        try:
            assert wait_until(lambda: "assigned" in log.read_text(), 90), log.read_text()[-2000:]
            before = len(log.read_text().splitlines())
            broker.stop()
            time.sleep(20)  # librdkafka retries every connection many times a second meanwhile
            broker.start()
            # Back means working: a few events replayed after the restart are all scored.
            replay(settings, corrected_sample(settings.data_dir, 20, seed=51))
            assert wait_until(all_scored(settings, 20), 120), log.read_text()[-2000:]
            during = log.read_text().splitlines()[before:]
        finally:
            worker.terminate()
            worker.wait(60)
    complaints = [line for line in during if re.search(r"WARNING|ERROR", line)]
    # Before: 1,193 ERROR and 1,205 WARNING lines for a 30 s outage (each failure twice).
    assert 0 < len(complaints) <= 20, "\n".join(during[-50:])
