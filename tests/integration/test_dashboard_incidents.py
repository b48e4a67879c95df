"""The dashboard leads with incidents, in headless Chromium against a real broker (issue 25, item 5).

Real ``corrected`` connections are scored by a real worker; the test then groups the alerts by their
ground-truth label as an incident stage would, and publishes the incidents per the contract (OCSF
Detection Findings on ``incidents``, keyed by incident id, an older revision re-published after a
newer one; the members of one on ``incident-members``). The page must show them first, open before
closed, with severity, count, first and last seen, what they share and the label mix; show an
incident's alerts on demand (from its members, else its sample of alert ids); and a click on
``benign`` must publish one verdict for the whole incident on ``feedback``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.broker import free_port
from stream.kafka import create_topics, flush_or_raise, make_producer, produce, read_all
from stream.settings import Settings
from tests.support import corrected_sample, replay, run_worker, wait_until
from tests.support.streams import make_settings
from tests.support.web import ARTIFACTS, headless_chromium, http_status, spawn_dashboard, stop

pytestmark = pytest.mark.integration

EVENTS = 2000
SEVERITY_IDS = {"low": 2, "medium": 3, "high": 4, "critical": 5}

ROWS = """
return [...document.querySelectorAll('#incidents tr.incident')].map((r) => {
  const cells = {};
  r.querySelectorAll('[data-field]').forEach((c) => { cells[c.dataset.field] = c.textContent; });
  return {id: r.dataset.incidentId, open: r.classList.contains('open'), cells: cells,
          buttons: [...r.querySelectorAll('button[data-verdict]')].map((b) => b.dataset.verdict)};
});
"""
MEMBERS = """
const row = document.querySelector(`#incidents tr.incident-alerts[data-incident-id="${arguments[0]}"]`);
if (!row || !row.querySelector('table.members')) return null;
return {hint: row.querySelector('p').textContent,
        alerts: [...row.querySelectorAll('tr.member')].map((m) =>
          ({id: m.dataset.alertId, label: m.querySelector('[data-field="label"]').textContent}))};
"""


SCORED = """
const e = document.querySelector('#streams tr[data-stream="kdd"] td[data-field="scored"]');
return e ? e.textContent : null;
"""
FIRST_CARD = """
return [...document.querySelectorAll('main > section')].indexOf(document.getElementById('incidents-card'));
"""


def click(driver: Any, selector: str) -> None:
    """Click what ``selector`` finds, again if a redraw (a few a second) made it stale meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def clicked(d: Any) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, selector).click()
            return True
        except StaleElementReferenceException:
            return False

    WebDriverWait(driver, 20, poll_frequency=0.1).until(clicked)


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def finding(incident_id: str, alerts: list[dict], revision: int, closed: bool = False) -> dict[str, Any]:
    """An incident message per the incident contract, over these alerts."""
    severity = max((a["severity"] for a in alerts), key=SEVERITY_IDS.__getitem__)
    first, last = min(ms(a["detected_at"]) for a in alerts), max(ms(a["detected_at"]) for a in alerts)
    contributions: Counter[str] = Counter()
    for alert in alerts:
        for feature in alert["top_features"]:
            contributions[feature["name"]] += feature["contribution"] / len(alerts)
    top = [{"name": n, "contribution": round(c, 4)} for n, c in contributions.most_common(5)]
    labels = Counter(a["label"] for a in alerts)
    activity, status = ((3, "Close"), (4, "Resolved")) if closed else ((2, "Update"), (2, "In Progress"))
    return {
        "activity_id": activity[0], "activity_name": activity[1], "category_uid": 2,
        "category_name": "Findings", "class_uid": 2004, "class_name": "Detection Finding",
        "type_uid": 200400 + activity[0],
        "type_name": f"Detection Finding: {activity[1]}", "severity_id": SEVERITY_IDS[severity],
        "severity": severity.capitalize(), "status_id": status[0], "status": status[1], "time": last,
        "start_time": first, "end_time": last, "count": len(alerts),
        "message": f"{len(alerts)} alerts on kdd: {', '.join(t['name'] for t in top[:3])}",
        "metadata": {"version": "1.3.0", "uid": f"{incident_id}:{revision}",
                     "product": {"name": "anomstream", "vendor_name": "anomstream", "version": "0.1.0"}},
        "finding_info": {"uid": incident_id, "title": f"{len(alerts)} similar alerts on kdd",
                         "desc": "alerts near each other in feature space", "first_seen_time": first,
                         "last_seen_time": last,
                         "analytic": {"name": "pca", "type_id": 99, "type": "Other", "uid": "kdd/pca",
                                      "version": "1"}},
        "unmapped": {"stream": "kdd", "model": {"detector": "pca", "version": 1},
                     "group": {"kind": "features", "fields": {}, "features": [t["name"] for t in top[:3]]},
                     "top_features": top, "alert_ids": [a["alert_id"] for a in alerts[:20]], "verdict": None,
                     "labels": dict(labels), "revision": revision,
                     "partition": alerts[0]["source"]["partition"]},
    }  # fmt: skip


def members(incident_id: str, alerts: list[dict]) -> dict[str, Any]:
    listed = [{"alert_id": a["alert_id"], "source": a["source"], "label": a["label"]} for a in alerts]
    return {"incident_id": incident_id, "stream": "kdd", "alerts": listed}


