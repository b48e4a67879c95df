"""Sensor windows through a real broker: per-sensor order, series-time pacing, and streamed scores
(and the NAB scores made from them) equal to the offline ones."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME

from consumers.worker import ScoringWorker
from models.evaluation.nab.benchmark import anomaly_scores, run_online
from models.registry import Registry
from models.training import TrainingRequest, train
from models.training.data import fit_window_count
from producers.replay import ReplayProducer
from producers.sensor import SeriesPacer, event_end_times, iso_times, sensor_events
from stream.datasets.sensor import SensorSeries, load_bearing, load_nab_series
from stream.kafka import create_topics, read_all
from stream.messages import decode_sensor_window
from stream.settings import Settings
from stream.signals import StopFlag
from stream.windows import per_row_scores, sliding_windows, window_end_rows
from tests.support import make_settings, measure, require_data

pytestmark = pytest.mark.integration

# A real series whose clock repeats 03:00 eleven times (daylight saving): rows must keep file order.
SERIES = "realKnownCause/ec2_request_latency_system_failure.csv"
WINDOW = 16
# The shortest NAB series (1,127 rows), for the detector that learns while it scores.
LEARNING_SERIES = "realTraffic/speed_7578.csv"


@pytest.fixture(scope="module")
def sensor_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = require_data("nab")
    root = tmp_path_factory.mktemp("sensor-registry")
    train(Registry(root), data.parent, TrainingRequest("sensor", "seq_ae", series=SERIES, window=WINDOW))
    return root


def replay_and_score(
    settings: Settings, series: SensorSeries, worker_id: str, skip: int = 0
) -> tuple[list, list[dict]]:
    """Replay ``series`` as windows (after its first ``skip``), score them all with one worker; the
    events and score records."""
    create_topics(settings)
    events = list(sensor_events([series], WINDOW))[skip:]
    replay = ReplayProducer(settings, settings.topic("sensor"), progress=False, stop=StopFlag(False))
    assert replay.run(events).delivered == len(events)
    stop = StopFlag(install=False)
    timer = threading.Timer(120, stop.set)
    timer.start()
    try:
        stats = ScoringWorker(settings, ["sensor"], worker_id=worker_id, stop=stop).run(len(events))
    finally:
        timer.cancel()
    assert stats.events == len(events) and stats.dead_letters == 0
    return events, [orjson.loads(m.value()) for m in read_all(settings, settings.topic("scores"))]


def test_series_streamed_scores_equal_offline(kafka_bootstrap: str, sensor_registry: Path) -> None:
    settings = make_settings(kafka_bootstrap, sensor_registry)
    series = load_nab_series(settings.data_dir, SERIES)
    events, records = replay_and_score(settings, series, "sensor-test")
    assert len(events) == len(series) - WINDOW + 1
    assert {r["partition"] for r in records} and len({r["partition"] for r in records}) == 1  # one key
    rows = sorted(
        (offset, score, label, when)
        for r in records
        for offset, score, label, when in zip(
            r["offsets"], r["scores"], r["labels"], r["event_times"], strict=True
        )
    )
    assert [row[0] for row in rows] == list(range(len(events)))  # every window once, in row order
    streamed = np.array([row[1] for row in rows])

    model = Registry(sensor_registry).load("sensor")
    offline = model.score(sliding_windows(series.values, WINDOW)).scores
    np.testing.assert_allclose(streamed, offline, rtol=1e-5, atol=1e-9)

    # The event time of a window is its end timestamp in the series' clock, repeats included.
    ends = window_end_rows(len(series), WINDOW)
    assert [row[3] for row in rows] == iso_times(series.timestamps[ends])
    assert series.anomaly_rows is not None
    assert [row[2] == "anomaly" for row in rows] == series.anomaly_rows[ends].tolist()

    # NAB's per-row scores made from the stream are the offline benchmark's.
    calibration = model.calibration_scores
    skip = fit_window_count(series.probation, WINDOW)
    live = anomaly_scores(streamed, calibration, len(series), WINDOW, skip)
    expected = anomaly_scores(offline, calibration, len(series), WINDOW, skip)
    np.testing.assert_allclose(live, expected, atol=1e-6)
    measure(
        f"{SERIES}: {len(events)} windows streamed, max |streamed - offline| raw score "
        f"{np.max(np.abs(streamed - offline)):.2e}; rows with NAB score >= 0.5: {int((live >= 0.5).sum())}"
    )
    alerts = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts"))]
    assert len(alerts) == sum(sum(r["is_alert"]) for r in records)
    assert {a["event_time"] for a in alerts} <= set(iso_times(series.timestamps[ends]))


def _learnt_once(state: Path, settings: Settings, records: list[dict], learnt: int, committed: int) -> None:
    """One checkpoint, of the series' input partition (whoever learnt it), outside the registry: the
    training windows, then every committed window once."""
    (checkpoint,) = (state / "state" / "online" / "sensor" / "context" / "v0001").glob("*.json")
    assert checkpoint.name == f"{settings.topic('sensor')}-{records[0]['partition']}.json"
    saved = orjson.loads(checkpoint.read_bytes())
    assert saved["committed_events"] == committed
    assert saved["detector"]["learnt"] == learnt


def test_a_learning_worker_streams_the_offline_nab_scores(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The ``context`` detector learns every committed window in the worker; its scores on the scores
    topic, and so the NAB row scores made from them, are the offline benchmark's (``run_online``)."""
    data = require_data("nab")
    train(Registry(tmp_path), data.parent, TrainingRequest("sensor", "context", series=LEARNING_SERIES,
                                                           window=WINDOW))  # fmt: skip
    # Small batches: the worker scores one while the one before it is still being published.
    settings = make_settings(kafka_bootstrap, tmp_path, batch_size=97, state_dir=tmp_path / "state")
    series = load_nab_series(settings.data_dir, LEARNING_SERIES)
    # The model learnt the series' first windows when it was trained: the stream goes on after them.
    offline = run_online(series, "context", WINDOW)
    assert offline.trained > 0 and not offline.raw[: offline.trained].any()
    events, records = replay_and_score(settings, series, "learning-test", skip=offline.trained)
    rows = sorted((o, s) for r in records for o, s in zip(r["offsets"], r["scores"], strict=True))
    assert [row[0] for row in rows] == list(range(len(events)))  # every window once, in row order
    streamed = np.array([row[1] for row in rows])
    np.testing.assert_allclose(streamed, offline.raw[offline.trained :], rtol=0, atol=1e-9)
    ends = window_end_rows(len(series), WINDOW)
    live = per_row_scores(len(series), ends, np.r_[np.zeros(offline.trained), streamed])
    np.testing.assert_allclose(live, offline.scores, rtol=0, atol=1e-9)
    assert offline.raw.max() >= 0.5  # it does detect something on this series
    assert len(records) >= len(events) // 97
    # What it learnt is checkpointed outside the registry: the training windows, then every committed
    # window once.
    _learnt_once(tmp_path, settings, records, offline.trained + len(events), len(events))
    measure(
        f"{LEARNING_SERIES}: {offline.trained} windows learnt in training, then {len(events)} scored and "
        f"learnt by the worker, in {len(records)} score records; max |streamed - offline| "
        f"{np.max(np.abs(streamed - offline.raw[offline.trained :])):.1e}"
    )


