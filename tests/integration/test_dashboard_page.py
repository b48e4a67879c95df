"""The dashboard tells the truth in a real browser (issue 28): scores are drawn at their event time
(a backlog read with ``--from-beginning`` included, and after the stream ended: never at epoch 0),
the alert feed fits its panel at 1,400 px, refused verdicts are said once with no dead button, and a
plain ``chromium --headless --screenshot`` of the page completes.

Real broker, real ``corrected`` connections scored by a real worker (a PCA model: the page is under
test, not the model); headless Chromium.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream.broker import free_port
from stream.kafka import create_topics, flush_or_raise, make_producer, produce
from stream.messages import ScoreRecord, encode
from stream.settings import Settings
from tests.support import corrected_sample, replay, run_worker, wait_until
from tests.support.streams import make_settings
from tests.support.web import (
    ARTIFACTS,
    CHROMIUM,
    get_json,
    headless_chromium,
    http_status,
    require_binary,
    spawn_dashboard,
    stop,
)

pytestmark = pytest.mark.integration

EVENTS = 2000
SCORED = '#streams tr[data-stream="kdd"] td[data-field="scored"]'
TEXT = "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;"


@pytest.fixture(scope="module")
def alerted(kafka_bootstrap: str, kdd_pca_registry: Path) -> Settings:
    """Topics of this module's own, with a scored replay of real connections and its alerts."""
    settings = make_settings(kafka_bootstrap, kdd_pca_registry)
    create_topics(settings)
    replay(settings, corrected_sample(settings.data_dir, EVENTS, seed=5))
    run_worker(settings, EVENTS)
    return settings


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Any]:
    """Starts dashboards (``start(settings, *args)`` -> base URL) and stops them after the test."""
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(settings: Settings, *args: str) -> str:
        port = free_port()
        log = tmp_path / f"dashboard-{len(started)}.log"
        started.append((spawn_dashboard(settings, port, log, *args), log))
        base = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: http_status(f"{base}/readyz") == 200, 60), log.read_text()[-3000:]
        return base

    yield start
    for process, log in started:
        stop(process)
        assert process.returncode == 0, log.read_text()[-3000:]


def scored(driver: Any) -> int:
    shown = (driver.execute_script(TEXT, SCORED) or "").replace(",", "")
    return int(shown) if shown.isdigit() else -1


