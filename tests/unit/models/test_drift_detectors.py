"""Calibrated score-drift detectors: pinned detections on seeded streams (river-style), calibration
that holds on held-out simulations, a stable stream of a million real validation scores with no alarm,
and checkpoints that resume exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from river import drift as river_drift

from models.drift import DriftConfig, ScoreDrift, calibrate, ert_for_risk, false_alarms, library_defaults
from models.drift.calibration import ADWIN_GRID, page_hinkley_statistic
from models.drift.score_drift import adwin_with_delta
from tests.support import require_data

REFERENCE = np.random.default_rng(42).normal(size=5000)
# 20,000 scores like the reference, then 20,000 shifted by one standard deviation.
STREAM = np.r_[
    np.random.default_rng(1).normal(size=20_000), np.random.default_rng(2).normal(1.0, 1.0, 20_000)
]


@pytest.fixture(scope="module")
def configs() -> dict[str, DriftConfig]:
    return {kind: calibrate(kind, REFERENCE, target_ert=100_000, seed=0)
            for kind in ("adwin", "kswin", "page_hinkley")}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "detected", "change"),
    [("adwin", 20_063, 19_997), ("kswin", 21_440, 19_264), ("page_hinkley", 20_273, 19_997)],
)
def test_detection_index_is_pinned(
    configs: dict[str, DriftConfig], kind: str, detected: int, change: int
) -> None:
    drift = ScoreDrift(configs[kind])
    hits = drift.update_many(STREAM)
    assert hits[0] == detected
    assert drift.last_detections[0].change_index == change
    assert drift.last_detections[0].statistic > drift.last_detections[0].threshold


def test_update_one_by_one_equals_update_many(configs: dict[str, DriftConfig]) -> None:
    one, many = ScoreDrift(configs["adwin"]), ScoreDrift(configs["adwin"])
    one.update_many(STREAM[:19_000])
    many.update_many(STREAM[:19_000])
    hits = [i for i, score in enumerate(STREAM[19_000:21_000]) if one.update(score)]
    assert hits and hits == many.update_many(STREAM[19_000:21_000])
    assert one.state()["detector"] == many.state()["detector"]  # sums differ in the last bits only
    assert one.statistic == pytest.approx(many.statistic)


@pytest.mark.parametrize("kind", ["adwin", "kswin", "page_hinkley"])
def test_checkpoint_resumes_exactly(configs: dict[str, DriftConfig], kind: str) -> None:
    whole = ScoreDrift(configs[kind])
    expected = whole.update_many(STREAM)
    resumed, hits, at = ScoreDrift(configs[kind]), [], 0
    for cut in (7_001, 19_990, 20_100, 33_333, len(STREAM)):
        hits += [at + h for h in resumed.update_many(STREAM[at:cut])]
        saved = json.loads(json.dumps(resumed.state()))  # through JSON, as a checkpoint file
        resumed = ScoreDrift(configs[kind])
        resumed.set_state(saved)
        at = cut
    assert hits == expected
    assert resumed.state()["detector"] == whole.state()["detector"]
    assert resumed.state()["recent"] == whole.state()["recent"]


@pytest.mark.parametrize("kind", ["adwin", "page_hinkley", "kswin"])
def test_calibration_holds_on_held_out_simulations(kind: str) -> None:
    target = 20_000
    config = calibrate(kind, REFERENCE, target_ert=target, seed=0)
    events = 1_000_000 if kind == "kswin" else 2_000_000
    alarms = false_alarms(config, REFERENCE, events, seed=11)  # other draws than the calibration's
    measured = events / max(len(alarms), 1)
    assert measured >= 0.6 * target, (config.params, len(alarms))
    if kind != "kswin":  # KSWIN's statistic is a multiple of 1/30: its next level is much stricter
        assert measured <= 4 * target, (config.params, len(alarms))


def test_library_defaults_cry_wolf_where_calibration_does_not() -> None:
    stable = STREAM[:5_000]
    default_alarms = ScoreDrift(library_defaults("kswin", REFERENCE)).update_many(stable)
    calibrated = ScoreDrift(calibrate("kswin", REFERENCE, target_ert=100_000)).update_many(stable)
    assert len(default_alarms) >= 3 and calibrated == []


@pytest.fixture(scope="module")
def kdd_validation_scores(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Real validation scores: a PCA detector trained on the KDD 10% file's normal connections."""
    from models.registry import Registry
    from models.training import TrainingRequest, train

    data = require_data("kdd99")
    registry = Registry(tmp_path_factory.mktemp("registry"))
    train(registry, data.parent, TrainingRequest("kdd", "pca"))
    model = registry.load("kdd")
    assert model.calibration_scores is not None
    scores = model.calibration_scores
    return scores[~model.threshold.classify(scores)]


