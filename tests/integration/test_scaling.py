"""Operators scale replicas while events flow: partitions move, nothing is lost."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path

import pytest

from stream.settings import Settings
from tests.support import (
    corrected_sample,
    input_offsets,
    replay,
    score_records,
    scored_offsets,
    spawn_worker,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_replicas_share_partitions_and_scaling_down_loses_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"batch_size": 500, "topic_partitions": 6})
    from stream.kafka import create_topics

    create_topics(settings.model_copy(update={"topic_prefix": settings.topic_prefix + "six."}))
    settings = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "six."})
    log = tmp_path / "replicas.log"
    supervisor = spawn_worker(settings, "--replicas", "2", log_path=log)
    second: object = None
    try:
        assert wait_until(lambda: len(re.findall(r"assigned \[", log.read_text())) >= 2, 120), log.read_text()
        frame = corrected_sample(settings.data_dir, 24_000, seed=6)
        producer = threading.Thread(target=replay, args=(settings, frame, 3000))
        producer.start()
        # Scale up mid-stream with a third, separately started worker, then scale the pair down.
        assert wait_until(lambda: sum(scored_offsets(score_records(settings)).values()) > 3000, 60)
        second = spawn_worker(settings, "--worker-id", "late-joiner", log_path=tmp_path / "late.log")
        assert wait_until(lambda: "assigned" in (tmp_path / "late.log").read_text(), 90)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(90) == 0, log.read_text()[-3000:]
        producer.join(60)
        assert wait_until(lambda: set(scored_offsets(score_records(settings))) == input_offsets(settings), 90)
    finally:
        for process in (supervisor, second):
            if process is not None and process.poll() is None:  # type: ignore[union-attr]
                process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                process.wait(60)  # type: ignore[union-attr]
    counts = scored_offsets(score_records(settings))
    assert set(counts) == input_offsets(settings) and len(counts) == 24_000
    text = log.read_text()
    assert "supervising 2 worker replicas" in text
