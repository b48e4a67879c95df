"""The pipelined worker on the real broker: dynamic batches, and a SIGKILL with two batches in flight.

ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT=N kills the worker with batch N published and uncommitted while
batch N+1 was already scored and handed to the publisher: at-least-once loses nothing, exactly-once
leaves every input offset in exactly one committed score record and no alert twice.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import pytest

from consumers.batching import DynamicBatcher
from consumers.worker import ScoringWorker
from stream.kafka import make_consumer, make_producer, read_all
from stream.settings import Settings
from stream.signals import StopFlag
from tests.support import (
    committed_count,
    corrected_sample,
    input_offsets,
    replay,
    score_records,
    scored_offsets,
    spawn_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

TOTAL = 5_000


@pytest.mark.parametrize("eos", [False, True], ids=["at-least-once", "exactly-once"])
def test_sigkill_with_two_batches_in_flight(kafka_settings: Settings, tmp_path: Path, eos: bool) -> None:
    settings = kafka_settings.model_copy(update={"batch_size": 500})
    replay(settings, corrected_sample(settings.data_dir, TOTAL, seed=31))
    log = tmp_path / "worker.log"
    args = ["--eos", "--worker-id", "crashing"] if eos else []
    # Its open transaction is aborted by the broker 10 s after the crash; until then read_committed
    # readers (and the successor) wait at it.
    env = {"ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT": "3", "ANOMSTREAM_KAFKA__TRANSACTION_TIMEOUT_MS": "10000"}
    worker = spawn_worker(settings, *args, log_path=log, env=env)
    assert worker.wait(120) == -signal.SIGKILL, log.read_text()[-3000:]
    text = " ".join(log.read_text().split())  # the console handler wraps long lines
    found = re.search(r"before committing batch 3 \((\d+) batches in flight\)", text)
    assert found and int(found.group(1)) >= 2, log.read_text()[-3000:]
    if eos:
        # The broker aborts the killed worker's transaction once it times out (10 s); until then the
        # group's offsets read as unstable.
        assert wait_until(lambda: _stable_offsets(settings), 90)
    assert 0 < committed_count(settings) < TOTAL
    stop = StopFlag(install=False)
    successor = ScoringWorker(settings, ["kdd"], eos=eos, worker_id="successor", stop=stop)
    thread = threading.Thread(target=successor.run, daemon=True)
    thread.start()
    try:
        assert wait_until(
            lambda: set(scored_offsets(score_records(settings))) == input_offsets(settings), 120
        )
    finally:
        stop.set()
        thread.join(60)
    counts = scored_offsets(score_records(settings))
    assert set(counts) == input_offsets(settings), "an event was lost across the crash"
    if eos:
        assert max(counts.values()) == 1, "exactly-once: no offset in two committed score records"
        alerts = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts"))]
        assert len(alerts) == len({a["alert_id"] for a in alerts}), "exactly-once: no alert twice"


def _stable_offsets(settings: Settings) -> bool:
    from confluent_kafka import KafkaException

    try:
        committed_count(settings)
    except KafkaException:
        return False
    return True


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
        # A backlog is served in large batches (a fetch still under way can cut one short on a busy
        # machine, e.g. [1000, 23, 995, 982]): a handful of calls, never one per message.
        assert len(sizes) <= 6, f"a backlog is served in large batches: {sizes}"

        # One event on an idle stream is handed over alone: no waiting for the batch to fill (how
        # soon is pinned on a fake clock in tests/unit/consumers/test_batching.py, not in wall time here).
        producer = make_producer(settings)
        producer.produce(settings.topic("kdd"), b"{}", b"lonely")
        producer.flush(10)
        sent = time.monotonic()
        batch: list = []
        while not batch and time.monotonic() - sent < 10:
            batch = batcher.next_batch()
        assert [m.key() for m in batch] == [b"lonely"]
    finally:
        consumer.close()


def test_a_learning_threshold_learns_each_committed_event_once_in_stream_order(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """Scoring of batch N+1 overlaps delivery of batch N, but learning follows commits: every event
    once, and each partition's events in offset order on that partition's learning copy."""
    import shutil

    from models.registry import Registry
    from models.thresholds import SlidingPercentileThreshold
    from stream.messages import KDD_FEATURES

    registry_dir = tmp_path / "registry"
    shutil.copytree(kafka_settings.registry_dir, registry_dir)
    registry = Registry(registry_dir)
    model = registry.load("kdd")
    initial = [0.001, 0.002, 0.003]
    threshold = SlidingPercentileThreshold(window=100_000, percentile=99).fit(np.array(initial))
    registry.save("kdd", model.detector, model.encoder, threshold, {"recipe": "test"}, promote=True)
    settings = kafka_settings.model_copy(update={"registry_dir": registry_dir, "batch_size": 300})
    # Distinct connections only, so each score names its event.
    frame = corrected_sample(settings.data_dir, 20_000, seed=33).drop_duplicates(subset=list(KDD_FEATURES))
    assert len(frame) >= 3000
    replay(settings, frame.head(3000).reset_index(drop=True))

    stop = StopFlag(install=False)
    worker = ScoringWorker(settings, ["kdd"], worker_id="learner", stop=stop)
    timer = threading.Timer(120, stop.set)
    timer.start()
    try:
        stats = worker.run(max_events=3000)
    finally:
        timer.cancel()
    assert stats.events == 3000 and stats.batches >= 5
    # Each input partition learns on its own copy (models.checkpoints): its checkpoint holds its
    # scores, each once, in offset order.
    production, topic = worker.models["kdd"], settings.topic("kdd")
    scored: dict[int, list[tuple[int, float]]] = {}
    for record in score_records(settings):
        scored.setdefault(record["partition"], []).extend(
            zip(record["offsets"], record["scores"], strict=True)
        )
    assert sum(map(len, scored.values())) == 3000
    for partition, pairs in scored.items():
        saved = worker.online.store.read(worker.online.key(production, topic, partition))
        assert saved is not None, f"partition {partition} checkpointed"
        learnt = list(saved["threshold"]["recent"])[len(initial) :]
        assert saved["committed_events"] == len(learnt) == len(pairs), "each committed event learnt once"
        assert learnt == [score for _, score in sorted(pairs)], "learnt in the partition's offset order"