@pytest.fixture(scope="module")
def incidents(kafka_bootstrap: str, kdd_pca_registry: Path) -> tuple[Settings, dict[str, list[dict]]]:
    """A scored replay; its alerts grouped by label into two incidents, published per the contract."""
    settings = make_settings(kafka_bootstrap, kdd_pca_registry)
    create_topics(settings)
    replay(settings, corrected_sample(settings.data_dir, EVENTS, seed=9))
    run_worker(settings, EVENTS)
    alerts = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts"))]
    alerts.sort(key=lambda a: (a["detected_at"], a["source"]["partition"], a["source"]["offset"]))
    by_label = Counter(a["label"] for a in alerts).most_common(2)
    assert len(by_label) == 2 and by_label[1][1] >= 5, by_label
    groups = {
        f"inc-kdd-test-{i}": [a for a in alerts if a["label"] == label]
        for i, (label, _) in enumerate(by_label)
    }
    (open_id, open_alerts), (closed_id, closed_alerts) = groups.items()
    producer = make_producer(settings)
    half = len(open_alerts) // 2
    # The open one's newest revision, an older one re-published after it (a replayed batch), the closed one.
    published = [finding(open_id, open_alerts, 2), finding(open_id, open_alerts[:half], 1),
                 finding(closed_id, closed_alerts, 5, closed=True)]  # fmt: skip
    for value in published:
        produce(
            producer, settings.topic("incidents"), orjson.dumps(value), value["finding_info"]["uid"].encode()
        )
    for batch in (open_alerts[:half], open_alerts[half:]):  # two stage batches added to it
        produce(
            producer,
            settings.topic("incident_members"),
            orjson.dumps(members(open_id, batch)),
            open_id.encode(),
        )
    flush_or_raise(producer, 30)
    return settings, groups


def test_the_page_leads_with_incidents_and_a_click_judges_a_whole_incident(
    incidents: tuple[Settings, dict[str, list[dict]]], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    settings, groups = incidents
    (open_id, open_alerts), (closed_id, closed_alerts) = groups.items()
    port = free_port()
    dashboard = spawn_dashboard(settings, port, tmp_path / "dashboard.log", "--from-beginning")
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: http_status(f"{base}/readyz") == 200, 60), (
            tmp_path / "dashboard.log"
        ).read_text()
        driver = headless_chromium()
        driver.get(base + "/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.2)
        rows = wait.until(lambda d: (r := d.execute_script(ROWS)) and len(r) == 2 and r)

        # First on the page, open before closed; the newest revision, not the replayed older one.
        card = driver.execute_script(FIRST_CARD)
        assert card == 0, "the incidents lead the page"
        wait.until(lambda d: d.execute_script(SCORED) == f"{EVENTS:,}")  # the replay, read from the beginning
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "dashboard-incidents.png"))
        assert [(r["id"], r["open"]) for r in rows] == [(open_id, True), (closed_id, False)]
        for row, alerts in zip(rows, (open_alerts, closed_alerts), strict=True):
            shown, expected = row["cells"], finding(row["id"], alerts, 1)
            assert shown["severity"] == expected["severity"].lower()
            assert shown["count"] == f"{len(alerts):,}"
            for field, key in (("first_seen", "first_seen_time"), ("last_seen", "last_seen_time")):
                when = datetime.fromtimestamp(expected["finding_info"][key] / 1000).strftime("%H:%M:%S")
                assert when in shown[field], (field, shown[field], when)
            assert all(t["name"] in shown["top_features"] for t in expected["unmapped"]["top_features"])
            label, count = next(iter(expected["unmapped"]["labels"].items()))
            assert shown["labels"] == f"{label} {count:,}"
            assert shown["id"].startswith(row["id"]) and shown["status"] == (
                "In Progress" if row["open"] else "closed"
            )
            assert row["buttons"] == ["benign", "malicious"], "one verdict, for the whole incident"

        # Its alerts on demand: every member (two stage batches) on incident-members, as published.
        click(driver, f'button[data-incident-alerts="{open_id}"]')
        found = wait.until(lambda d: d.execute_script(MEMBERS, open_id))
        assert f"{len(open_alerts):,} alerts; its alerts on incident-members" in found["hint"]
        labels = {a["alert_id"]: a["label"] for a in open_alerts}
        assert len(found["alerts"]) == min(100, len(open_alerts))
        assert all(labels[a["id"]] == a["label"] for a in found["alerts"]), (
            "each alert read from the alerts topic"
        )
        # The closed one has no members published: its sample of alert ids.
        click(driver, f'button[data-incident-alerts="{closed_id}"]')
        found = wait.until(lambda d: d.execute_script(MEMBERS, closed_id))
        assert "a sample of its alerts" in found["hint"]
        assert [a["id"] for a in found["alerts"]] == [a["alert_id"] for a in closed_alerts[:20]][::-1]

        # One click judges the incident: one feedback message naming it, shown on the page.
        driver.find_element(By.ID, "analyst").send_keys("ann")
        driver.find_element(By.ID, "verdict-reason").send_keys("a scan we run")

        click(driver, f'button[data-verdict="benign"][data-incident-id="{open_id}"]')
        wait.until(
            lambda d: (
                next(r for r in d.execute_script(ROWS) if r["id"] == open_id)["cells"].get("verdict")
                == "benign"
            )
        )
        assert wait_until(lambda: len(read_all(settings, settings.topic("feedback"))) == 1, 30)
        (message,) = read_all(settings, settings.topic("feedback"))
        given = orjson.loads(message.value())
        assert message.key() == open_id.encode()
        assert (given["incident_id"], given.get("alert_id"), given["verdict"]) == (open_id, None, "benign")
        assert (given["by"], given["reason"]) == ("ann (dashboard)", "a scan we run")
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        if driver is not None:
            driver.quit()
        stop(dashboard)
    assert dashboard.returncode == 0, (tmp_path / "dashboard.log").read_text()[-3000:]
