"""Data of one's own through a real broker: a dataset schema, a model trained on the file it describes,
and a worker scoring a topic the user's own producers fill (``anomstream worker --schema S --topic T``).

The producers here are plain confluent-kafka producers, as a user's would be: their own field order,
extra fields, times in the schema's format or in RFC 3339, and a few records that cannot be scored.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import msgspec
import numpy as np
import orjson
import pandas as pd
import pytest
from confluent_kafka import Producer

from consumers.drift.monitor import DriftMonitor
from consumers.model_updates import promote
from consumers.worker import ScoringWorker, schema_streams
from models.features import RecordsRaw
from models.registry import Registry
from models.training import TrainingRequest, train
from producers.table import ReplayOptions, replay_table
from stream.datasets import find_kdd_file, read_kdd
from stream.datasets.schema import DatasetSchema, load_schema, to_toml
from stream.datasets.table import read_table
from stream.kafka import create_topics, read_all
from stream.messages import SensorWindow
from stream.settings import Settings
from stream.signals import StopFlag
from stream.windows import sliding_windows
from tests.support import (
    data_root,
    make_settings,
    measure,
    require_data,
    schema_validator,
    score_records,
    wait_until,
)

pytestmark = pytest.mark.integration

NUMERIC = ["duration", "src_bytes", "dst_bytes", "count", "srv_count", "same_srv_rate", "dst_host_count"]
CATEGORICAL = ["protocol_type", "service", "flag"]
TIME_FORMAT = "%d/%m/%Y %H:%M:%S"
START = pd.Timestamp("2024-03-01 08:00:00", tz="UTC")


def _firewall_log(frame: pd.DataFrame, first_second: int) -> pd.DataFrame:
    """Real KDD connections as a firewall's log: some of their columns, one connection per second."""
    log = frame[[*NUMERIC, *CATEGORICAL, "label"]].copy()
    log.insert(0, "seen_at", START + pd.to_timedelta(np.arange(len(log)) + first_second, unit="s"))
    return log


