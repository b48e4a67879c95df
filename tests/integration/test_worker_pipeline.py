"""The pipelined worker on the real broker: dynamic batches, and a SIGKILL with two batches in flight.

ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT=N kills the worker with batch N published and uncommitted while
batch N+1 was already scored and handed to the publisher: at-least-once loses nothing, exactly-once
leaves every input offset in exactly one committed score record and no alert twice.
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from pathlib import Path

import orjson
import pytest

from consumers.batching import DynamicBatcher
from stream.kafka import make_consumer, make_producer, read_all
from stream.settings import Settings
from tests.support import (
    committed_count,
    corrected_sample,
    input_offsets,
    replay,
    run_worker,
    score_records,
    scored_offsets,
    spawn_worker,
)

pytestmark = pytest.mark.integration

TOTAL = 5_000


@pytest.mark.parametrize("eos", [False, True], ids=["at-least-once", "exactly-once"])
def test_sigkill_with_two_batches_in_flight(kafka_settings: Settings, tmp_path: Path, eos: bool) -> None:
    settings = kafka_settings.model_copy(update={"batch_size": 500})
    replay(settings, corrected_sample(settings.data_dir, TOTAL, seed=31))
    log = tmp_path / "worker.log"
    args = ["--eos", "--worker-id", "crashing"] if eos else []
    worker = spawn_worker(settings, *args, log_path=log, env={"ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT": "3"})
    assert worker.wait(120) == -signal.SIGKILL, log.read_text()[-3000:]
    text = " ".join(log.read_text().split())  # the console handler wraps long lines
    found = re.search(r"before committing batch 3 \((\d+) batches in flight\)", text)
    assert found and int(found.group(1)) >= 2, log.read_text()[-3000:]
    # Under --eos the killed transaction holds the group's offsets "unstable" until it is fenced, so
    # what was committed is read from the committed score records instead.
    committed = sum(scored_offsets(score_records(settings)).values()) if eos else committed_count(settings)
    assert 0 < committed < TOTAL

    # The successor takes the same transactional id under --eos: the open transaction is fenced.
    stats = run_worker(settings, max_events=TOTAL - committed, eos=eos, timeout=120)
    assert stats.events == TOTAL - committed
    counts = scored_offsets(score_records(settings))
    assert set(counts) == input_offsets(settings), "an event was lost across the crash"
    if eos:
        assert max(counts.values()) == 1, "exactly-once: no offset in two committed score records"
        alerts = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts"))]
        assert len(alerts) == len({a["alert_id"] for a in alerts}), "exactly-once: no alert twice"


def test_dynamic_batches_are_full_under_a_backlog_and_immediate_when_idle(kafka_settings: Settings) -> None:
    settings = kafka_settings
    replay(settings, corrected_sample(settings.data_dir, 3000, seed=32))
    consumer = make_consumer(settings, f"batcher-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([settings.topic("kdd")])
    try:
        batcher = DynamicBatcher(consumer, max_size=1000, max_delay_s=0.005, idle_wait_s=0.2)
        sizes: list[int] = []
        deadline = time.monotonic() + 60
        while sum(sizes) < 3000 and time.monotonic() < deadline:
            if batch := batcher.next_batch():
                sizes.append(len(batch))
        assert sum(sizes) == 3000 and max(sizes) == 1000, sizes
        assert sizes.count(1000) >= 2, f"a backlog is served in full batches: {sizes}"

        # One event on an idle stream is handed over at once: no waiting for the batch to fill.
        producer = make_producer(settings)
        producer.produce(settings.topic("kdd"), b"{}", b"lonely")
        producer.flush(10)
        sent = time.monotonic()
        batch: list = []
        while not batch and time.monotonic() - sent < 10:
            batch = batcher.next_batch()
        waited = time.monotonic() - sent
        assert [m.key() for m in batch] == [b"lonely"]
        assert waited < 1.0, f"an idle worker scored one event {waited:.3f} s after it arrived"
    finally:
        consumer.close()
