"""Helpers for integration tests: settings per test, replay, run workers (in a thread or as real
processes), read the topics back."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import uuid
from collections import Counter
from pathlib import Path

import msgspec
import pandas as pd
from confluent_kafka import TopicPartition

from consumers.supervisor import worker_command
from consumers.worker import ScoringWorker, WorkerStats
from producers.kdd import kdd_events
from producers.replay import Event, ReplayProducer, ReplayStats
from stream.kafka import end_offsets, make_consumer, read_all
from stream.messages import decode_score_record
from stream.settings import Settings
from stream.signals import StopFlag
from tests.support.data import data_root
from tests.support.timing import wait_until


def make_settings(bootstrap: str, registry: Path, **overrides: object) -> Settings:
    """Settings with topics, group and transactional ids unique to one test."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "topic_prefix": f"t{tag}.",
        "group_id": f"workers-{tag}",
        "registry_dir": registry,
        "data_dir": data_root(),
        "topic_partitions": 3,
        "batch_size": 2000,
        "state_dir": Path(tempfile.mkdtemp(prefix=f"anomstream-state-{tag}-")),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


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


def spawn_worker(
    settings: Settings,
    *args: str,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    session: bool = False,
) -> subprocess.Popen:
    """A real ``anomstream worker`` process for the kdd stream with these settings (``env`` added).
    ``session``: in a process group of its own, so :func:`kill_group` also ends a supervisor's replicas."""
    out = log_path.open("ab") if log_path else subprocess.DEVNULL
    command = worker_command("--streams", "kdd", *args)
    environment = {**settings.environment(), **(env or {})}
    return subprocess.Popen(
        command, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=session
    )


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process started with ``session=True`` and everything in its group (a supervisor
    killed alone leaves its replicas running)."""
    import os
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(10)


def score_records(settings: Settings) -> list[dict]:
    """Every score record on the scores topic, decoded (and so validated) by its message type."""
    records = (decode_score_record(m.value()) for m in read_all(settings, settings.topic("scores")))
    return [msgspec.structs.asdict(r) for r in records]


def scored_offsets(records: list[dict]) -> Counter:
    """How many times each (topic, partition, offset) appears across score records."""
    return Counter((r["topic"], r["partition"], o) for r in records for o in r["offsets"])


def committed_count(settings: Settings) -> int:
    """Events the worker group has committed on the input topic (its resume point)."""
    consumer = make_consumer(settings, settings.group_id)
    try:
        topic = settings.topic("kdd")
        partitions = [TopicPartition(topic, p) for p in end_offsets(settings, topic)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()


def input_offsets(settings: Settings) -> set[tuple[str, int, int]]:
    topic = settings.topic("kdd")
    return {(topic, p, o) for p, end in end_offsets(settings, topic).items() for o in range(end)}


def score_across_promotion(
    settings: Settings, frame: pd.DataFrame, detector: str, version: int, worker_id: str = "reloader"
) -> list[int]:
    """A worker thread scores the first half of ``frame``, follows the promotion of ``detector``
    v``version`` announced on model-updates, and scores the second half; returns each score record's
    model version, in order."""
    from consumers.model_updates import promote

    def scored() -> int:
        return sum(len(r["offsets"]) for r in score_records(settings))

    half = len(frame) // 2
    stop = StopFlag(install=False)
    worker = ScoringWorker(settings, ["kdd"], worker_id=worker_id, stop=stop)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        replay(settings, frame.head(half))
        assert wait_until(lambda: scored() == half, 60)
        assert promote(settings, "kdd", detector, version).announced
        assert wait_until(lambda: worker.models["kdd"].version == version, 30)
        replay(settings, frame.iloc[half:])
        assert wait_until(lambda: scored() == len(frame), 60)
    finally:
        stop.set()
        thread.join(30)
    return [r["model_version"] for r in score_records(settings)]


def first_offsets_of(settings: Settings, key_prefix: bytes) -> dict[str, int]:
    """The first offset, per partition of the kdd input topic, of the events whose key starts with
    ``key_prefix`` (e.g. ``b"corrected"``: where a replay switched to that file's traffic)."""
    first: dict[str, int] = {}
    for message in read_all(settings, settings.topic("kdd")):
        if message.key().startswith(key_prefix):
            key = str(message.partition())
            first[key] = min(first.get(key, message.offset()), message.offset())
    return first
