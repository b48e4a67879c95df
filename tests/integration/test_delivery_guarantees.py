"""Crashes (SIGKILL) mid-stream: exactly-once leaves every offset in exactly one committed score record;
at-least-once loses nothing and re-publishes duplicates under the same alert ids."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from pathlib import Path

import orjson
import pytest

from stream.kafka import read_all
from stream.settings import Settings
from tests.conftest import measure
from tests.support import (
    committed_count,
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


def test_at_least_once_crash_loses_nothing_and_duplicates_keep_their_ids(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"batch_size": 500})
    total = _crash_mid_stream(settings, tmp_path / "worker.log")
    run_worker(settings, max_events=total - committed_count(settings), timeout=120)
    counts = scored_offsets(score_records(settings))
    assert set(counts) == input_offsets(settings), "at-least-once must not lose events"
    duplicates = sum(c - 1 for c in counts.values())
    alerts = _alerts(settings)
    by_source = Counter((a["source"]["partition"], a["source"]["offset"]) for a in alerts)
    ids_by_source: dict[tuple, set[str]] = {}
    for a in alerts:
        ids_by_source.setdefault((a["source"]["partition"], a["source"]["offset"]), set()).add(a["alert_id"])
    assert all(len(ids) == 1 for ids in ids_by_source.values()), "a re-published alert must keep its id"
    measure(
        f"at-least-once crash test: {duplicates:,} re-scored events, "
        f"{sum(by_source.values()) - len(by_source):,} duplicate alerts (same ids)"
    )
