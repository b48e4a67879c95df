"""Crashes (SIGKILL): exactly-once leaves every offset in exactly one committed score record; at-least-once
loses nothing and re-publishes the uncommitted batch under the same alert ids."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import orjson
import pytest

from stream.kafka import read_all
from stream.settings import Settings
from tests.support import (
    committed_count,
    corrected_sample,
    input_offsets,
    measure,
    replay,
    run_worker,
    score_records,
    scored_offsets,
    spawn_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

N_EVENTS = 20_000
RATE = 3_000


def _crash_mid_stream(settings: Settings, log: Path, *worker_args: str) -> int:
    """Start a worker, replay at RATE, SIGKILL the worker mid-stream; returns events replayed."""
    worker = spawn_worker(settings, *worker_args, log_path=log)
    try:
        assert wait_until(lambda: "assigned" in log.read_text(), 90), log.read_text()[-3000:]
        producer = threading.Thread(
            target=replay, args=(settings, corrected_sample(settings.data_dir, N_EVENTS, 5), RATE)
        )
        producer.start()
        assert wait_until(lambda: sum(scored_offsets(score_records(settings)).values()) > 3000, 60)
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
        producer.join(60)
    finally:
        if worker.poll() is None:
            worker.kill()
    return N_EVENTS


def _alerts(settings: Settings) -> list[dict]:
    return [orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts"))]


def test_exactly_once_survives_a_crash(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={"batch_size": 500})
    total = _crash_mid_stream(settings, tmp_path / "worker.log", "--eos", "--worker-id", "test-worker")
    before = sum(scored_offsets(score_records(settings)).values())
    assert 0 < before < total, "the crash should land mid-stream"

    # The successor reuses the transactional id: the crashed worker's open transaction is fenced
    # and aborted at once, and the successor resumes from the offsets committed in transactions.
    stats = run_worker(settings, max_events=total - before, eos=True, timeout=120)
    counts = scored_offsets(score_records(settings))
    assert set(counts) == input_offsets(settings), "events lost across the crash"
    assert max(counts.values()) == 1, "exactly-once: no offset in two committed score records"
    alerts = _alerts(settings)
    assert len(alerts) == len({a["alert_id"] for a in alerts}), "exactly-once: no duplicate alert"
    measure(
        f"exactly-once crash test: {before:,} scored before SIGKILL, successor {stats.rate:,.0f} events/s"
    )


def test_at_least_once_crash_redelivers_and_republished_alerts_keep_their_ids(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """A worker SIGKILLed with a batch's outputs delivered but its offsets not committed: the successor
    re-scores exactly that batch, and every re-published alert carries the id (and score) it had."""
    settings = kafka_settings.model_copy(update={"batch_size": 500})
    total = 5_000
    replay(settings, corrected_sample(settings.data_dir, total, 5))
    crash = {"ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT": "3"}  # dies before committing its 3rd batch
    worker = spawn_worker(settings, log_path=tmp_path / "worker.log", env=crash)
    assert worker.wait(120) == -signal.SIGKILL, (tmp_path / "worker.log").read_text()[-3000:]
    committed, published = committed_count(settings), sum(scored_offsets(score_records(settings)).values())
    assert 0 < committed < published, "the crashed batch's outputs are out, its offsets uncommitted"

    run_worker(settings, max_events=total - committed, timeout=120)
    counts = scored_offsets(score_records(settings))
    assert set(counts) == input_offsets(settings), "at-least-once must not lose events"
    rescored = sum(c - 1 for c in counts.values())
    assert rescored == published - committed > 0, "exactly the uncommitted batch is scored again"
    by_source: dict[tuple, list[dict]] = {}
    for alert in _alerts(settings):
        by_source.setdefault((alert["source"]["partition"], alert["source"]["offset"]), []).append(alert)
    republished = [alerts for alerts in by_source.values() if len(alerts) > 1]
    assert republished, "the re-scored batch held attacks, so some alerts were published twice"
    for alerts in republished:
        assert len({a["alert_id"] for a in alerts}) == 1, "a re-published alert must keep its id"
        # The same judgement; the score to float precision (a redelivered batch is split differently,
        # and a network's sums in another batch shape differ in the last digits: measured 1.5e-6).
        assert len({a["severity"] for a in alerts}) == 1, "and judge the event the same way"
        scores = [a["score"] for a in alerts]
        assert max(scores) - min(scores) <= 1e-5 * max(abs(s) for s in scores), scores
    measure(
        f"at-least-once crash test: {rescored:,} events re-scored after SIGKILL before commit, "
        f"{len(republished):,} alerts re-published under their ids"
    )
