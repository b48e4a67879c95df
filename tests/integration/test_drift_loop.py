"""The whole drift loop through the real broker, as `anomstream up` runs it: a drifting sensor replay
scored by an exactly-once worker; the drift monitor with --retrain detects the change once, retrains
in a separate process, shadow-evaluates, promotes; the worker follows live; and no input offset is
lost or scored twice across the switch."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import orjson
import pytest

from consumers.drift.monitor import DriftMonitor
from consumers.worker import ScoringWorker
from models.registry import Registry
from producers.drift import DriftSpec, sensor_drift_events
from producers.replay import ReplayProducer
from stream.datasets.sensor import load_nab_series
from stream.kafka import create_topics, end_offsets, read_all
from stream.settings import DriftSettings
from stream.signals import StopFlag
from tests.support import make_settings, measure, score_records, scored_offsets, wait_until
from tests.support.plugin import SENSOR_SERIES, SENSOR_WINDOW

pytestmark = pytest.mark.integration

CHANGE_AT = 3000
AFTER_PROMOTION = 2000


def _replay(settings, events) -> None:  # noqa: ANN001
    stats = ReplayProducer(settings, settings.topic("sensor"), progress=False, stop=StopFlag(False)).run(
        events
    )
    assert stats.failed == 0 and stats.delivered == stats.sent > 0


def _updates(settings) -> list[dict]:  # noqa: ANN001
    return [orjson.loads(m.value()) for m in read_all(settings, settings.topic("model_updates"), timeout=10)]


def test_drift_detected_once_retrained_promoted_and_followed_live_exactly_once(
    kafka_bootstrap: str, sensor_registry: Path, tmp_path: Path
) -> None:
    registry_dir = tmp_path / "registry"
    shutil.copytree(sensor_registry, registry_dir)
    drift = DriftSettings(retrain_min_events=2000, retrain_max_events=20_000, retrain_min_fit_rows=500,
                          retrain_wait_s=120, retrain_cooldown_s=3600)  # fmt: skip
    settings = make_settings(kafka_bootstrap, registry_dir, state_dir=tmp_path / "state", drift=drift)
    create_topics(settings)
    series = [load_nab_series(settings.data_dir, SENSOR_SERIES)]
    stop = StopFlag(install=False)
    worker = ScoringWorker(settings, ["sensor"], eos=True, worker_id="loop-worker", stop=stop)
    monitor = DriftMonitor(settings, ["sensor"], retrain=True, stop=stop, instance_id="loop-monitor")
    threads = [threading.Thread(target=t.run, daemon=True) for t in (worker, monitor)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        _replay(settings, sensor_drift_events(series, DriftSpec("variance", CHANGE_AT), SENSOR_WINDOW))
        assert wait_until(lambda: any(u["reason"].startswith("drift:") for u in _updates(settings)), 150), (
            "no promotion after the drift"
        )
        promoted_after = time.monotonic() - started
        assert wait_until(lambda: worker.models["sensor"].version == 2, 60), "the worker did not follow"
        first_pass = sum(end_offsets(settings, settings.topic("sensor")).values())
        # More of the new regime, now scored by the promoted model.
        spec = DriftSpec("variance", 0)
        _replay(settings, sensor_drift_events(series, spec, SENSOR_WINDOW, limit=AFTER_PROMOTION))
        total = first_pass + AFTER_PROMOTION
        assert wait_until(lambda: sum(scored_offsets(score_records(settings)).values()) >= total, 120)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)

    drift_events = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("drift"))]
    assert len(drift_events) == 1, drift_events
    event = drift_events[0]
    assert (event["stream"], event["model_version"], event["action"]) == ("sensor", 1, "retrain_started")

    updates = _updates(settings)
    assert [(u["version"], u["reason"], u["status"]) for u in updates] == [
        (2, f"drift:{event['event_id']}", "candidate"),  # the retrain's outcome, then the promotion
        (2, f"drift:{event['event_id']}", "production"),
    ]
    registry = Registry(registry_dir)
    assert [(r["version"], r["status"]) for r in registry.list("sensor")] == [
        (1, "retired"),
        (2, "production"),
    ]

    # Exactly once across the switch: every input offset in exactly one committed score record.
    records = score_records(settings)
    counts = scored_offsets(records)
    topic = settings.topic("sensor")
    expected = {(topic, p, o) for p, end in end_offsets(settings, topic).items() for o in range(end)}
    assert set(counts) == expected and max(counts.values()) == 1
    # What arrived after the promotion was scored by v2, and its alerts say so.
    late = [r for r in records if min(r["offsets"]) >= first_pass]
    assert late and all(r["model_version"] == 2 for r in late)
    alerts = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts"))]
    assert any(a["model_version"] == 2 for a in alerts)
    assert all(a["model_version"] == 2 for a in alerts if a["source"]["offset"] >= first_pass)
    measure(
        f"drift loop end to end (sensor variance x3 at window {CHANGE_AT}): 1 drift event, promotion of v2 "
        f"{promoted_after:.0f} s after the replay began, {len(late)} later score records all by v2, "
        f"{sum(counts.values()):,} offsets scored exactly once"
    )
