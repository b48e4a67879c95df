"""Drift scenarios of ``anomstream replay``: the change lands where asked, and every event says in its
``drift.phase`` header which side of it it is on."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from producers.drift import (
    PHASE_HEADER,
    DriftSpec,
    drifted_series,
    kdd_drift_events,
    load_kdd_drift_sources,
    sensor_drift_events,
)
from stream.datasets.sensor import SensorSeries
from stream.datasets.synthetic import synthetic_kdd
from tests.support import require_data


def _phase(event) -> str:  # noqa: ANN001
    return dict(event.headers)[PHASE_HEADER].decode()


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = synthetic_kdd(4000, attack_fraction=0.3, seed=3)
    before = frame[frame["label"] == "normal"].iloc[:1500]
    return before, frame.iloc[2000:3000]


def test_kdd_abrupt_switches_source_and_phase_at_the_change() -> None:
    before, after = _frames()
    events = kdd_drift_events(before, after, DriftSpec("abrupt", 1000))
    assert len(events) == 1000 + len(after)
    assert {_phase(e) for e in events[:1000]} == {"before"} and {_phase(e) for e in events[1000:]} == {
        "after"
    }
    assert all(e.key.startswith(b"kddcup.data_10_percent-") and e.label == "normal" for e in events[:1000])
    assert [e.key for e in events[1000:]] == [f"corrected-{row:07d}".encode() for row in after.index]
    assert {e.label for e in events[1000:]} == set(after["label"])  # the attack mix comes with it
    first = orjson.loads(events[1000].value)
    assert first["service"] == after.iloc[0]["service"] and "label" not in first


def test_kdd_gradual_mixture_grows_over_the_span() -> None:
    before, after = _frames()
    spec = DriftSpec("gradual", 200, span=800, seed=1)
    events = kdd_drift_events(before, after, spec, limit=1500)
    assert len(events) == 1500
    from_new = np.array([e.key.startswith(b"corrected-") for e in events])
    assert not from_new[:200].any() and from_new[1000:].all()
    assert from_new[200:400].mean() < 0.3 < 0.7 < from_new[800:1000].mean()
    assert (
        _phase(events[199]) == "before" and _phase(events[599]) == "0.500" and _phase(events[1000]) == "after"
    )
    assert kdd_drift_events(before, after, spec, limit=1500) == events  # seeded


def test_kdd_drift_refuses_a_change_past_the_normal_traffic() -> None:
    before, after = _frames()
    with pytest.raises(ValueError, match="normal connections"):
        kdd_drift_events(before, after, DriftSpec("abrupt", len(before) + 1))
    with pytest.raises(ValueError, match="--drift-span"):
        kdd_drift_events(before, after, DriftSpec("gradual", 10))
    with pytest.raises(ValueError, match="use one of abrupt, gradual"):
        DriftSpec("level", 10).check("kdd")


@pytest.mark.data
def test_kdd_abrupt_on_the_real_files_uses_normal_10_percent_then_corrected() -> None:
    require_data("kdd99")
    from tests.support import data_root

    before, after, _ = load_kdd_drift_sources(data_root())
    assert len(before) == 97_278 and (before["label"] == "normal").all() and len(after) == 311_029
    events = kdd_drift_events(before, after, DriftSpec("abrupt", 5000), limit=6000)
    assert [_phase(e) for e in events].count("before") == 5000


@pytest.mark.data
def test_kdd_the_designed_change_is_the_only_one_before_it_the_traffic_is_stationary() -> None:
    """In file order the 10% file's normal traffic changes by itself (its service mix moves 9 points
    between quarters of the first 30,000): a drift monitor then fired before the designed change and
    its retrain learnt a mixture. The before phase is a seeded random order of those rows."""
    require_data("kdd99")
    from collections import Counter

    from tests.support import data_root

    before, after, _ = load_kdd_drift_sources(data_root())
    events = kdd_drift_events(before, after, DriftSpec("abrupt", 30_000), limit=30_000)
    services = [orjson.loads(e.value)["service"] for e in events]
    quarters = [Counter(services[i : i + 7500]) for i in range(0, 30_000, 7500)]
    shift = max(
        0.5 * sum(abs(q[k] - quarters[0][k]) for k in set(q) | set(quarters[0])) / 7500 for q in quarters[1:]
    )
    assert shift < 0.04, f"the service mix moves {shift:.1%} between quarters before the change"
    assert kdd_drift_events(before, after, DriftSpec("abrupt", 30_000), limit=30_000) == events  # seeded


def _series(n: int = 400, seed: int = 0) -> SensorSeries:
    rng = np.random.default_rng(seed)
    times = np.arange(n).astype("datetime64[m]").astype("datetime64[ns]")
    return SensorSeries("toy", "toy", times, 10 + rng.normal(0, 1, n), None)


def test_sensor_level_shift_moves_rows_from_the_change_window_on() -> None:
    series = _series()
    (shifted,) = drifted_series([series], DriftSpec("level", 100), window=16)
    change_row = 100 + 16 - 1  # the last row of window 100
    assert np.array_equal(shifted.values[:change_row], series.values[:change_row])
    std = np.std(series.values[:change_row])
    np.testing.assert_allclose(shifted.values[change_row:] - series.values[change_row:], 3 * std)
    events = list(sensor_drift_events([series], DriftSpec("level", 100), window=16))
    assert [_phase(e) for e in events[99:101]] == ["before", "after"]
    window_100 = orjson.loads(events[100].value)["values"]
    assert (
        window_100[-1] == pytest.approx(shifted.values[change_row])
        and window_100[-2] == series.values[change_row - 1]
    )


def test_sensor_variance_shift_scales_deviations_and_can_ramp() -> None:
    series = _series()
    spec = DriftSpec("variance", 100, span=100, magnitude=4.0)
    (shifted,) = drifted_series([series], spec, window=16)
    tail_std = np.std(shifted.values[300:] - np.mean(series.values[:115]))
    assert tail_std == pytest.approx(4 * np.std(series.values[300:] - np.mean(series.values[:115])), rel=1e-6)
    phases = [_phase(e) for e in sensor_drift_events([series], spec, window=16)]
    assert (
        phases[99] == "before"
        and phases[100] == "0.010"
        and phases[149] == "0.500"
        and phases[199] == "after"
    )


def test_interleaved_channels_change_together() -> None:
    channels = [_series(seed=1), _series(seed=2)]
    events = list(sensor_drift_events(channels, DriftSpec("level", 100), window=16))
    phases = [_phase(e) for e in events]
    assert phases[98:102] == ["before", "before", "after", "after"]  # event 100 = window 50 of both


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "kdd", "--drift", "sideways"], "use one of abrupt, gradual"),
        (["replay", "kdd", "--drift", "abrupt", "--loop"], "drop --loop"),
        (["replay", "kdd", "--drift", "abrupt", "--file", "train"], "drop --file"),
        (["replay", "kdd", "--drift", "gradual"], "--drift-span"),
        (["replay", "sensor", "--series", "nyc_taxi", "--drift", "abrupt"], "use one of level, variance"),
        (["replay", "kdd", "--drift", "abrupt", "--drift-at", "-5"], "must not be negative"),
    ],
)
def test_bad_drift_options_are_one_clear_line(args: list[str], message: str, capsys) -> None:  # noqa: ANN001
    from anomstream.cli import main

    with pytest.raises(SystemExit) as exited:
        main(args)
    output = "".join(capsys.readouterr())
    assert exited.value.code == 1 and message in output and "Traceback" not in output, output


@pytest.mark.data
def test_kdd_shift_is_normal_10_percent_then_nsl_normal_traffic_repeated_as_needed() -> None:
    require_data("kdd99")
    require_data("nslkdd")
    from tests.support import data_root

    before, after, source = load_kdd_drift_sources(data_root(), "shift")
    assert source == "nsl-train" and len(after) == 13_449 and (after["label"] == "normal").all()
    events = kdd_drift_events(
        before, after, DriftSpec("shift", 1000), limit=1000 + 2 * 13_449 + 10, source=source
    )
    phases = [_phase(e) for e in events]
    assert phases.count("before") == 1000 and phases[1000:] == ["after"] * (len(events) - 1000)
    after_keys = [e.key for e in events[1000:]]
    assert len(set(after_keys)) == len(after_keys), "every pass has keys of its own"
    assert after_keys[0].startswith(b"nsl-train-") and after_keys[13_449].startswith(b"nsl-train-p1-")
    assert events[1000].value == events[1000 + 13_449].value  # the second pass repeats the first
    assert {e.label for e in events} == {"normal"}


@pytest.mark.data
def test_kdd_shift_attacks_mixes_the_nsl_attacks_in_at_the_files_own_share() -> None:
    require_data("kdd99")
    require_data("nslkdd")
    from tests.support import data_root

    before, after, source = load_kdd_drift_sources(data_root(), "shift-attacks")
    assert len(after) == 25_192
    events = kdd_drift_events(
        before, after, DriftSpec("shift-attacks", 500), limit=500 + 25_192, source=source
    )
    labels = [e.label for e in events[500:]]
    share = sum(label != "normal" for label in labels) / len(labels)
    assert abs(share - 11_743 / 25_192) < 1e-9
    assert all(e.label == "normal" for e in events[:500])
