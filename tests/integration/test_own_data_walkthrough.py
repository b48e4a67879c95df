"""The README's "your own data" walk-through, command for command, as real processes.

A public dataset that is not one of ours (Seattle's daily weather 2012-2015, NOAA, as the
vega_datasets package ships it) goes from a drafted schema to alerts: `data infer`, `train --schema`,
`worker --schema`, `replay FILE --schema`, `alerts tail --stream`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from stream.broker import free_port
from stream.settings import Settings
from tests.support import score_records
from tests.support.timing import wait_until
from tests.support.web import get_json, spawn_dashboard, stop

pytestmark = pytest.mark.integration

# The file as `pip download vega_datasets==0.9.0` ships it (the README's first step).
WEATHER_SHA256 = "62f0609f787158128aa2bd102967173a4953122dd4f872bf1d502cae1037df0b"
DAYS = 1461


def _cli(settings: Settings, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = settings.environment() | {"COLUMNS": "200"}
    command = [sys.executable, "-m", "anomstream", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr[-2000:]}"
    return done


@pytest.fixture
def weather_csv(tmp_path: Path) -> Path:
    shipped = resources.files("vega_datasets") / "_data" / "seattle-weather.csv"
    target = tmp_path / "seattle-weather.csv"
    with resources.as_file(shipped) as source:
        shutil.copyfile(source, target)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == WEATHER_SHA256
    return target


def test_the_walkthrough_turns_a_public_csv_into_alerts(
    kafka_settings: Settings, weather_csv: Path, tmp_path: Path
) -> None:
    settings, folder = kafka_settings, tmp_path

    # 1. A draft schema, checked: the README shows exactly these guesses.
    _cli(settings, folder, "data", "infer", weather_csv.name)
    schema_path = folder / "seattle-weather.schema.toml"
    schema = tomllib.loads(schema_path.read_text())
    assert schema["name"] == "seattle-weather" and schema["kind"] == "records"
    assert schema["timestamp"] == {"column": "date", "format": "%Y/%m/%d"}
    assert schema["features"]["numeric"] == ["precipitation", "temp_max", "temp_min", "wind"]
    assert schema["features"]["categorical"] == ["weather"]
    assert "label" not in schema  # the file has no ground truth
    assert schema["source"]["path"] == weather_csv.name  # beside the schema: the folder can move

    # 2. Train on the first two years (730 days), the past; the last two are the live stream.
    trained = _cli(settings, folder, "train", "--schema", schema_path.name, "--detector", "ae",
                   "--training-rows", "730")  # fmt: skip
    assert "seattle-weather/ae v1" in trained.stdout + trained.stderr

    # 3. A worker for the stream, then 4. the replay (topic created by the replay).
    command = [sys.executable, "-m", "anomstream", "worker", "--schema", schema_path.name]
    env = settings.environment()
    log = (folder / "worker.log").open("wb")  # a pipe could fill up and block the worker
    worker = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        replayed = _cli(settings, folder, "replay", weather_csv.name, "--schema", schema_path.name)
        assert f"delivered {DAYS:,}, failed 0" in replayed.stderr
        assert wait_until(lambda: sum(len(r["offsets"]) for r in score_records(settings)) >= DAYS, 120)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        log.close()
    assert worker.returncode == 0, (folder / "worker.log").read_text()[-2000:]

    records = [r for r in score_records(settings) if r["stream"] == "seattle-weather"]
    scored = [(r["partition"], o) for r in records for o in r["offsets"]]
    assert len(scored) == len(set(scored)) == DAYS  # every day once
    n_alerts = sum(sum(r["is_alert"]) for r in records)

    # 5. The alerts, from the command line.
    tailed = _cli(settings, folder, "alerts", "tail", "--stream", "seattle-weather", "--from-beginning",
                  "--json", "--limit", str(n_alerts))  # fmt: skip
    alerts = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert len(alerts) == n_alerts and 0 < n_alerts < DAYS // 4
    names = {"precipitation", "temp_max", "temp_min", "wind"} | {
        f"weather={w}" for w in ("drizzle", "fog", "rain", "snow", "sun")
    }
    assert all(a["stream"] == "seattle-weather" and a["detector"] == "ae" for a in alerts)
    assert all({f["name"] for f in a["top_features"]} <= names for a in alerts)
    # The event time is the row's own date; the wettest day after the training years (55.9 mm of
    # rain on 2015-03-15) alerts, for its precipitation.
    days = pd.read_csv(weather_csv, parse_dates=["date"], date_format="%Y/%m/%d").set_index("date")
    alerted = {pd.Timestamp(a["event_time"]).tz_convert(None): a for a in alerts}
    assert set(alerted) <= set(days.index)
    wettest = days.loc["2014-01-01":].precipitation.idxmax()
    assert wettest == pd.Timestamp("2015-03-15") and wettest in alerted
    assert alerted[wettest]["top_features"][0]["name"] == "precipitation"

    # 6. The dashboard shows the stream beside the built-in ones, with its lag (all scored: 0).
    port = free_port()
    dashboard = spawn_dashboard(settings, port, folder / "dashboard.log", "--from-beginning",
                                "--schema", str(schema_path))  # fmt: skip

    def shown() -> dict | None:
        try:
            return get_json(f"http://127.0.0.1:{port}/api/snapshot")["streams"].get("seattle-weather")
        except OSError:
            return None

    try:
        assert wait_until(lambda: (shown() or {}).get("lag") == 0 and shown()["scored"] == DAYS, 60), (
            shown(), (folder / "dashboard.log").read_text()[-2000:])  # fmt: skip
        view = shown()
        assert view["end_offset"] == DAYS and view["alerts"] == n_alerts
    finally:
        stop(dashboard)


def test_a_worker_started_before_the_replay_creates_its_schema_s_topic(
    kafka_settings: Settings, weather_csv: Path, tmp_path: Path
) -> None:
    """The walk-through starts the worker, then the replay, which creates the topic. A worker that won
    that race exited with "topic ... does not exist" (the walk-through failed in a CI rehearsal): the
    worker of a schema's stream creates the schema's topic if it is missing, as the replay does."""
    settings, folder = (
        kafka_settings,
        tmp_path,
    )  # a topic prefix of this test's own: no topic of the schema yet
    _cli(settings, folder, "data", "infer", weather_csv.name)
    schema = "seattle-weather.schema.toml"
    _cli(settings, folder, "train", "--schema", schema, "--detector", "pca", "--training-rows", "730")
    log_path = folder / "worker.log"
    log = log_path.open("wb")
    command = [sys.executable, "-m", "anomstream", "worker", "--schema", schema]
    worker = subprocess.Popen(
        command, cwd=folder, env=settings.environment(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # The worker alone, no replay yet: it must be consuming the (new) topic, not gone.
        assert wait_until(lambda: "assigned" in log_path.read_text() or worker.poll() is not None, 120)
        assert worker.poll() is None, log_path.read_text()[-2000:]
        replayed = _cli(settings, folder, "replay", weather_csv.name, "--schema", schema)
        assert f"delivered {DAYS:,}, failed 0" in replayed.stderr
        assert wait_until(lambda: sum(len(r["offsets"]) for r in score_records(settings)) >= DAYS, 120)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        log.close()
    assert worker.returncode == 0, log_path.read_text()[-2000:]