def test_a_learning_workers_partition_moves_to_another_worker_mid_series_and_the_scores_stay_offline(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """What a model learns is state of the input partition (issue 26): worker A scores the first half of
    the series, leaves the group, and worker B (another id, another process's view) is assigned the
    partition and resumes what A learnt from it. Before, the state was keyed by worker id: B started
    from the trained model and its scores left the offline run's."""
    data = require_data("nab")
    train(Registry(tmp_path), data.parent, TrainingRequest("sensor", "context", series=LEARNING_SERIES,
                                                           window=WINDOW))  # fmt: skip
    settings = make_settings(kafka_bootstrap, tmp_path, batch_size=97, state_dir=tmp_path / "state")
    create_topics(settings)
    series = load_nab_series(settings.data_dir, LEARNING_SERIES)
    offline = run_online(series, "context", WINDOW)
    events = list(sensor_events([series], WINDOW))[offline.trained :]
    replay = ReplayProducer(settings, settings.topic("sensor"), progress=False, stop=StopFlag(False))
    assert replay.run(events).delivered == len(events)

    def run(worker_id: str, max_events: int) -> ScoringWorker:
        stop = StopFlag(install=False)
        timer = threading.Timer(120, stop.set)
        timer.start()
        try:
            worker = ScoringWorker(settings, ["sensor"], worker_id=worker_id, stop=stop)
            worker.run(max_events)
        finally:
            timer.cancel()
        return worker

    first = run("replica-a", len(events) // 2)
    assert 0 < first.stats.events < len(events)
    second = run("replica-b", len(events) - first.stats.events)
    assert second.stats.events == len(events) - first.stats.events
    records = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("scores"))]
    rows = sorted((o, s) for r in records for o, s in zip(r["offsets"], r["scores"], strict=True))
    assert [row[0] for row in rows] == list(range(len(events)))  # every window once, in row order
    streamed = np.array([row[1] for row in rows])
    np.testing.assert_allclose(streamed, offline.raw[offline.trained :], rtol=0, atol=1e-9)
    _learnt_once(tmp_path, settings, records, offline.trained + len(events), len(events))
    measure(
        f"{LEARNING_SERIES}: partition moved from worker A ({first.stats.events} windows) to worker B "
        f"({second.stats.events}); max |streamed - offline| "
        f"{np.max(np.abs(streamed - offline.raw[offline.trained :])):.1e}"
    )


