"""SIGTERM mid-stream: the worker finishes its batch, commits and exits; a successor loses nothing."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from stream.settings import Settings
from tests.support import (
    corrected_sample,
    input_offsets,
    replay,
    run_worker,
    score_records,
    scored_offsets,
    spawn_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

N_EVENTS = 30_000
RATE = 3_000  # events/s: the replay lasts ~10 s, so the signal lands while events still arrive


def test_sigterm_mid_stream_loses_nothing(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={"batch_size": 500})
    log = tmp_path / "worker.log"
    worker = spawn_worker(settings, log_path=log)
    try:
        assert wait_until(lambda: "assigned" in log.read_text(), 90), log.read_text()[-3000:]
        frame = corrected_sample(settings.data_dir, N_EVENTS, seed=4)
        producer = threading.Thread(target=replay, args=(settings, frame, RATE))
        producer.start()
        assert wait_until(lambda: sum(scored_offsets(score_records(settings)).values()) > 3000, 60)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log.read_text()[-3000:]
        producer.join(60)
    finally:
        if worker.poll() is None:
            worker.kill()
    before = scored_offsets(score_records(settings))
    assert 0 < sum(before.values()) < N_EVENTS, "SIGTERM should have landed mid-stream"
    assert "stopping:" in log.read_text()

    # A successor in the same group resumes at the committed offsets.
    run_worker(settings, max_events=N_EVENTS - sum(before.values()), timeout=120)
    after = scored_offsets(score_records(settings))
    assert set(after) == input_offsets(settings), "events were lost across the restart"
    assert max(after.values()) == 1, "a clean SIGTERM commits its last batch: nothing is scored twice"