@pytest.mark.data
def test_a_million_stable_real_scores_raise_no_alarm(kdd_validation_scores: np.ndarray) -> None:
    # The monitor's default: at most one false alarm per 1,000,000 scores, with a 5% risk of one.
    target = ert_for_risk(1_000_000, 0.05)
    config = calibrate("adwin", kdd_validation_scores, target_ert=target, seed=0)
    # None would mean no simulated run ever alarmed: an estimate of "infinitely quiet", which says
    # nothing about the target (a detector that never fires passes the false-alarm check below too).
    assert config.estimated_ert is not None, "the simulation measured a finite run time between alarms"
    assert target <= config.estimated_ert <= 1.1 * target  # on target: neither trigger-happy nor deaf
    assert false_alarms(config, kdd_validation_scores, 1_000_000, seed=3) == []


def test_adwin_state_before_a_cut_does_not_depend_on_delta() -> None:
    # The calibration follows each run down the delta grid from one pass: check against plain runs.
    rng = np.random.default_rng(5)
    values = np.r_[rng.random(3000), 0.3 + rng.random(3000)].tolist()  # a shift at 3,000

    def first_alarm(detector: river_drift.ADWIN, data: list[float]) -> int:
        for i, x in enumerate(data):
            detector.update(x)
            if detector.drift_detected:
                return i
        return -1

    for high, low in ((ADWIN_GRID[0], ADWIN_GRID[3]), (ADWIN_GRID[2], ADWIN_GRID[9])):
        first = river_drift.ADWIN(delta=float(high))
        for x in values[:1024]:
            first.update(x)
        assert not first.drift_detected
        restored = adwin_with_delta(first._helper.__getstate__(), float(high), float(low), {})
        plain = river_drift.ADWIN(delta=float(low))
        alarm = first_alarm(plain, values)
        assert alarm > 3000 and first_alarm(restored, values[1024:]) + 1024 == alarm


def test_page_hinkley_statistic_matches_river() -> None:
    values = np.r_[np.random.default_rng(6).random(3000), np.random.default_rng(7).random(500) + 0.3]
    params = {"min_instances": 30, "delta": 0.005, "threshold": 1e9, "alpha": 0.9999}
    detector = river_drift.PageHinkley(**params)
    expected = []
    for x in values:
        detector.update(x)
        up = detector._sum_increase - detector._min_increase
        down = detector._max_decrease - detector._sum_decrease
        expected.append(max(up, down) if detector._x_mean.n >= 30 else 0.0)
    np.testing.assert_allclose(page_hinkley_statistic(values, params)[0], expected, rtol=1e-6, atol=1e-6)


def test_config_round_trips_through_json(configs: dict[str, DriftConfig], tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(configs["adwin"].to_dict()))
    again = DriftConfig.from_dict(json.loads(path.read_text()))
    assert again == configs["adwin"]
    assert ScoreDrift(again).update_many(STREAM) == ScoreDrift(configs["adwin"]).update_many(STREAM)


def test_unknown_detector_and_tiny_reference_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="choose one of adwin, kswin, page_hinkley"):
        calibrate("cusum", REFERENCE)
    with pytest.raises(ValueError, match="at least 100 reference scores"):
        calibrate("adwin", REFERENCE[:50])
