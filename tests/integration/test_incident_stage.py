"""The incident stage against a real broker: alerts from a real worker grouped into incidents, every
alert in exactly one incident, counts that match, and exactly-once across SIGKILL and rebalances."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, TopicPartition

from consumers.incidents.listing import read_incidents
from consumers.incidents.stage import IncidentStage
from consumers.verdicts import give_incident_verdict
from stream.kafka import make_consumer, read_all
from stream.kafka.topics import end_offsets
from stream.messages import IncidentVerdict, decode_incident, decode_incident_members
from stream.settings import IncidentSettings, Settings
from stream.signals import StopFlag
from tests.support import corrected_sample, measure, replay, run_worker, wait_until

pytestmark = pytest.mark.integration

N_EVENTS = 6000


def stage_settings(settings: Settings, **incidents: object) -> Settings:
    values: dict[str, object] = {
        "group_id": f"incidents-{settings.topic_prefix}",
        "gap_s": 3.0,
        "group_interval_s": 1.0,
        "batch_size": 300,
        "max_queue_delay_ms": 20.0,
    }
    values.update(incidents)
    return settings.model_copy(update={"incidents": IncidentSettings(**values)})  # type: ignore[arg-type]


def fill_alerts(settings: Settings, n: int = N_EVENTS, seed: int = 3) -> int:
    """Replay ``n`` corrected connections and score them: returns the alerts published."""
    replay(settings, corrected_sample(settings.data_dir, n, seed))
    stats = run_worker(settings, max_events=n, timeout=180)
    return stats.alerts


def alert_ids(settings: Settings) -> list[str]:
    import orjson

    return [orjson.loads(m.value())["alert_id"] for m in read_all(settings, settings.topic("alerts"))]


def grouped_all(settings: Settings) -> bool:
    """Whether the stage group has committed every alert."""
    topic = settings.topic("alerts")
    ends = end_offsets(settings, topic)
    consumer = make_consumer(settings, settings.incidents.group_id)
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
    except KafkaException:  # a transaction still open (a crashed member's): not yet
        return False
    finally:
        consumer.close()
    return all(tp.offset >= ends[tp.partition] for tp in committed)


def latest_incidents(settings: Settings) -> dict[str, object]:
    latest: dict[str, object] = {}
    for message in read_all(settings, settings.topic("incidents")):
        incident = decode_incident(message.value())
        assert message.key().decode() == incident.finding_info.uid
        latest[incident.finding_info.uid] = incident  # in partition order: revisions only grow
    return latest


def all_closed(settings: Settings) -> bool:
    latest = latest_incidents(settings)
    return bool(latest) and all(i.activity_id == 3 for i in latest.values())  # type: ignore[attr-defined]


def members(settings: Settings) -> Counter:
    """How many times each alert id appears across every committed IncidentMembers message, and to
    which incident it belongs (an alert in two incidents counts twice)."""
    seen: Counter = Counter()
    for message in read_all(settings, settings.topic("incident_members")):
        for alert in decode_incident_members(message.value()).alerts:
            seen[alert.alert_id] += 1
    return seen


def check_exactly_once(settings: Settings) -> None:
    expected = alert_ids(settings)
    seen = members(settings)
    assert set(seen) == set(expected), f"{len(set(expected) - set(seen))} alerts in no incident"
    assert max(seen.values()) == 1, "an alert counted twice"
    per_incident: Counter = Counter()
    for message in read_all(settings, settings.topic("incident_members")):
        batch = decode_incident_members(message.value())
        per_incident[batch.incident_id] += len(batch.alerts)
    latest = latest_incidents(settings)
    assert set(latest) == set(per_incident)
    assert {k: i.count for k, i in latest.items()} == dict(per_incident)  # type: ignore[attr-defined]


def run_stage(settings: Settings, until, eos: bool = False, stage_id: str = "s0", timeout: float = 120):  # noqa: ANN001
    stop = StopFlag(install=False)
    stage = IncidentStage(settings, eos=eos, stage_id=stage_id, stop=stop)
    thread = threading.Thread(target=stage.run, daemon=True)
    thread.start()
    try:
        assert wait_until(until, timeout), "the stage did not finish in time"
    finally:
        stop.set()
        thread.join(60)
    return stage


def spawn_stage(settings: Settings, *args: str, log_path: Path, env: dict[str, str] | None = None):  # noqa: ANN201
    command = [sys.executable, "-m", "anomstream", "incidents", "run", *args]
    return subprocess.Popen(command, env={**settings.environment(), **(env or {})},
                            stdout=log_path.open("ab"), stderr=subprocess.STDOUT)  # fmt: skip


def test_alerts_become_incidents_each_alert_once(kafka_settings: Settings) -> None:
    settings = stage_settings(kafka_settings)
    n_alerts = fill_alerts(settings)
    assert n_alerts > 1000
    started = time.monotonic()
    stage = run_stage(settings, lambda: grouped_all(settings) and all_closed(settings))
    check_exactly_once(settings)
    latest = latest_incidents(settings)
    assert len(latest) <= n_alerts / 20, "alerts should group, not become one incident each"
    labels: Counter = Counter()
    for incident in latest.values():
        labels.update(incident.unmapped.labels or {})  # type: ignore[attr-defined]
    assert sum(labels.values()) == n_alerts
    assert stage.stats.created == stage.stats.closed == len(latest)
    listed = read_incidents(settings)  # what `anomstream incidents list` shows
    assert [i.finding_info.uid for i in listed] == sorted(latest, key=lambda k: (-latest[k].end_time, k))  # type: ignore[attr-defined]
    assert read_incidents(settings, open_only=True) == []
    measure(f"incident stage: {n_alerts:,} alerts -> {len(latest)} incidents "
            f"({time.monotonic() - started:.1f}s to group and close)")  # fmt: skip


def test_exactly_once_across_a_sigkill(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = stage_settings(kafka_settings, gap_s=2.0, batch_size=200)
    fill_alerts(settings)
    log = tmp_path / "stage.log"
    crashed = spawn_stage(settings, "--eos", "--worker-id", "stage-a", log_path=log,
                          env={"ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT": "4"})  # fmt: skip
    try:
        assert crashed.wait(120) == -9, log.read_text()[-3000:]
    finally:
        if crashed.poll() is None:
            crashed.kill()
    assert "killing this worker before committing batch" in " ".join(log.read_text().split())
    # The successor reuses the transactional id: the open transaction is fenced, its outputs and its
    # snapshot aborted together, and the successor resumes from the state committed with the offsets.
    run_stage(settings, lambda: grouped_all(settings) and all_closed(settings), eos=True, stage_id="stage-a")
    check_exactly_once(settings)


def test_exactly_once_across_rebalances(kafka_settings: Settings, tmp_path: Path) -> None:
    """Two members while alerts stream in: one joins (partitions move, with their open incidents) and
    then leaves on SIGTERM (they move back); every alert still counted once."""
    settings = stage_settings(kafka_settings, gap_s=4.0, batch_size=100)
    first = spawn_stage(settings, "--eos", "--worker-id", "a", log_path=tmp_path / "a.log")
    second = None
    try:
        assert wait_until(lambda: "assigned" in (tmp_path / "a.log").read_text(), 90)
        feeder = threading.Thread(target=fill_alerts, args=(settings, 9000, 5))
        feeder.start()
        assert wait_until(lambda: members(settings), 120)
        second = spawn_stage(settings, "--eos", "--worker-id", "b", log_path=tmp_path / "b.log")
        assert wait_until(lambda: "restored" in (tmp_path / "b.log").read_text()
                          or "assigned" in (tmp_path / "b.log").read_text(), 90)  # fmt: skip
        feeder.join(240)
        first.terminate()
        assert first.wait(60) == 0, (tmp_path / "a.log").read_text()[-3000:]
        assert wait_until(lambda: grouped_all(settings) and all_closed(settings), 120)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(60)
    assert "revoked" in (tmp_path / "a.log").read_text()
    check_exactly_once(settings)


def test_an_analysts_verdict_is_carried_by_the_incidents_next_messages(kafka_settings: Settings) -> None:
    """``incidents verdict`` on an open incident: the running stage publishes an update carrying it
    (``unmapped.verdict``, what a SIEM subscribed to ``incidents`` sees) within seconds; a restarted
    stage reads the verdict again and publishes nothing more for it."""
    settings = stage_settings(kafka_settings, gap_s=300.0)
    fill_alerts(settings, n=1500, seed=5)
    stop = StopFlag(install=False)
    thread = threading.Thread(target=IncidentStage(settings, stage_id="v0", stop=stop).run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: bool(latest_incidents(settings)), 120), "no incident"
        latest = latest_incidents(settings)
        incident_id = max(latest, key=lambda k: latest[k].count)  # type: ignore[attr-defined]
        given = give_incident_verdict(settings, incident_id, "benign", by="alice", reason="backup job")
        judged = lambda: latest_incidents(settings)[incident_id].unmapped.verdict  # type: ignore[attr-defined]  # noqa: E731
        assert wait_until(lambda: judged() is not None, 30), "the verdict never reached the incident"
    finally:
        stop.set()
        thread.join(60)
    assert judged() == IncidentVerdict("benign", "alice", "backup job", given.given_at)

    def sent() -> int:
        return sum(m.key() == incident_id.encode() for m in read_all(settings, settings.topic("incidents")))

    before = sent()
    stop = StopFlag(install=False)
    again = IncidentStage(settings, stage_id="v1", stop=stop)
    thread = threading.Thread(target=again.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: bool(again.groupers) and again.verdicts, 60), "the restart read no verdict"
        time.sleep(3)  # an absence: three ticks in which the verdict must not be announced again
    finally:
        stop.set()
        thread.join(60)
    assert sent() == before, "a restarted stage re-announced a verdict it had already published"
