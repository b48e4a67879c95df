"""The drift monitor against a real broker, on scores published by a real worker.

Drifting input: normal connections of the KDD 10% file (what the model was trained on), then normal
connections of ``corrected`` (recorded weeks later, with other hosts and services).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import TopicPartition

from consumers.drift.monitor import DriftMonitor, MonitorStats
from producers.kdd import kdd_events
from stream.datasets import find_kdd_file, read_kdd
from stream.kafka import end_offsets, make_consumer, make_producer, read_all
from stream.messages import decode_drift_event
from stream.settings import Settings
from stream.signals import StopFlag
from tests.support import replay_events, run_worker, schema_validator, score_records, wait_until
from tests.support.objectstore import S3Endpoint
from tests.support.streams import first_offsets_of

pytestmark = pytest.mark.integration

BEFORE, AFTER = 30_000, 20_000


def drifting_events(data_dir: Path) -> list:
    """Seeded samples: KDD's normal traffic in file order is not stationary (ADWIN rightly finds
    changes inside the 10% file, e.g. after its first 722 normal connections)."""
    train = read_kdd(find_kdd_file(data_dir, "train"))
    test = read_kdd(find_kdd_file(data_dir, "test"))
    before = train[train["label"] == "normal"].sample(n=BEFORE, random_state=1)
    after = test[test["label"] == "normal"].sample(n=AFTER, random_state=2)
    return [*kdd_events(before, "train"), *kdd_events(after, "corrected")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def true_change(settings: Settings) -> dict[str, int]:
    """The first offset of ``corrected`` traffic in every input partition."""
    return first_offsets_of(settings, b"corrected")


def watch(
    settings: Settings, until_scores: int, timeout: float = 180.0, metrics_port: int | None = None,
    scraped: dict[str, tuple[int, str]] | None = None,
) -> tuple[DriftMonitor, MonitorStats]:  # fmt: skip
    """Run a monitor in a thread until it watched (or skipped as duplicates) ``until_scores`` scores;
    with ``scraped``, fetch its health and metrics endpoints before stopping it."""
    stop = StopFlag(install=False)
    monitor = DriftMonitor(
        settings, ["kdd"], stop=stop, instance_id="test-monitor", metrics_port=metrics_port
    )
    thread = threading.Thread(target=monitor.run, daemon=True)
    thread.start()
    try:
        seen = wait_until(lambda: monitor.stats.scores + monitor.stats.duplicates >= until_scores, timeout)
        assert seen, monitor.stats
        if scraped is not None:
            for path in ("/metrics", "/healthz", "/readyz"):
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}{path}", timeout=10) as answer:
                    scraped[path] = (answer.status, answer.read().decode())
    finally:
        stop.set()
        thread.join(60)
    return monitor, monitor.stats


def test_a_drifting_replay_yields_exactly_one_drift_event(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={"state_dir": tmp_path / "state"})
    replay_events(settings, drifting_events(settings.data_dir))
    run_worker(settings, BEFORE + AFTER)
    scraped: dict[str, tuple[int, str]] = {}
    monitor, stats = watch(settings, BEFORE + AFTER, metrics_port=free_port(), scraped=scraped)

    events = [msgspec.json.decode(m.value()) for m in read_all(settings, settings.topic("drift"))]
    assert len(events) == 1, events
    event = events[0]
    schema_validator("drift-event").validate(event)
    assert decode_drift_event(msgspec.json.encode(event)).stream == "kdd"
    assert (event["detector"], event["model_version"], event["action"]) == ("adwin", 1, "none")
    assert event["statistic"] > event["threshold"] > 0
    truth = true_change(settings)
    estimated = event["change"]["partition_offsets"]
    assert set(estimated) == set(truth)
    # The change index is mapped back to each partition by event time, and a replay at full speed puts
    # ~100 events in each millisecond of Kafka's timestamps: partitions are placed within a few
    # milliseconds of each other. In all, the estimate is within 1,200 stream events of the truth.
    assert sum(abs(estimated[p] - offset) for p, offset in truth.items()) <= 1_200, (estimated, truth)
    # Detection delay: events of the new traffic watched up to the one that completed the detection.
    detected = stats.detected_at_offsets[0]
    assert event["change"]["detected_offsets"] == detected, "the delay is measurable from the topics"
    delay = sum(max(detected[p] - truth[p], 0) for p in truth)
    assert delay <= 2_000, (detected, truth)
    assert event["change"]["topic"] == settings.topic("kdd")
    assert stats.scores == BEFORE + AFTER and stats.duplicates == 0
    assert scraped["/healthz"][0] == scraped["/readyz"][0] == 200
    metrics = scraped["/metrics"][1]
    assert 'anomstream_drift_events_total{detector="adwin",stream="kdd"} 1.0' in metrics
    assert f'anomstream_drift_scores_total{{kind="watched",stream="kdd"}} {float(BEFORE + AFTER)}' in metrics
    assert 'anomstream_drift_statistic{detector="adwin",stream="kdd"}' in metrics
    print(f"drift event: change estimated {estimated}, true {truth}; detected at {detected}, delay {delay}")


def test_restart_on_another_host_resumes_from_the_checkpoint_and_never_counts_twice(
    kafka_settings: Settings, s3: S3Endpoint, tmp_path: Path
) -> None:
    """The checkpoint lives in the object store (ANOMSTREAM_STATE_URL=s3://...): the monitor restarted
    on another host, with an empty state folder, resumes the lost one's watch."""
    state = {
        "state_dir": tmp_path / "host-a",
        "state_url": f"{s3.new_bucket('state')}/state",
        "s3": s3.settings(),
    }
    settings = kafka_settings.model_copy(update=state)
    events = drifting_events(settings.data_dir)[BEFORE - 6000 : BEFORE]
    replay_events(settings, events)
    run_worker(settings, len(events))
    records = score_records(settings)
    # A worker's retried batch: the same input offsets published again in another score record.
    producer = make_producer(settings)
    for record in records[:3]:
        producer.produce(settings.topic("scores"), msgspec.json.encode(record),
                         f"{record['topic']}:{record['partition']}".encode())  # fmt: skip
    producer.flush(30)
    duplicated = sum(len(r["offsets"]) for r in records[:3])

    total_records = len(records) + 3
    # Two score records per consume(): the first monitor stops with half of them watched.
    halfway = DriftMonitor(settings.model_copy(update={"batch_size": 2}), ["kdd"], instance_id="test-monitor",
                           stop=StopFlag(install=False))  # fmt: skip
    first_stats = halfway.run(max_records=total_records // 2)
    assert 0 < first_stats.records < total_records
    checkpoint = halfway.checkpoint.store.load()
    assert checkpoint is not None
    # Where each scores partition must be read again: its lowest record not yet watched (records are
    # watched in event-time order across partitions, so this may still be 0 for some).
    resume_at = sum(checkpoint["offsets"].values())
    # The commit after the checkpoint is lost (a crash between the two): rewind the group to 0.
    scores = settings.topic("scores")
    rewind = make_consumer(settings, settings.drift.group_id)
    rewind.commit(offsets=[TopicPartition(scores, p, 0) for p in end_offsets(settings, scores)],
                  asynchronous=False)  # fmt: skip
    rewind.close()

    assert not any((tmp_path / "host-a").rglob("*.json")), "the checkpoint is not on the local disk"
    other_host = settings.model_copy(update={"state_dir": tmp_path / "host-b"})
    second, second_stats = watch(
        other_host, len(events) + duplicated - first_stats.scores - first_stats.duplicates
    )
    # Resumed from the checkpoint's offsets, not from the rewound commit; records watched out of offset
    # order past the checkpoint's offset are read again and skipped as duplicates.
    assert second_stats.records == total_records - resume_at
    assert first_stats.scores + second_stats.scores == len(events)
    # The retried batch, and records watched out of offset order before the stop, are skipped.
    assert first_stats.duplicates + second_stats.duplicates >= duplicated
    assert second.watches.units["kdd"].watch.n == len(events)


def test_a_second_monitor_with_the_same_instance_id_is_refused(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"state_dir": tmp_path / "state"})
    first = DriftMonitor(settings, ["kdd"], instance_id="twin", stop=StopFlag(install=False))
    try:
        env = settings.environment() | {"COLUMNS": "200"}
        command = [sys.executable, "-m", "anomstream", "drift", "--instance-id", "twin"]
        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    finally:
        first.checkpoint.store.close()
    assert second.returncode == 1
    assert "another drift monitor uses instance id 'twin'" in second.stderr
    assert "Traceback" not in second.stderr


def test_a_checkpoint_taken_on_a_recreated_scores_topic_is_not_resumed(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """Offsets and watches in a checkpoint belong to one scores topic: after the topic is deleted and
    created again (or the cluster is new), the monitor starts fresh instead of counting old scores."""
    from stream.kafka import create_topics, make_admin

    settings = kafka_settings.model_copy(update={"state_dir": tmp_path / "state"})
    events = drifting_events(settings.data_dir)[:8000]
    replay_events(settings, events[:6000])
    run_worker(settings, 6000)
    first, _ = watch(settings, 6000)
    assert first.watches.units["kdd"].watch.n == 6000

    scores = settings.topic("scores")
    admin = make_admin(settings)
    admin.delete_topics([scores], operation_timeout=30)[scores].result()
    assert wait_until(lambda: scores not in admin.list_topics(timeout=10).topics, 60)

    def recreated() -> bool:
        try:
            return create_topics(settings, topics=[scores])[scores] == "created"
        except Exception:  # the deletion is still being applied: try again
            return False

    assert wait_until(recreated, 60)
    replay_events(settings, events[6000:])
    run_worker(settings, 2000)
    second, stats = watch(settings, 2000)
    assert stats.scores == 2000 and stats.duplicates == 0
    assert second.watches.units["kdd"].watch.n == 2000, "the old topic's watch was resumed"
