"""A drift monitor started on a backlog: the change it reports names every input partition.

Seen in a run through the CLI: a drift event raised while the monitor caught up on scores written
before it started named one partition of six (``"partition_offsets": {"1": 674}``), so the retrain it
started read a sixth of the post-change data.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import msgspec
import pytest

from consumers.drift.monitor import DriftMonitor
from producers.kdd import kdd_events
from stream.datasets import find_kdd_file, read_kdd
from stream.kafka import create_topics, flush_or_raise, make_producer, produce, read_all
from stream.settings import Settings
from stream.signals import StopFlag
from tests.support import replay_events, run_worker, score_records, wait_until
from tests.support.streams import first_offsets_of

pytestmark = pytest.mark.integration

PARTITIONS = 6
BEFORE, AFTER = 24_000, 12_000


def shifted_normal_traffic(data_dir: Path) -> list:
    """Seeded samples of normal traffic: the 10% file's, then ``corrected``'s (another capture)."""
    train = read_kdd(find_kdd_file(data_dir, "train"))
    test = read_kdd(find_kdd_file(data_dir, "test"))
    before = train[train["label"] == "normal"].sample(n=BEFORE, random_state=1)
    after = test[test["label"] == "normal"].sample(n=AFTER, random_state=2)
    return [*kdd_events(before, "train"), *kdd_events(after, "corrected")]


def watch_until_an_event(settings: Settings, scores: int) -> list[dict]:
    """Run a monitor in a thread until it watched ``scores`` scores and published a drift event."""
    stop = StopFlag(install=False)
    monitor = DriftMonitor(settings, ["kdd"], stop=stop, instance_id="backlog")
    thread = threading.Thread(target=monitor.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: monitor.stats.scores >= scores, 180), monitor.stats
        assert wait_until(lambda: monitor.stats.events, 60), monitor.stats
    finally:
        stop.set()
        thread.join(60)
    return [msgspec.json.decode(m.value()) for m in read_all(settings, settings.topic("drift"))]


def test_a_monitor_catching_up_on_a_backlog_places_the_change_in_every_partition(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """The worker scored one input partition's backlog before the others' (a catching-up consumer
    reads partition by partition) and the monitor, started on that backlog, detects the change from
    that partition alone: the event still names every partition's first changed offset."""
    settings = kafka_settings.model_copy(update={
        "topic_prefix": f"t{uuid.uuid4().hex[:8]}.", "topic_partitions": PARTITIONS,
        "state_dir": tmp_path / "state",
    })  # fmt: skip
    create_topics(settings)
    replay_events(settings, shifted_normal_traffic(settings.data_dir))
    run_worker(settings, BEFORE + AFTER)
    truth = first_offsets_of(settings, b"corrected")
    assert len(truth) == PARTITIONS
    records = score_records(settings)
    first = max(
        range(PARTITIONS), key=lambda p: sum(len(r["offsets"]) for r in records if r["partition"] == p)
    )
    # The scores a monitor finds when it starts: so far, the worker published this partition's only.
    backlog = settings.model_copy(update={"topics": settings.topics.model_copy(update={"scores": "backlog"})})
    create_topics(backlog, topics=[backlog.topic("scores")])
    producer = make_producer(backlog)
    published = 0
    for record in (r for r in records if r["partition"] == first):
        produce(producer, backlog.topic("scores"), msgspec.json.encode(record),
                f"{record['topic']}:{record['partition']}".encode())  # fmt: skip
        published += len(record["offsets"])
    flush_or_raise(producer)

    events = watch_until_an_event(backlog, published)
    assert len(events) == 1, events
    estimated = events[0]["change"]["partition_offsets"]
    assert set(estimated) == set(truth), (estimated, truth)
    # Partitions are placed by the Kafka timestamps of the changed partition's events: a replay at full
    # speed puts tens of events of each partition in a millisecond.
    assert all(abs(estimated[p] - truth[p]) <= 500 for p in truth), (estimated, truth)
    print(f"change estimated {estimated}, true {truth}")
