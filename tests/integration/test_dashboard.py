"""The dashboard in a real browser: headless Chromium against a real broker while a replay runs.

A worker process scores a replay of real ``corrected`` connections; the dashboard process reads the
output topics; Chromium opens the page. The counts on the page grow and end at exactly the number
of events replayed, an alert shows in the feed with every field of the alert schema, and a drift
event and the promotion that followed it show on the timeline. A screenshot is saved to
``out/test-artifacts/dashboard.png``.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from consumers.model_updates import promote
from models.registry import Registry
from models.training import TrainingRequest, train
from stream.broker import free_port
from stream.kafka import flush_or_raise, make_producer, produce, read_all
from stream.labels import is_attack
from stream.messages import SCHEMA_DIR, ChangePoint, DriftEvent, encode
from stream.settings import Settings
from tests.support import corrected_sample, measure, replay, score_records, spawn_worker, wait_until
from tests.support.web import (
    ARTIFACTS,
    cpu_seconds,
    get_json,
    headless_chromium,
    http_status,
    spawn_dashboard,
    stop,
)

pytestmark = pytest.mark.integration

EVENTS = 12_000
RATE = 1500.0


# The page redraws its tables on every update: read it in one script call, never through element
# references that the next update makes stale.
TEXT = "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;"
NEWEST_ALERT = """
const row = document.querySelector("#alerts tr.alert");
if (!row) return null;
const cells = {};
row.querySelectorAll("[data-field]").forEach((c) => { cells[c.dataset.field] = c.textContent; });
const alert = window.anomstream.alerts.find((a) => a.alert_id === row.dataset.alertId);
return {id: row.dataset.alertId, title: row.title, cells: cells, alert: alert};
"""
SEVERITIES_SHOWN = 'return [...document.querySelectorAll("#alerts tr.alert")].map((r) => r.dataset.severity);'
KDD = '#streams tr[data-stream="kdd"] td[data-field="{}"]'


def text(driver, selector: str) -> str | None:  # noqa: ANN001 - a selenium WebDriver
    return driver.execute_script(TEXT, selector)


def scored_on_page(driver) -> int:  # noqa: ANN001
    shown = (text(driver, KDD.format("scored")) or "").replace(",", "")
    return int(shown) if shown.isdigit() else -1


def test_dashboard_shows_a_live_replay_alerts_and_a_promotion(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    registry_dir = tmp_path / "registry"
    shutil.copytree(kafka_settings.registry_dir, registry_dir)
    settings = kafka_settings.model_copy(update={"registry_dir": registry_dir})
    dash_port, worker_port = free_port(), free_port()
    dashboard = spawn_dashboard(settings, dash_port, tmp_path / "dashboard.log")
    worker = spawn_worker(settings, "--metrics-port", str(worker_port), log_path=tmp_path / "worker.log")
    driver = None
    try:
        # A candidate for the promotion later (1 epoch: a fixture), trained while the processes start.
        request = TrainingRequest("kdd", "ae", detector_params={"epochs": 1, "verbose": 0})
        candidate = train(Registry(registry_dir), settings.data_dir, request, promote=False)
        base = f"http://127.0.0.1:{dash_port}"
        assert wait_until(lambda: http_status(f"{base}/readyz") == 200, 60), (
            tmp_path / "dashboard.log"
        ).read_text()
        assert wait_until(lambda: http_status(f"http://127.0.0.1:{worker_port}/readyz") == 200, 120), (
            tmp_path / "worker.log"
        ).read_text()[-3000:]
        driver = headless_chromium()
        driver.get(base + "/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.2)
        wait.until(lambda d: d.execute_script("return window.anomstream.frames") >= 1)
        assert scored_on_page(driver) in (-1, 0)  # nothing scored yet

        frame = corrected_sample(settings.data_dir, EVENTS, seed=11)
        replay_thread = threading.Thread(target=replay, args=(settings, frame, RATE), daemon=True)
        cpu0, wall0 = cpu_seconds(dashboard.pid), time.monotonic()
        frames0 = driver.execute_script("return window.anomstream.frames")
        replay_thread.start()

        # The counts grow while the replay runs.
        wait.until(lambda d: scored_on_page(d) > 0)
        first = scored_on_page(driver)
        wait.until(lambda d: scored_on_page(d) > first)
        assert scored_on_page(driver) < EVENTS, "the replay should still be running"

        # An alert shows in the feed, with every field of the alert schema.
        wait.until(lambda d: d.execute_script(NEWEST_ALERT))
        check_alert_row(driver.execute_script(NEWEST_ALERT), settings)

        # A drift event and the promotion it led to show on the timeline, and the workers follow.
        event_id = announce_drift(settings)
        assert promote(settings, "kdd", "ae", candidate.version, reason=f"drift:{event_id}").announced
        promotion = f'#timeline li[data-kind="promotion"][data-version="{candidate.version}"]'
        item = wait.until(lambda d: text(d, promotion))
        assert f"ae v{candidate.version} promoted to production" in item
        assert f"after drift event {event_id}" in item
        assert event_id in (text(driver, '#timeline li[data-kind="drift"]') or "")
        wait.until(lambda d: text(d, f'#production li[data-version="{candidate.version}"]'))
        wait.until(lambda d: text(d, KDD.format("model")) == f"ae v{candidate.version}")

        # Every event counted exactly once, and the page's precision and recall are the topic's.
        replay_thread.join(120)
        wait.until(lambda d: scored_on_page(d) == EVENTS)
        cpu1, wall1 = cpu_seconds(dashboard.pid), time.monotonic()
        frames1 = driver.execute_script("return window.anomstream.frames")
        check_precision_recall(driver, settings)

        # The severity filter shows only what it says.
        Select(driver.find_element(By.ID, "filter-severity")).select_by_visible_text("high")
        # The filter applies at the next animation frame.
        wait.until(lambda d: set(d.execute_script(SEVERITIES_SHOWN) or ["none"]) <= {"high", "critical"})
        Select(driver.find_element(By.ID, "filter-severity")).select_by_visible_text("all")

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        # One more frame, so the last minute's scores are all drawn.
        drawn = driver.execute_script("return window.anomstream.frames")
        wait.until(lambda d: d.execute_script("return window.anomstream.frames") > drawn)
        for path in (ARTIFACTS / "dashboard.png", tmp_path / "dashboard.png"):
            assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
        updates_per_s = (frames1 - frames0) / (wall1 - wall0)
        assert updates_per_s >= 2.0, f"the page received {updates_per_s:.2f} updates/s"
        measure(
            f"dashboard: {updates_per_s:.2f} updates/s received by the page; dashboard CPU "
            f"{100 * (cpu1 - cpu0) / (wall1 - wall0):.0f}% of a core while {EVENTS:,} events were scored "
            f"at {RATE:,.0f}/s; screenshot {ARTIFACTS / 'dashboard.png'}"
        )
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        if driver is not None:
            driver.quit()
        stop(worker, 60)
        stop(dashboard)
    assert dashboard.returncode == 0, (tmp_path / "dashboard.log").read_text()[-3000:]


def check_alert_row(row: dict, settings: Settings) -> None:
    """The newest row: its alert is on the alerts topic, and the row shows each field of the schema."""
    alerts = (orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts")))
    alert = {a["alert_id"]: a for a in alerts}[row["id"]]
    assert row["alert"] == alert  # the page holds the alert as published, untouched
    cell, title = row["cells"], row["title"]
    score, threshold = (float(x.split("(")[0]) for x in cell["score"].split("/"))
    shown = {
        "alert_id": row["id"] == alert["alert_id"],
        "stream": cell["stream"] == alert["stream"],
        "event_id": f"event {alert['event_id']}" in title,
        "source": "{topic}[{partition}]@{offset}".format(**alert["source"]) in title,
        "event_time": f"event time {alert['event_time'] or '–'}" in title,
        "detected_at": datetime.fromisoformat(alert["detected_at"]).astimezone().strftime("%H:%M:%S")
        in cell["detected_at"],
        "detector": cell["model"].split()[0] == alert["detector"],
        "model_version": cell["model"].split()[1] == f"v{alert['model_version']}",
        "score": score == pytest.approx(alert["score"], rel=0.01),
        "threshold": threshold == pytest.approx(alert["threshold"], rel=0.01),
        "severity": cell["severity"] == alert["severity"],
        "top_features": all(f["name"] in cell["top_features"] for f in alert["top_features"]),
        "label": cell["label"] == (alert["label"] or "–"),
        # A dataset schema's incident grouping fields (none on KDD): in the row's title.
        "fields": all(f"{k}={v}" in title for k, v in (alert.get("fields") or {}).items()),
    }
    schema = json.loads((SCHEMA_DIR / "alert.schema.json").read_text())
    assert set(shown) == set(schema["properties"]), "the alert schema changed: show the new field"
    assert all(shown.values()), {k: v for k, v in shown.items() if not v}


def announce_drift(settings: Settings) -> str:
    """A drift event on drift-events, as the drift monitor publishes it."""
    event = DriftEvent(
        event_id="drift-test-0001", stream="kdd", model_version=1, detector="adwin", statistic=0.42,
        threshold=0.05, change=ChangePoint(settings.topic("kdd"), {"0": 1200}, None),
        detected_at=datetime.now(UTC).isoformat(), action="retrain_started",
    )  # fmt: skip
    producer = make_producer(settings)
    produce(producer, settings.topic("drift"), encode(event), b"kdd")
    flush_or_raise(producer, 30)
    return event.event_id


def check_precision_recall(driver, settings: Settings) -> None:  # noqa: ANN001
    tp = fp = fn = 0
    for record in score_records(settings):
        flagged, attack = np.asarray(record["is_alert"], dtype=bool), is_attack(record["labels"])
        labelled = np.asarray([label is not None for label in record["labels"]])
        # Counted here by hand from the topic, against what the page shows.
        tp += int(np.sum(flagged & attack))
        fp += int(np.sum(flagged & ~attack & labelled))
        fn += int(np.sum(~flagged & attack))
    assert text(driver, KDD.format("precision")) == f"{tp / (tp + fp):.3f}"
    assert text(driver, KDD.format("recall")) == f"{tp / (tp + fn):.3f}"
    snapshot = get_json(driver.current_url.rstrip("/") + "/api/snapshot")
    totals = snapshot["streams"]["kdd"]["so_far"]
    assert (totals["tp"], totals["fp"], totals["fn"]) == (tp, fp, fn)
    assert snapshot["streams"]["kdd"]["duplicates"] == 0
