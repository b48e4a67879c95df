"""Drift events exactly once across a monitor's restart (issue 28).

A monitor killed between publishing a drift event and checkpointing it resumes from a state that has
not seen the change: it detects it again. The same change gives the same event id, and a restarted
monitor does not publish an id that is on ``drift-events`` already. A peer's event acknowledged (and a
feature-drift event published) is checkpointed at once, as a score-drift event is: it used to wait for
``checkpoint_interval_s`` (or for ever, when no record came), so a kill in between reported it twice.
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import TopicPartition

from consumers.drift.monitor import DriftMonitor
from stream.kafka import end_offsets, make_consumer, make_producer, read_all
from stream.messages import ChangePoint, DriftEvent, encode
from stream.settings import Settings
from stream.signals import StopFlag
from tests.integration.test_drift_monitor import AFTER, BEFORE, drifting_events
from tests.support import replay_events, run_worker, wait_until

pytestmark = pytest.mark.integration


def _rewind(settings: Settings) -> None:
    """The group's committed scores offsets back to 0 (the commit after a checkpoint can be lost)."""
    scores = settings.topic("scores")
    rewind = make_consumer(settings, settings.drift.group_id)
    rewind.commit(offsets=[TopicPartition(scores, p, 0) for p in end_offsets(settings, scores)],
                  asynchronous=False)  # fmt: skip
    rewind.close()


def _run(
    settings: Settings, until: object, timeout: float = 240.0, instance: str = "test-monitor"
) -> DriftMonitor:
    stop = StopFlag(install=False)
    monitor = DriftMonitor(settings, ["kdd"], stop=stop, instance_id=instance)
    thread = threading.Thread(target=monitor.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: until(monitor), timeout), monitor.stats  # type: ignore[operator]
    finally:
        stop.set()
        thread.join(60)
    return monitor


def _restart_after_the_event(
    kafka_settings: Settings, tmp_path: Path, instance: str
) -> tuple[list[dict], DriftMonitor]:
    """A monitor publishes the change's event; the group's offsets go back to 0 and a monitor with no
    state of it (killed before its checkpoint covered the event) under ``instance`` reads it all again."""
    settings = kafka_settings.model_copy(update={"state_dir": tmp_path / "first"})
    replay_events(settings, drifting_events(settings.data_dir))
    run_worker(settings, BEFORE + AFTER)
    first = _run(settings, lambda m: m.stats.scores >= BEFORE + AFTER and m.stats.events)
    assert len(first.stats.events) == 1
    _rewind(settings)
    restarted = settings.model_copy(update={"state_dir": tmp_path / "restarted"})
    second = _run(restarted, lambda m: m.stats.scores >= BEFORE + AFTER, instance=instance)
    events = [msgspec.json.decode(m.value()) for m in read_all(settings, settings.topic("drift"))]
    assert second.watches.units["kdd"].watch.quiet_until > 0, "the change was detected again, not missed"
    return events, second


def test_a_change_redetected_after_a_restart_from_an_older_state_is_published_once(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    events, _ = _restart_after_the_event(kafka_settings, tmp_path, "test-monitor")
    assert len(events) == 1, f"{len(events)} drift events for one change"


def test_a_change_redetected_under_another_id_is_not_reported_again(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """The id is not enough: a feature test's event id depends on the background sampler's timing, and
    a monitor that acknowledged a peer's event (id of the peer) and was killed before checkpointing
    detects that change under its own id. Modelled here by a restart under another instance id: the
    change began before the event on drift-events was detected, so it is that event's change."""
    events, _ = _restart_after_the_event(kafka_settings, tmp_path, "other-monitor")
    assert len(events) == 1, (
        f"{len(events)} drift events for one change: {[(e['event_id'], e['change']) for e in events]}"
    )


def test_a_peer_s_event_is_checkpointed_at_once_not_an_interval_later(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    drift = kafka_settings.drift.model_copy(update={"checkpoint_interval_s": 3600.0})
    settings = kafka_settings.model_copy(update={"state_dir": tmp_path / "state", "drift": drift})
    events = drifting_events(settings.data_dir)[:3000]
    replay_events(settings, events)
    run_worker(settings, len(events))
    stop = StopFlag(install=False)
    monitor = DriftMonitor(settings, ["kdd"], stop=stop, instance_id="test-monitor")
    thread = threading.Thread(target=monitor.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: monitor.stats.scores >= len(events), 120), monitor.stats
        unit = monitor.watches.units["kdd"]
        peer = DriftEvent(event_id="peer-1", stream="kdd", model_version=unit.model.version,
                          detector="adwin", statistic=1.0, threshold=0.5,
                          change=ChangePoint(settings.topic("kdd"), {"0": 0}, None),
                          detected_at="2026-01-01T00:00:00.000+00:00")  # fmt: skip
        producer = make_producer(settings)
        producer.produce(settings.topic("drift"), encode(peer), b"kdd")
        assert producer.flush(30) == 0

        def acknowledged_on_disk() -> bool:
            saved = monitor.checkpoint.store.load()
            return saved is not None and any(
                u["stream"] == "kdd" and u["watch"]["quiet_until"] > 0 for u in saved["units"]
            )

        # A kill now must find the acknowledgement saved: within seconds, not checkpoint_interval_s.
        assert wait_until(acknowledged_on_disk, 30), "the acknowledgement was not checkpointed"
    finally:
        stop.set()
        thread.join(60)
