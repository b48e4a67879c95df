"""What the incident stage actually publishes is OCSF: real ``corrected`` connections through a real
worker, its alerts grouped by a real exactly-once stage, every message on the ``incidents`` topic
(create, update, close) validated against the vendored OCSF 1.3.0 Detection Finding schema."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson
import pytest

from consumers.incidents.stage import IncidentStage
from stream.kafka import iter_topic
from stream.ocsf import OCSF_VERSION, validate_detection_finding
from stream.settings import Settings
from stream.signals import StopFlag
from tests.support import measure
from tests.support.data import corrected_sample
from tests.support.streams import replay, run_worker

pytestmark = pytest.mark.integration

CREATE, UPDATE, CLOSE = 1, 2, 3


def incident_messages(settings: Settings) -> list[dict]:
    found = iter_topic(settings, settings.topic("incidents"), timeout=60)
    return [orjson.loads(m.value()) for m in found if m.value() is not None]  # no tombstones


def test_every_published_incident_is_an_ocsf_detection_finding(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    # Short gap and no throttle, so one test sees incidents created, updated and closed.
    stage_settings = kafka_settings.incidents.model_copy(update={"gap_s": 2.0, "group_interval_s": 0.0})
    settings = kafka_settings.model_copy(
        update={"state_dir": tmp_path / "state", "incidents": stage_settings}
    )
    sample = corrected_sample(settings.data_dir, 3_000)
    replay(settings, sample)
    scored = run_worker(settings, len(sample))
    assert scored.alerts > 100, "too few alerts to group"

    stop = StopFlag(install=False)
    stage = IncidentStage(settings, eos=True, stage_id="ocsf-test", stop=stop)
    runner = threading.Thread(target=stage.run, name="incident-stage", daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 120
        messages: list[dict] = []
        while time.monotonic() < deadline and runner.is_alive():
            messages = incident_messages(settings)
            created = {m["finding_info"]["uid"] for m in messages if m.get("activity_id") == CREATE}
            closed = {m["finding_info"]["uid"] for m in messages if m.get("activity_id") == CLOSE}
            if stage.stats.alerts >= scored.alerts and created and created <= closed:
                break
            time.sleep(0.5)
    finally:
        stop.set()
        runner.join(60)
    assert stage.stats.alerts == scored.alerts, "the stage did not group every alert within 2 minutes"
    assert created and created <= closed, f"{len(created)} created, {len(closed & created)} closed"

    checked = [(m.get("finding_info", {}).get("uid"), validate_detection_finding(m)) for m in messages]
    invalid = [(uid, errors[:2]) for uid, errors in checked if errors]
    assert not invalid, f"{len(invalid)} of {len(messages)} incident messages are not OCSF: {invalid[:3]}"
    activities = {m["activity_id"] for m in messages}
    assert {CREATE, CLOSE} <= activities
    assert {m["metadata"]["version"] for m in messages} == {OCSF_VERSION}
    # Every alert lands in exactly one incident: the closes' counts add up to the alerts grouped.
    last = {m["finding_info"]["uid"]: m for m in messages}
    assert sum(m["count"] for m in last.values()) == scored.alerts
    measure(
        f"OCSF: {len(messages)} incident messages ({len(created)} incidents from {scored.alerts} alerts, "
        f"activities {sorted(activities)}) all valid OCSF {OCSF_VERSION} Detection Findings"
    )
