"""Helpers for integration tests: replay, run workers (in a thread or as real processes), read back."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pandas as pd
from confluent_kafka import Consumer, TopicPartition

from consumers.worker import ScoringWorker, WorkerStats
from producers.kdd import kdd_events
from producers.replay import Event, ReplayProducer, ReplayStats
from stream.datasets import find_kdd_file, read_kdd
from stream.kafka import StopFlag, end_offsets, read_all
from stream.settings import Settings


def corrected_sample(data_dir: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """A seeded random sample of real ``corrected`` connections (normal and attacks mixed)."""
    frame = read_kdd(find_kdd_file(data_dir, "test"))
    return frame.sample(n=n, random_state=seed).reset_index(drop=True)


def replay(settings: Settings, frame: pd.DataFrame, rate: float = 0.0) -> ReplayStats:
    producer = ReplayProducer(
        settings, settings.topic("kdd"), rate=rate, progress=False, stop=StopFlag(False)
    )
    stats = producer.run(kdd_events(frame, "corrected"))
    assert stats.failed == 0 and stats.delivered == len(frame), stats
    return stats


def replay_events(settings: Settings, events: list[Event]) -> ReplayStats:
    producer = ReplayProducer(settings, settings.topic("kdd"), progress=False, stop=StopFlag(False))
    return producer.run(events)


def run_worker(
    settings: Settings,
    max_events: int,
    timeout: float = 120.0,
    eos: bool = False,
    metrics_port: int | None = None,
) -> WorkerStats:
    """Run a ScoringWorker in this process until it handled ``max_events`` messages (or timeout)."""
    stop = StopFlag(install=False)
    worker = ScoringWorker(
        settings, ["kdd"], eos=eos, worker_id="test-worker", stop=stop, metrics_port=metrics_port
    )
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        return worker.run(max_events=max_events)
    finally:
        timer.cancel()


def spawn_worker(settings: Settings, *args: str, log_path: Path | None = None) -> subprocess.Popen:
    out = log_path.open("ab") if log_path else subprocess.DEVNULL
    command = [sys.executable, "-m", "stream.cli", "worker", "--streams", "kdd", *args]
    return subprocess.Popen(command, env=settings.environment(), stdout=out, stderr=subprocess.STDOUT)


def score_records(settings: Settings) -> list[dict]:
    return [orjson.loads(m.value()) for m in read_all(settings, settings.topic("scores"))]


def scored_offsets(records: list[dict]) -> Counter:
    """How many times each (topic, partition, offset) appears across score records."""
    return Counter((r["topic"], r["partition"], o) for r in records for o in r["offsets"])


def committed_count(settings: Settings) -> int:
    """Events the worker group has committed on the input topic (its resume point)."""
    consumer = Consumer(settings.kafka_config(**{"group.id": settings.group_id}))
    try:
        topic = settings.topic("kdd")
        partitions = [TopicPartition(topic, p) for p in end_offsets(settings, topic)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()


def input_offsets(settings: Settings) -> set[tuple[str, int, int]]:
    topic = settings.topic("kdd")
    return {(topic, p, o) for p, end in end_offsets(settings, topic).items() for o in range(end)}


def wait_until(predicate, timeout: float, interval: float = 0.5) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
