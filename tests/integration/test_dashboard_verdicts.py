"""Verdicts from the dashboard, against the session broker: a click in headless Chromium lands on the
feedback topic with the alert's coordinates and model; beyond localhost only the analysts' token may
give one (an HTTP client tries without, with a wrong one and with the right one)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from stream.broker import free_port
from stream.kafka import flush_or_raise, make_producer, produce, read_all
from stream.messages import ModelUpdate, encode
from stream.settings import Settings
from tests.support import corrected_sample, replay, run_worker, schema_validator, wait_until
from tests.support.web import get_json, headless_chromium, http_status, spawn_dashboard, stop

pytestmark = pytest.mark.integration

EVENTS = 2000
TOKEN = "s3cret-analysts-token"
ROW = '#alerts tr.alert[data-alert-id="{}"] [data-field="verdict"]'
VERDICT_SHOWN = "const c = document.querySelector(arguments[0]); return c ? c.textContent : null;"


@pytest.fixture
def alerted(kafka_settings: Settings) -> tuple[Settings, dict[str, dict]]:
    """A scored replay of real ``corrected`` connections; its alerts by id."""
    replay(kafka_settings, corrected_sample(kafka_settings.data_dir, EVENTS, seed=7))
    run_worker(kafka_settings, EVENTS)
    alerts = [orjson.loads(m.value()) for m in read_all(kafka_settings, kafka_settings.topic("alerts"))]
    assert len(alerts) > 100
    return kafka_settings, {a["alert_id"]: a for a in alerts}


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    ask = urllib.request.Request(url, data=data, headers=sent, method="POST")
    try:
        with urllib.request.urlopen(ask, timeout=30) as answer:  # noqa: S310 - a local test URL
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


def feedback(settings: Settings) -> list[dict]:
    messages = read_all(settings, settings.topic("feedback"))
    return [{"key": m.key().decode(), **orjson.loads(m.value())} for m in messages]


def check_verdict_of(given: dict, alert: dict, verdict: str, by: str) -> None:
    """The verdict names its alert, and carries the alert's stream, model and source for the audit."""
    body = {k: v for k, v in given.items() if k != "key"}
    schema_validator("feedback").validate(body)
    assert given["key"] == given["alert_id"] == alert["alert_id"]
    assert (given["verdict"], given["by"]) == (verdict, by)
    for name in ("stream", "detector", "model_version", "source"):
        assert given[name] == alert[name], name


def test_a_click_on_benign_publishes_the_verdict_and_every_page_shows_it(
    alerted: tuple[Settings, dict[str, dict]], tmp_path: Path
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    settings, alerts = alerted
    port = free_port()
    dashboard = spawn_dashboard(settings, port, tmp_path / "dashboard.log")
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: http_status(f"{base}/readyz") == 200, 60), (
            tmp_path / "dashboard.log"
        ).read_text()
        driver = headless_chromium()
        driver.get(base + "/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.2)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#alerts button[data-verdict="benign"]'))
        driver.find_element(By.ID, "analyst").send_keys("ann")
        driver.find_element(By.ID, "verdict-reason").send_keys("a backup job")

        # The rows are redrawn a few times a second: a button found just before a redraw is stale.
        def click_benign(d: Any) -> str | None:
            try:
                button = d.find_element(By.CSS_SELECTOR, '#alerts tr.alert button[data-verdict="benign"]')
                alert_id = button.get_attribute("data-alert-id")
                button.click()
                return str(alert_id)
            except StaleElementReferenceException:
                return None

        alert_id = wait.until(click_benign)
        wait.until(lambda d: d.execute_script(VERDICT_SHOWN, ROW.format(alert_id)) == "benign")
        assert wait_until(lambda: len(feedback(settings)) == 1, 30)
        given = feedback(settings)[0]
        check_verdict_of(given, alerts[alert_id], "benign", "ann (dashboard)")
        assert given["reason"] == "a backup job"

        # A page opened afterwards shows it too (the dashboard read it back from the feedback topic).
        driver.get(base + "/")
        wait.until(lambda d: d.execute_script(VERDICT_SHOWN, ROW.format(alert_id)) == "benign")

        # A retrain outcome on model-updates shows on the timeline as such, with why and its figures.
        rejected = ModelUpdate("kdd", "ae", 2, datetime.now(UTC).isoformat(), status="rejected",
                               reason="drift:d-1", shadow={"alert_rate_candidate": 0.0531},
                               detail="alert rate must fall by 10%")  # fmt: skip
        producer = make_producer(settings)
        produce(producer, settings.topic("model_updates"), encode(rejected), b"kdd")
        flush_or_raise(producer)
        item = wait.until(lambda d: d.execute_script(VERDICT_SHOWN, '#timeline li[data-kind="shadow"]'))
        assert "ae v2 rejected by its shadow evaluation" in item and "must fall by 10%" in item
        assert "alert_rate_candidate=0.0531" in item
        assert not driver.execute_script(VERDICT_SHOWN, '#timeline li[data-kind="promotion"]')
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        if driver is not None:
            driver.quit()
        stop(dashboard)
    assert dashboard.returncode == 0, (tmp_path / "dashboard.log").read_text()[-3000:]


def test_beyond_localhost_only_the_analysts_token_gives_verdicts(
    alerted: tuple[Settings, dict[str, dict]], tmp_path: Path
) -> None:
    settings, alerts = alerted
    ids = list(alerts)
    token = settings.dashboard.model_copy(update={"analyst_token": SecretStr(TOKEN)})
    guarded = settings.model_copy(update={"dashboard": token})
    open_port, guarded_port = free_port(), free_port()
    started = [spawn_dashboard(settings, open_port, tmp_path / "open.log", "--host", "0.0.0.0")]
    try:
        started.append(spawn_dashboard(guarded, guarded_port, tmp_path / "guarded.log", "--host", "0.0.0.0"))
        for port, log in ((open_port, "open.log"), (guarded_port, "guarded.log")):
            ready = wait_until(lambda p=port: http_status(f"http://127.0.0.1:{p}/readyz") == 200, 60)
            assert ready, (tmp_path / log).read_text()

        url = f"http://127.0.0.1:{open_port}/api/verdicts"
        status, answer = post(url, {"alert_id": ids[0], "verdict": "benign"})
        assert status == 403 and "ANOMSTREAM_DASHBOARD__ANALYST_TOKEN" in answer["error"]
        assert get_json(f"http://127.0.0.1:{open_port}/api/snapshot")["status"]["verdicts"] == "refused"

        url = f"http://127.0.0.1:{guarded_port}/api/verdicts"
        asked = {"alert_id": ids[1], "verdict": "malicious", "by": "bob"}
        assert post(url, asked)[0] == 401
        assert post(url, asked, {"Authorization": "Bearer not-the-token"})[0] == 401
        assert feedback(settings) == [], "nothing published without the token"
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        unknown = post(url, {"alert_id": "0" * 32, "verdict": "benign"}, bearer)
        assert unknown[0] == 404 and f"no alert {'0' * 32}" in unknown[1]["error"]
        # No page was sent this alert: the dashboard finds it on the alerts topic.
        status, answer = post(url, asked, bearer)
        assert status == 200, answer
        assert wait_until(lambda: len(feedback(settings)) == 1, 30)
        check_verdict_of(feedback(settings)[0], alerts[ids[1]], "malicious", "bob (dashboard)")
    finally:
        for process in started:
            stop(process)
    for log in ("open.log", "guarded.log"):
        assert TOKEN not in (tmp_path / log).read_text(), "the token was logged"
