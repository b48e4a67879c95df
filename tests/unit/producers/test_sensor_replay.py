"""Sensor and ECG replay events, series-time pacing and the NAB score mapping (no broker)."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluation.nab.likelihood import AnomalyLikelihood, likelihood_scores
from producers.ecg import ecg_events, load_ecg_replay
from producers.sensor import SeriesPacer, event_count, event_end_times, sensor_events
from stream.datasets.sensor import SensorSeries, load_bearing, load_nab_series
from stream.datasets.splits import ecg_split
from stream.messages import decode_ecg_beat, decode_sensor_window
from stream.signals import StopFlag
from stream.windows import sliding_windows, window_end_rows
from tests.support import FakeClock, require_data


def toy_series(sensor_id: str = "toy", n: int = 12, offset: float = 0.0) -> SensorSeries:
    t = np.arange(n).astype("timedelta64[m]") * 5 + np.datetime64("2014-01-01T00:00", "ns")
    flags = np.zeros(n, bool)
    flags[6:8] = True
    return SensorSeries(sensor_id, sensor_id, t.astype("datetime64[ns]"), np.arange(n) + offset, flags)


def test_sensor_events_carry_windows_their_end_time_and_label() -> None:
    series = toy_series()
    events = list(sensor_events([series], window=4, stride=2))
    ends = window_end_rows(12, 4, 2)  # 3, 5, 7, 9, 11
    assert len(events) == event_count([series], 4, 2) == len(ends)
    records = [decode_sensor_window(e.value) for e in events]
    assert all(e.key == b"toy" for e in events)
    for record, end, values in zip(records, ends, sliding_windows(series.values, 4, 2), strict=True):
        assert record.end == str(series.timestamps[end].astype("datetime64[s]")) + "Z"
        assert record.start == str(series.timestamps[end - 3].astype("datetime64[s]")) + "Z"
        assert record.values == values.tolist()
    # The label is the window's LAST row's: rows 6 and 7 are anomalous, so only the window ending on 7.
    assert [e.label for e in events] == ["normal", "normal", "anomaly", "normal", "normal"]
    assert [e.label for e in sensor_events([series], 4, limit=3, loop=True)] == ["normal"] * 3


def test_interleaved_sensors_each_keep_row_order() -> None:
    a, b = toy_series("a"), toy_series("b", offset=100.0)
    events = list(sensor_events([a, b], window=3))
    assert [e.key for e in events[:4]] == [b"a", b"b", b"a", b"b"]
    for key, series in ((b"a", a), (b"b", b)):
        mine = [decode_sensor_window(e.value) for e in events if e.key == key]
        assert [r.values[-1] for r in mine] == series.values[2:].tolist()  # rows 2..11 in order
    looped = list(sensor_events([a, b], window=3, loop=True, limit=2 * len(events) + 1))
    assert [e.value for e in looped[len(events) : 2 * len(events)]] == [e.value for e in events]


@pytest.mark.data
def test_bearing_channels_share_the_clock() -> None:
    require_data("bearing")
    channels = load_bearing(require_data())
    assert [c.sensor_id for c in channels] == ["bearing-1", "bearing-2", "bearing-3", "bearing-4"]
    ends = event_end_times(channels, window=10)
    assert len(ends) == event_count(channels, 10) == 4 * (982 - 9)
    assert np.all(ends[0:4] == ends[0]) and np.all(np.diff(ends[::4]) > np.timedelta64(0))
    assert all(e.label is None for e in sensor_events(channels, 10, limit=8))  # unlabelled


@pytest.mark.data
def test_series_pacer_never_waits_a_negative_time_nor_reorders() -> None:
    require_data("nab")
    series = load_nab_series(require_data(), "machine_temperature_system_failure")
    ends = event_end_times([series], window=8)
    steps = np.diff(ends.astype(np.int64))
    assert (steps < 0).any(), "the series steps back an hour (row 10151)"
    pacer = SeriesPacer(ends, speedup=300.0)
    gaps = np.diff(pacer.due)
    assert gaps.min() >= 0 and gaps[steps < 0].max() == 0  # the step back costs no time, never less
    assert gaps.max() == pytest.approx(1.0)  # 5 min / 300
    assert np.diff(SeriesPacer(ends, speedup=1.0, max_gap=0.5).due).max() == 0.5  # long waits capped
    assert pacer.due_at(len(ends)) > pacer.due[-1]  # a loop's second pass comes after the first


def test_series_pacer_sleeps_by_series_time() -> None:
    t = np.array(["2014-01-01T00:00", "2014-01-01T00:00:30", "2014-01-01T00:00"], "datetime64[ns]")
    clock, stop = FakeClock(), StopFlag(install=False)
    pacer = SeriesPacer(t, speedup=300.0, clock=clock)
    clock.advance(5.0)  # the pacer's clock starts with the first event, not when it was built
    pacer.wait(1, stop)  # the first event went out: event 1 is due 30 s / 300 = 0.1 s later
    pacer.wait(2, stop)  # event 2 steps back in time: due at once
    assert clock.sleeps == [pytest.approx(0.1)]
    with pytest.raises(ValueError):
        SeriesPacer(t, speedup=0)


@pytest.mark.data
def test_ecg_events_are_valid_beats_with_exact_values() -> None:
    require_data("ecg5000")
    beats = load_ecg_replay(require_data(), holdout=True)
    events = list(ecg_events(beats, limit=50))
    assert len(events) == 50
    for event, values, row in zip(events, beats.values, beats.rows, strict=False):
        beat = decode_ecg_beat(event.value)
        assert event.key == beat.record.encode() == f"ecg-{row:05d}".encode()
        assert np.array_equal(np.array(beat.values), values)  # bit-exact through JSON
        assert event.label in ("normal", "abnormal")
    labels = np.array([e.label for e in ecg_events(beats)])
    assert (labels == "normal").sum() == (beats.labels == 1).sum()


@pytest.mark.data
def test_ecg_holdout_never_replays_a_training_beat() -> None:
    require_data("ecg5000")
    beats = load_ecg_replay(require_data(), holdout=True, seed=0)
    full = load_ecg_replay(require_data())
    split = ecg_split(full.labels, 0)
    training = np.r_[split.fit, split.early_stop, split.calibration, split.anomaly_validation]
    assert np.array_equal(beats.rows, split.test) and not np.isin(beats.rows, training).any()
    train_file = load_ecg_replay(require_data(), "train")
    classes = {"normal", "r-on-t-pvc", "pvc", "sp-eb", "unclassified"}
    assert {e.label for e in ecg_events(train_file)} == classes


def test_likelihood_fires_once_per_excursion_and_ignores_scale() -> None:
    rng = np.random.default_rng(3)
    quiet = np.abs(rng.normal(1.0, 0.1, 600))
    raw = np.r_[quiet, np.full(30, 5.0), quiet[:100]]
    scores = likelihood_scores(raw / 5.0, skip=50)
    assert scores[:600].max() < 0.5  # quiet part: never red
    red = np.flatnonzero(scores >= 0.5)
    assert red.tolist() == [600]  # the jump fires on its first row only; the rest is damped
    # The likelihood compares each series with itself: a raw score on another scale maps the same.
    np.testing.assert_allclose(likelihood_scores(raw * 1000 / 5000.0, skip=50), scores)
    tracker = AnomalyLikelihood(skip=10, estimation=20)
    assert [tracker.update(0.2) for _ in range(30)] == [0.5] * 30  # no estimate before skip + estimation