@pytest.fixture(scope="module")
def firewall(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The schema file of a firewall log and a registry with a model trained on its first 10,000 rows."""
    folder = tmp_path_factory.mktemp("firewall")
    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "train"), limit=12_000)
    log = _firewall_log(frame, 0)
    log["seen_at"] = log["seen_at"].dt.strftime(TIME_FORMAT)
    log.to_csv(folder / "firewall.csv", index=False)
    schema = DatasetSchema.from_dict({
        "name": "firewall", "description": "connections seen by the office firewall",
        "source": {"path": "firewall.csv"}, "timestamp": {"column": "seen_at", "format": TIME_FORMAT},
        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL,
                     "log": ["duration", "src_bytes", "dst_bytes", "count", "srv_count", "dst_host_count"]},
        "label": {"column": "label", "normal": ["normal"]},
    })  # fmt: skip
    (folder / "firewall.toml").write_text(to_toml(schema))
    registry = folder / "registry"
    request = TrainingRequest.for_schema(
        load_schema(folder / "firewall.toml"), detector="pca", training_rows=10_000
    )
    train(Registry(registry), data_root(), request)
    return folder / "firewall.toml", registry


def _produce(settings: Settings, topic: str, messages: list[tuple[bytes, bytes, str | None]]) -> list[tuple]:
    """Publish (key, value, label) with a plain producer; the (partition, offset) of each, in order."""
    placed: dict[int, tuple[int, int]] = {}
    producer = Producer({"bootstrap.servers": settings.bootstrap})
    for i, (key, value, label) in enumerate(messages):

        def delivered(error, message, i=i) -> None:  # noqa: ANN001
            assert error is None, error
            placed[i] = (message.partition(), message.offset())

        headers = [("label", label.encode())] if label is not None else None
        producer.produce(topic, value, key, headers=headers, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0
    return [placed[i] for i in range(len(messages))]


def _dead_letters(settings: Settings) -> dict[tuple[str, int, int], tuple[str, str]]:
    out = {}
    for message in read_all(settings, settings.topic("dead_letter")):
        h = {k: v.decode() for k, v in message.headers()}
        where = (h["source.topic"], int(h["source.partition"]), int(h["source.offset"]))
        out[where] = (h["error.type"], h["error.message"])
    return out


def _cli(settings: Settings, log: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "anomstream", *args]
    env = settings.environment() | {"COLUMNS": "200"}
    return subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_a_worker_scores_an_existing_topic_its_producers_fill(
    kafka_bootstrap: str, firewall, tmp_path: Path
) -> None:
    schema_path, registry = firewall
    settings = make_settings(kafka_bootstrap, registry)
    topic = f"{settings.topic_prefix}acme.firewall-events"  # the user's own topic, not anomstream's
    create_topics(settings)
    create_topics(settings, topics=[topic])

    # The future of the log: the test file's connections, as the firewall's producers publish them.
    corrected = read_kdd(find_kdd_file(require_data("kdd99").parent, "test"), limit=600)
    log = _firewall_log(corrected, 20_000)
    messages, expected_time = [], []
    for i, row in enumerate(log.to_dict("records")):
        when = row.pop("seen_at")
        label = row.pop("label")
        # Their own field order and extra fields; times in the schema's format or in RFC 3339 with an offset.
        body = {"site": "hq", **dict(reversed(list(row.items()))), "rule": i % 7}
        body["seen_at"] = when.strftime(TIME_FORMAT) if i % 2 else when.tz_convert("Europe/Paris").isoformat()
        if i == 5:
            body["protocol_type"] = 6  # a number where a category belongs: read as the text "6"
        messages.append((f"conn-{i}".encode(), json.dumps(body).encode(), label))
        expected_time.append(when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    good = dict(json.loads(messages[0][1]))
    bad = {
        "missing": (json.dumps({k: v for k, v in good.items() if k != "service"}).encode(), "`service`"),
        "text number": (json.dumps(good | {"src_bytes": "105"}).encode(), "$.src_bytes"),
        "bad time": (json.dumps(good | {"seen_at": "soon"}).encode(), "seen_at: 'soon' is not a time"),
        "not json": (b'{"duration": 0, oops', ""),
    }
    for name, (value, _) in bad.items():
        messages.append((f"bad-{name}".encode(), value, None))
    placed = _produce(settings, topic, messages)
    n_good = len(log)

    log_path = tmp_path / "worker.log"
    worker = _cli(
        settings, log_path, "worker", "--schema", str(schema_path), "--topic", topic, "--worker-id", "own"
    )
    try:
        scored = lambda: sum(len(r["offsets"]) for r in score_records(settings))  # noqa: E731
        done = wait_until(lambda: scored() >= n_good and len(_dead_letters(settings)) >= len(bad), 180)
        assert done, log_path.read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(60)
    assert code == 0, log_path.read_text()[-3000:]

    records = score_records(settings)
    counts = Counter((r["topic"], r["partition"], o) for r in records for o in r["offsets"])
    good_places = {(topic, *placed[i]) for i in range(n_good)}
    assert set(counts) == good_places and set(counts.values()) == {1}, "every good record scored once"
    assert {r["stream"] for r in records} == {"firewall"} and {r["detector"] for r in records} == {"pca"}
    by_place = {
        (r["topic"], r["partition"], o): (t, label)
        for r in records
        for o, t, label in zip(r["offsets"], r["event_times"], r["labels"], strict=True)
    }
    for i in range(n_good):
        assert by_place[(topic, *placed[i])] == (expected_time[i], messages[i][2]), i

    feature_names = set(Registry(registry).load("firewall").feature_names)
    alerts = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts"))]
    validator = schema_validator("alert")
    assert alerts, "the test file's attacks raise alerts"
    for alert in alerts:
        validator.validate(alert)
        assert alert["stream"] == "firewall" and alert["source"]["topic"] == topic
        names = [f["name"] for f in alert["top_features"]]
        assert names and set(names) <= feature_names, names
    assert {a["event_id"] for a in alerts} <= {key.decode() for key, _, _ in messages[:n_good]}

    dead = _dead_letters(settings)
    for j, (name, (_, reason)) in enumerate(bad.items()):
        error_type, message = dead[(topic, *placed[n_good + j])]
        assert error_type == ("InvalidJSON" if name == "not json" else "ValidationError"), name
        assert reason in message, (name, message)
    assert len(dead) == len(bad)

    # The drift monitor watches the stream too, and its feature test reads the user's topic back.
    _watch_drift(settings, topic, n_good)


def _watch_drift(settings: Settings, topic: str, n_scores: int) -> None:
    drift = settings.drift.model_copy(update={"feature_window": 100, "feature_sample_every": 1})
    stop = StopFlag(install=False)
    monitor = DriftMonitor(settings.model_copy(update={"drift": drift}), ["firewall"], stop=stop,
                           instance_id="own-data")  # fmt: skip
    thread = threading.Thread(target=monitor.run, daemon=True)
    thread.start()
    try:
        assert monitor.features is not None
        tested = lambda: monitor.features.tests_run.get("firewall", 0) > 0  # noqa: E731
        assert wait_until(lambda: monitor.stats.scores >= n_scores and tested(), 120), monitor.stats
    finally:
        stop.set()
        thread.join(60)
    assert monitor.features.failed is None and monitor.input_topics == {"firewall": topic}
    assert all(event.stream == "firewall" and event.change.topic == topic for event in monitor.stats.events)
    measure(f"own data: the drift monitor watched {monitor.stats.scores} firewall scores, ran "
            f"{monitor.features.tests_run['firewall']} feature tests on its topic, published "
            f"{len(monitor.stats.events)} drift events")  # fmt: skip


@pytest.fixture(scope="module")
def bearings(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetSchema, Path]:
    """The bearing CSV as one multivariate series (4 channels), a model trained on its first 400 rows."""
    schema = load_schema("bearing").to_dict()
    schema |= {"name": "bearings", "description": "4 bearings, one window of all of them"}
    schema.pop("topic")
    schema["series"]["multivariate"] = True
    schema["source"]["path"] = str(require_data("bearing", "Averaged_BearingTest_Dataset.csv"))
    loaded = DatasetSchema.from_dict(schema)
    registry = tmp_path_factory.mktemp("bearings-registry")
    train(
        Registry(registry), data_root(), TrainingRequest.for_schema(loaded, detector="pca", training_rows=400)
    )
    return loaded, registry


def test_a_multivariate_series_is_scored_window_by_window(kafka_bootstrap: str, bearings) -> None:
    schema, registry = bearings
    settings = make_settings(kafka_bootstrap, registry)
    schema_file = registry / "bearings.toml"
    schema_file.write_text(to_toml(schema))
    created = subprocess.run(
        [sys.executable, "-m", "anomstream", "topics", "create", "--schema", str(schema_file)],
        env=settings.environment() | {"COLUMNS": "200"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    topic = schema.input_topic(settings)
    assert created.returncode == 0 and f"{topic}: created" in created.stderr, created.stderr

    frame = pd.read_csv(schema.source.path)
    channels = ["Bearing 1", "Bearing 2", "Bearing 3", "Bearing 4"]
    values = frame[channels].to_numpy()
    times = pd.to_datetime(frame.iloc[:, 0]).dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    windows = sliding_windows(values[400:], 16)  # the future: after the training rows
    ends = np.arange(len(windows)) + 400 + 15
    sent = [
        SensorWindow("bearings", times[end - 15], times[end], window.tolist(), 4)
        for window, end in zip(windows, ends, strict=True)
    ]
    messages = [(b"bearings", msgspec.json.encode(window), None) for window in sent]
    one_channel = SensorWindow("b1", times[0], times[15], [0.1] * 64)  # as many values, read as 1 channel
    messages.append((b"bearings", msgspec.json.encode(one_channel), None))
    placed = _produce(settings, topic, messages)

    loaded, topics = schema_streams(settings, [schema_file])
    assert topics == {"bearings": topic}
    stop = StopFlag(install=False)
    timer = threading.Timer(120, stop.set)
    timer.start()
    try:
        stats = ScoringWorker(settings, ["bearings"], worker_id="bearings", stop=stop, topics=topics).run(
            max_events=len(messages)
        )
    finally:
        timer.cancel()
    assert (stats.events, stats.dead_letters) == (len(windows), 1)

    records = score_records(settings)
    scores = {
        (r["partition"], o): (s, t)
        for r in records
        for o, s, t in zip(r["offsets"], r["scores"], r["event_times"], strict=True)
    }
    assert len(scores) == len(windows) and {r["stream"] for r in records} == {"bearings"}
    model = Registry(registry).load("bearings")
    offline = model.score(windows).scores
    streamed = np.array([scores[placed[i]][0] for i in range(len(windows))])
    np.testing.assert_allclose(streamed, offline, rtol=1e-5, atol=1e-9)
    assert [scores[placed[i]][1] for i in range(len(windows))] == [times[end] for end in ends]

    alerts = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts"))]
    assert alerts, "the run to failure alerts"
    for alert in alerts:
        assert alert["stream"] == "bearings"
        assert {f["name"].split("@")[0] for f in alert["top_features"]} <= set(channels)
    ((error_type, error),) = _dead_letters(settings).values()
    assert error_type == "ValidationError" and error == "channels: window has 1 channels, the model expects 4"


def test_a_schema_stream_follows_its_promoted_model(kafka_bootstrap: str, bearings, tmp_path: Path) -> None:
    """A promotion on model-updates reloads a schema stream's model (and its decoder) between batches."""
    schema, trained = bearings
    registry = tmp_path / "registry"
    shutil.copytree(trained, registry)
    settings = make_settings(kafka_bootstrap, registry)
    create_topics(settings)
    topic = schema.input_topic(settings)
    create_topics(settings, topics=[topic])
    values = pd.read_csv(schema.source.path).iloc[:, 1:].to_numpy()
    windows = [SensorWindow("bearings", "2004-02-12T10:52:39Z", "2004-02-12T11:02:39Z", w.tolist(), 4)
               for w in sliding_windows(values[400:700], 16)]  # fmt: skip
    messages = [(b"bearings", msgspec.json.encode(window), None) for window in windows]
    half = len(messages) // 2

    def scored() -> int:
        return sum(len(r["offsets"]) for r in score_records(settings))

    stop = StopFlag(install=False)
    worker = ScoringWorker(
        settings, ["bearings"], worker_id="reloader", stop=stop, topics={"bearings": topic}
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        _produce(settings, topic, messages[:half])
        assert wait_until(lambda: scored() == half, 60)
        request = TrainingRequest.for_schema(schema, detector="pca", training_rows=300)
        version = train(Registry(registry), data_root(), request, promote=False).version
        assert promote(settings, "bearings", "pca", version).announced
        assert wait_until(lambda: worker.models["bearings"].version == version, 60)
        _produce(settings, topic, messages[half:])
        assert wait_until(lambda: scored() == len(messages), 60)
    finally:
        stop.set()
        thread.join(30)
    records = score_records(settings)
    assert Counter(o for r in records for o in r["offsets"]).most_common(1)[0][1] == 1
    versions = [r["model_version"] for r in sorted(records, key=lambda r: min(r["offsets"]))]
    assert versions[0] == 1 and versions[-1] == version == 2


def _replay_and_score(settings: Settings, schema: DatasetSchema) -> tuple[list[dict], int]:
    """``anomstream replay FILE --schema S`` then ``anomstream worker --schema S``, in process: the score
    records, and how many events the replay sent."""
    create_topics(settings)
    sent = replay_table(settings, schema, None, ReplayOptions()).delivered
    stop = StopFlag(install=False)
    timer = threading.Timer(120, stop.set)
    timer.start()
    try:
        topics = {schema.name: schema.input_topic(settings)}
        worker = ScoringWorker(settings, [schema.name], worker_id="replayed", stop=stop, topics=topics)
        stats = worker.run(max_events=sent)
    finally:
        timer.cancel()
    assert (stats.events, stats.dead_letters) == (sent, 0)
    return score_records(settings), sent


def test_a_file_replayed_through_its_schema_is_scored_as_offline(kafka_bootstrap: str, firewall) -> None:
    schema_path, registry = firewall
    settings = make_settings(kafka_bootstrap, registry)
    schema = load_schema(schema_path)
    records, sent = _replay_and_score(settings, schema)
    table = read_table(schema)
    assert sent == len(table) == 12_000
    model = Registry(registry).load("firewall")
    offline = model.score(RecordsRaw(table.numeric(), table.symbols())).scores
    streamed = np.array([s for r in records for s in r["scores"]])
    np.testing.assert_allclose(np.sort(streamed), np.sort(offline), rtol=1e-5, atol=1e-9)
    assert table.timestamps is not None
    times = sorted(t for r in records for t in r["event_times"])
    assert times == sorted(np.datetime_as_string(table.timestamps, unit="s", timezone="UTC").tolist())
    assert Counter(label for r in records for label in r["labels"]) == Counter(table.header_labels())


def test_a_multivariate_file_replayed_through_its_schema_is_scored_as_offline(
    kafka_bootstrap: str, bearings
) -> None:
    schema, registry = bearings
    settings = make_settings(kafka_bootstrap, registry)
    records, sent = _replay_and_score(settings, schema)
    values = pd.read_csv(schema.source.path).iloc[:, 1:].to_numpy()
    windows = sliding_windows(values, 16)
    assert sent == len(windows)
    offline = Registry(registry).load("bearings").score(windows).scores
    by_offset = sorted((o, s) for r in records for o, s in zip(r["offsets"], r["scores"], strict=True))
    assert [o for o, _ in by_offset] == list(range(sent)), "one sensor key: one partition, in row order"
    np.testing.assert_allclose([s for _, s in by_offset], offline, rtol=1e-5, atol=1e-9)