def test_scores_are_drawn_at_their_event_time_even_read_long_after(
    kafka_bootstrap: str, kdd_pca_registry: Path, dashboard: Any
) -> None:
    """Score records of events three hours old, read with --from-beginning once they are all there
    (the replay has ended): the chart shows the last minute of those events, not the time they were
    read nor epoch 0."""
    from selenium.webdriver.support.ui import WebDriverWait

    settings = make_settings(kafka_bootstrap, kdd_pca_registry)
    create_topics(settings)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    rng = np.random.default_rng(3)
    producer = make_producer(settings)
    per_record, records = 50, 36  # 1,800 events over 90 s of event time, spread over 3 partitions
    for r in range(records):
        partition = r % 3
        offsets = list(range((r // 3) * per_record, (r // 3 + 1) * per_record))
        times = [start + timedelta(seconds=90 * (r * per_record + i) / (records * per_record))
                 for i in range(per_record)]  # fmt: skip
        scores = rng.lognormal(-4, 1, per_record)
        record = ScoreRecord("kdd", "pca", 1, settings.topic("kdd"), partition, offsets, scores.tolist(),
                             (scores > 0.1).tolist(), ["normal"] * per_record,
                             [t.isoformat() for t in times])  # fmt: skip
        produce(producer, settings.topic("scores"), encode(record), b"kdd")
    flush_or_raise(producer, 30)
    newest = (start + timedelta(seconds=90 * (records * per_record - 1) / (records * per_record))).timestamp()

    base = dashboard(settings, "--from-beginning")
    driver = headless_chromium()
    try:
        driver.get(base + "/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.2)
        wait.until(lambda d: scored(d) == per_record * records)
        wait.until(
            lambda d: d.execute_script("return (window.anomstream.points.kdd || {t: []}).t.length") > 0
        )
        times = driver.execute_script("return window.anomstream.points.kdd.t")
        assert min(times) >= start.timestamp() - 1 and max(times) <= newest + 1, (
            f"points at {min(times):.0f}..{max(times):.0f}, events at {start.timestamp():.0f}..{newest:.0f}"
        )
        assert max(times) >= newest - 60, "the last minute of the events is drawn"
        x = driver.execute_script(
            "const u = window.anomstream.charts.score; return [u.scales.x.min, u.scales.x.max];"
        )
        assert x[1] == pytest.approx(max(times), abs=1) and x[1] - x[0] == pytest.approx(60, abs=1), x
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()


# Every verdict button against its card and the scroller around its table: inside both, so it is
# seen and clicked without scrolling sideways.
OUTSIDE = """
const out = [];
for (const b of document.querySelectorAll('#alerts button[data-verdict]')) {
  const r = b.getBoundingClientRect(), card = b.closest('.card').getBoundingClientRect();
  const box = b.closest('.scroll'), s = box.getBoundingClientRect();
  const right = s.left + box.clientWidth;
  if (r.right > card.right || r.right > right || r.left < card.left) {
    out.push([b.dataset.verdict, r.right, card.right, right]);
  }
}
const box = document.querySelector('#alerts').closest('.scroll');
return {buttons: document.querySelectorAll('#alerts button[data-verdict]').length, outside: out,
        overflow: box.scrollWidth - box.clientWidth, width: window.innerWidth};
"""


def test_at_1400_px_every_verdict_button_sits_inside_the_alerts_panel(
    alerted: Settings, dashboard: Any
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    base = dashboard(alerted)
    driver = headless_chromium(1400, 1000)
    try:
        driver.get(base + "/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.2)
        wait.until(lambda d: d.execute_script(OUTSIDE)["buttons"] >= 20)
        found = driver.execute_script(OUTSIDE)
        assert found["width"] <= 1400
        assert found["outside"] == [] and found["overflow"] <= 0, found
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "dashboard-1400.png"))
    finally:
        driver.quit()


REFUSAL = """
const banner = document.getElementById('verdicts-refused');
const said = [...document.querySelectorAll('body *')].filter((e) => e.children.length === 0
  && e.offsetParent !== null && e.textContent.includes('ANOMSTREAM_DASHBOARD__ANALYST_TOKEN'));
return {buttons: document.querySelectorAll('button[data-verdict]').length,
        rows: document.querySelectorAll('#alerts tr.alert').length,
        banner: banner && banner.offsetParent !== null ? banner.textContent : null, said: said.length,
        verdictColumns: [...document.querySelectorAll('th.col-verdict')]
          .filter((e) => e.offsetParent !== null).length};
"""


def test_refused_verdicts_are_said_once_with_no_dead_button(alerted: Settings, dashboard: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    base = dashboard(alerted, "--host", "0.0.0.0")
    driver = headless_chromium()
    try:
        driver.get(base + "/")
        wait = WebDriverWait(driver, 60, poll_frequency=0.2)
        wait.until(lambda d: d.execute_script(REFUSAL)["rows"] >= 20)
        found = driver.execute_script(REFUSAL)
        assert found["buttons"] == 0, f"{found['buttons']} buttons that cannot give a verdict"
        assert found["banner"] and "ANOMSTREAM_DASHBOARD__ANALYST_TOKEN" in found["banner"], found
        assert found["said"] == 1 and found["verdictColumns"] == 0, found
    finally:
        driver.quit()


def test_a_headless_screenshot_of_the_page_completes(
    alerted: Settings, dashboard: Any, tmp_path: Path
) -> None:
    """``chromium --headless --screenshot URL`` waits for the page's load event: the never-ending
    event stream must not hold it back (an operator's screenshot, a link preview), and what the page
    shows at that moment is the pipeline, not an empty page waiting for its stream."""
    chromium = require_binary(CHROMIUM, "chromium")
    base = dashboard(alerted)
    assert wait_until(lambda: len(get_json(f"{base}/api/snapshot")["alerts"]) > 0, 30)
    shot, profile = tmp_path / "shot.png", tmp_path / "profile"
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--window-size=1400,1000", f"--screenshot={shot}",
               base + "/"]  # fmt: skip
    began = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium --headless --screenshot did not finish within 60 s")
    assert done.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
    assert time.monotonic() - began < 60
    # The page as it stands at its load event (what the screenshot shows): alerts in the feed.
    command[command.index(f"--screenshot={shot}")] = "--dump-dom"
    dom = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    assert 'class="alert"' in dom and 'data-stream="kdd"' in dom, dom[-2000:]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "dashboard-headless.png")