def test_bearing_windows_keep_row_order_per_sensor_and_pace_by_series_time(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(kafka_bootstrap, tmp_path)
    create_topics(settings, topics=[settings.topic("sensor")])
    channels = load_bearing(require_data())
    events = list(sensor_events(channels, window=10, stride=3))
    producer = ReplayProducer(settings, settings.topic("sensor"), progress=False, stop=StopFlag(False))
    assert producer.run(events).delivered == len(events)

    by_key: dict[bytes, list] = defaultdict(list)
    for message in read_all(settings, settings.topic("sensor")):
        by_key[message.key()].append(message)
    assert sorted(by_key) == [b"bearing-1", b"bearing-2", b"bearing-3", b"bearing-4"]
    expected = iso_times(channels[0].timestamps[window_end_rows(982, 10, 3)])
    for messages in by_key.values():
        assert len({m.partition() for m in messages}) == 1  # one sensor, one partition ...
        messages.sort(key=lambda m: m.offset())
        ends = [decode_sensor_window(m.value()).end for m in messages]
        assert ends == expected  # ... and its windows in row order

    # Series-time pacing: 8 windows 30 min apart at 10,800x are 7 x 1/6 s = 1.17 s of wall time, and
    # the message timestamps stay the wall clock (2004 timestamps would be deleted by retention).
    paced = make_settings(kafka_bootstrap, tmp_path)
    create_topics(paced, topics=[paced.topic("sensor")])
    pacer = SeriesPacer(event_end_times(channels, 10, 3), speedup=10_800)
    started = time.time()
    replay = ReplayProducer(paced, paced.topic("sensor"), progress=False, stop=StopFlag(False), pacer=pacer)
    stats = replay.run(sensor_events(channels, 10, 3, limit=32))
    assert stats.delivered == 32 and 1.1 < stats.seconds < 4.0
    for message in read_all(paced, paced.topic("sensor")):
        kind, millis = message.timestamp()
        assert kind == TIMESTAMP_CREATE_TIME and abs(millis / 1000 - started) < 60
