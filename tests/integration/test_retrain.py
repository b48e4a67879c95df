"""The drift loop's retrain through a real broker: a drift event -> post-change events read from the
input topic by offset range -> a candidate trained in a separate process and shadow-evaluated ->
promoted and announced on model-updates (or rejected, production untouched) -> rolled back."""

from __future__ import annotations

import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from consumers.drift.retrain import Retrainer, RetrainResult
from consumers.model_updates import rollback
from models.registry import Registry
from models.retraining import RetrainPolicy
from producers.drift import (
    DriftSpec,
    kdd_drift_events,
    load_kdd_drift_sources,
    sensor_drift_events,
    true_change_offsets,
)
from producers.replay import ReplayProducer
from stream.datasets.sensor import load_nab_series
from stream.kafka import create_topics, read_all
from stream.messages import ChangePoint, DriftEvent
from stream.settings import Settings
from stream.signals import StopFlag
from tests.support import make_settings, schema_validator
from tests.support.plugin import SENSOR_SERIES as SERIES
from tests.support.plugin import SENSOR_WINDOW as WINDOW

pytestmark = pytest.mark.integration


CHANGE_AT = 3000


def drift_event(settings: Settings, stream: str, version: int = 1) -> DriftEvent:
    """The drift event the monitor would publish, with the TRUE change offsets read from the
    input topic's drift.phase headers (detection itself is the monitor's, tested there)."""
    topic = settings.topic(stream)
    offsets = true_change_offsets(settings, topic)
    assert offsets, "the scenario put no changed event on the topic"
    now = datetime.now(UTC).isoformat()
    change = ChangePoint(topic, {str(p): o for p, o in offsets.items()}, now)
    return DriftEvent(f"test-{uuid.uuid4().hex[:8]}", stream, version, "adwin", 1.0, 0.5, change, now)


def wait_for_result(retrainer: Retrainer, timeout: float = 300.0) -> RetrainResult:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        results = retrainer.poll()
        if results:
            assert len(results) == 1
            return results[0]
        time.sleep(0.5)
    raise AssertionError("no retrain result in time")


def replay(settings: Settings, topic: str, events) -> None:  # noqa: ANN001
    producer = ReplayProducer(settings, topic, progress=False, stop=StopFlag(False))
    stats = producer.run(events)
    assert stats.failed == 0 and stats.delivered == stats.sent > 0


def test_drift_retrain_promotes_announces_and_rolls_back(
    kafka_bootstrap: str, sensor_registry: Path, tmp_path: Path
) -> None:
    registry_dir = tmp_path / "registry"
    shutil.copytree(sensor_registry, registry_dir)
    settings = make_settings(kafka_bootstrap, registry_dir)
    create_topics(settings)
    series = [load_nab_series(settings.data_dir, SERIES)]
    spec = DriftSpec("variance", CHANGE_AT)
    replay(settings, settings.topic("sensor"), sensor_drift_events(series, spec, WINDOW))
    event = drift_event(settings, "sensor")
    assert list(event.change.partition_offsets.values()) == [CHANGE_AT]  # one sensor: one partition

    policy = RetrainPolicy(min_events=2000, max_events=20_000, min_fit_rows=500, wait_s=30, cooldown_s=3600)
    retrainer = Retrainer(settings, policy)
    try:
        assert retrainer.submit(event)
        assert not retrainer.submit(event), "a second event while one retrain runs is ignored"
        result = wait_for_result(retrainer)
        assert not retrainer.submit(event), "the stream is in its cooldown"
    finally:
        retrainer.close()
    assert result.outcome == "promoted", result
    assert result.candidate_version == 2 and result.shadow["passed"] == 1.0
    assert result.shadow["alert_rate_candidate"] <= 0.9 * result.shadow["alert_rate_production"]

    registry = Registry(registry_dir)
    prod = registry.production("sensor")
    assert (prod["version"], prod["reason"]) == (2, f"drift:{event.event_id}")
    manifest = registry.manifest("sensor", "ae", 2)
    assert manifest["shadow"]["passed"] and manifest["retrain"]["event_id"] == event.event_id
    n_events = len(series[0]) - WINDOW + 1
    assert manifest["retrain"]["ranges"] == {p: [CHANGE_AT, n_events] for p in event.change.partition_offsets}
    assert manifest["training"]["params"] == registry.manifest("sensor", "ae", 1)["training"]["params"]
    assert [r["status"] for r in registry.list("sensor")] == ["retired", "production"]
    registry.load("sensor")  # sealed and loadable

    # Rollback: v1 again, v2 rejected, both changes announced.
    back = rollback(settings, "sensor")
    assert back.announced and back.update.version == 1
    assert [r["status"] for r in registry.list("sensor")] == ["production", "rejected"]
    updates = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("model_updates"))]
    assert [(u["version"], u["reason"]) for u in updates] == [(2, f"drift:{event.event_id}"), (1, "rollback")]
    for update in updates:
        schema_validator("model-update").validate(update)


def test_a_candidate_that_fails_its_shadow_evaluation_leaves_production_untouched(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    registry_dir = tmp_path / "registry"
    shutil.copytree(kafka_settings.registry_dir, registry_dir)
    settings = kafka_settings.model_copy(update={"registry_dir": registry_dir})
    before, after, _ = load_kdd_drift_sources(settings.data_dir)
    events = kdd_drift_events(before, after, DriftSpec("abrupt", 10_000), limit=110_000)
    replay(settings, settings.topic("kdd"), events)
    event = drift_event(settings, "kdd")
    assert sum(event.change.partition_offsets.values()) > 0

    # An alert rate that must fall by 95%: the KDD abrupt scenario's candidate cannot pass it.
    policy = RetrainPolicy(
        min_events=20_000, max_events=100_000, min_alert_drop=0.95, wait_s=30, cooldown_s=0
    )
    retrainer = Retrainer(settings, policy)
    try:
        assert retrainer.submit(event)
        result = wait_for_result(retrainer)
    finally:
        retrainer.close()
    assert result.outcome == "rejected", result
    assert "alert rate on normal-looking data" in result.detail and result.candidate_version == 2

    registry = Registry(registry_dir)
    assert registry.production("kdd")["version"] == 1
    rows = registry.list("kdd")
    assert [(r["version"], r["status"]) for r in rows] == [(1, "production"), (2, "rejected")]
    shadow = registry.manifest("kdd", "ae", 2)["shadow"]
    assert not shadow["passed"] and shadow["recall"]["attacks"] > 1000  # the original validation attacks
    contamination = registry.manifest("kdd", "ae", 2)["retrain"]["contamination"]
    assert contamination["fit_attack_share"] < contamination["pool_attack_share"]
    assert read_all(settings, settings.topic("model_updates")) == []
