"""The retrain core without Kafka: what a candidate may learn from, and the shadow evaluation that
decides its promotion. Seeded toy streams with known drift, floods and attack campaigns."""

from __future__ import annotations

import numpy as np
import pytest

from models.detectors import detector_class
from models.features import WindowEncoder
from models.retraining import (
    INSUFFICIENT,
    PASSED,
    REJECTED,
    LabelledValidation,
    RetrainPolicy,
    cap_repeats,
    retrain_after_change,
    select_normal_looking,
)
from models.retraining.filtering import MOVED
from models.scoring import ScoringModel
from models.thresholds import QuantileThreshold

D = 8


class Toy:
    """A PCA production model on N(0, 1) data; attacks move features 4 and 5 by ``k``."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        train = self.normal(5000)
        self.encoder = WindowEncoder(D).fit(train)
        self.reference = self.encoder.transform(train)
        detector = detector_class("pca")(n_components=3).fit(self.reference)
        calibration = self.encoder.transform(self.normal(2000))
        threshold = QuantileThreshold(0.01).fit(detector.score(calibration))
        manifest = {"training": {"params": detector.get_params(), "data": "toy", "seed": seed}}
        self.production = ScoringModel("kdd", "pca", 1, self.encoder, detector, threshold, manifest)
        attacks = self.encoder.transform(self.attacks(500))
        self.validation = LabelledValidation(
            np.vstack([calibration, attacks]), np.r_[np.zeros(2000, bool), np.ones(500, bool)]
        )

    def normal(self, n: int, shift: float = 0.0) -> np.ndarray:
        X = self.rng.normal(0, 1, (n, D))
        X[:, :3] += shift
        return X

    def attacks(self, n: int, k: float = 8.0) -> np.ndarray:
        X = self.rng.normal(0, 1, (n, D))
        X[:, 4:6] += k
        return X

    def stream(self, *parts: np.ndarray) -> np.ndarray:
        rows = np.vstack(parts)
        return self.encoder.transform(rows[self.rng.permutation(len(rows))])

    def retrain(self, X: np.ndarray, labels: np.ndarray | None = None, **policy: object):
        settings = {"min_events": 2000, "max_events": 50_000, "min_fit_rows": 500, **policy}
        return retrain_after_change(
            self.production,
            X,
            RetrainPolicy(**settings),
            self.validation,
            self.reference,
            labels,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def toy() -> Toy:
    return Toy()


def test_cap_repeats_keeps_first_copies_in_order() -> None:
    X = np.array([[1.0], [2.0], [1.0], [1.0], [3.0], [1.0], [2.0]])
    assert cap_repeats(X, np.arange(7), 2 / 7).tolist() == [0, 1, 2, 4, 6]
    assert cap_repeats(X, np.array([], dtype=np.int64), 0.5).size == 0


def test_a_flood_is_capped_to_a_sliver_of_what_is_kept() -> None:
    rng = np.random.default_rng(1)
    flood = np.repeat(rng.random((1, 4)), 9000, axis=0)
    X = np.vstack([flood, rng.random((1000, 4))])
    selection = select_normal_looking(X, np.zeros(len(X)), np.zeros(len(X), bool), None, 0.01)
    kept_flood = np.sum(selection.rows < 9000)
    assert kept_flood <= 0.01 * selection.counts["kept"] + 1 and selection.counts["kept"] < 1100


def test_alerting_rows_and_the_top_of_the_rest_are_never_kept() -> None:
    X = np.arange(20.0).reshape(-1, 1)
    scores, alerts = np.arange(20.0), np.arange(20) >= 15
    selection = select_normal_looking(X, scores, alerts, 0.8, 0.5)
    assert selection.rows.max() < 15 and len(selection.rows) == 12
    assert selection.counts == {
        "pool": 20,
        "repeats_capped": 0,
        "alerted": 5,
        "above_quantile": 3,
        "kept": 12,
    }
    moved = select_normal_looking(X, scores, np.ones(20, bool), 0.8, 0.5, MOVED, 0.5)
    assert moved.rows.tolist() == list(range(10))


def test_drift_of_normal_traffic_yields_a_candidate_that_passes(toy: Toy) -> None:
    X = toy.stream(toy.normal(9000, shift=1.5), toy.attacks(1000))
    report = toy.retrain(X)
    assert report.outcome == PASSED, report.detail
    shadow = report.shadow
    assert shadow["alert_rate"]["candidate"] <= 0.9 * shadow["alert_rate"]["production"]
    assert shadow["recall"]["candidate"] >= shadow["recall"]["production"] - 0.02
    assert report.selection["mode"] == "alerts" and report.selection["rehearsal_rows"] > 0
    # The candidate keeps the production recipe and encoder, and records where it came from.
    assert report.fitted is not None and report.fitted.encoder is toy.encoder
    assert report.fitted.detector.get_params() == toy.production.detector.get_params()
    entries = report.manifest_entries({"event_id": "e1"})
    assert entries["shadow"]["passed"] and entries["retrain"]["event_id"] == "e1"


def test_a_stable_stream_gives_no_better_candidate(toy: Toy) -> None:
    report = toy.retrain(toy.stream(toy.normal(9000), toy.attacks(1000)))
    assert report.outcome == REJECTED and "alert rate" in report.detail


def test_an_attack_campaign_the_model_misses_is_rejected_by_recall(toy: Toy) -> None:
    campaign = toy.attacks(6000, k=2.5)  # close to normal: mostly missed, so learnt
    report = toy.retrain(toy.stream(toy.normal(4000), campaign))
    assert report.outcome == REJECTED and "recall on validation attacks" in report.detail


def test_a_moved_baseline_is_learnt_from_its_most_normal_half(toy: Toy) -> None:
    report = toy.retrain(toy.stream(toy.normal(9000, shift=3.0), toy.attacks(1000)))
    assert report.selection["mode"] == MOVED, report.selection
    assert report.outcome == PASSED and report.shadow["alert_rate"]["candidate"] < 0.05


def test_a_flood_alone_is_insufficient_data(toy: Toy) -> None:
    flood = np.repeat(toy.attacks(3), 3000, axis=0)
    report = toy.retrain(toy.stream(flood, toy.normal(300)))
    assert report.outcome == INSUFFICIENT and report.fitted is None
    assert "look normal" in report.detail


def test_too_few_post_change_events_is_insufficient_data(toy: Toy) -> None:
    report = toy.retrain(toy.stream(toy.normal(500)))
    assert report.outcome == INSUFFICIENT and "2,000 needed" in report.detail


def test_contamination_is_measured_from_labels_only(toy: Toy) -> None:
    normal, attacks = toy.normal(9000, shift=1.5), toy.attacks(1000, k=4.0)
    rows = np.vstack([normal, attacks])
    labels = np.array(["normal"] * 9000 + ["smurf"] * 1000, dtype=object)
    order = toy.rng.permutation(len(rows))
    report = toy.retrain(toy.encoder.transform(rows[order]), labels[order])
    contamination = report.contamination
    assert contamination["pool_attack_share"] == pytest.approx(0.1)
    # Attacks the production model detects stay out of what is learnt.
    assert contamination["fit_attack_share"] < contamination["pool_attack_share"]


@pytest.mark.parametrize(
    "bad",
    [
        {"holdout_share": 0.0},
        {"keep_quantile": 1.0},
        {"min_events": 10, "max_events": 5},
        {"normal_band": 0.5},
    ],
)
def test_policy_refuses_values_that_make_no_sense(bad: dict) -> None:
    with pytest.raises(ValueError):
        RetrainPolicy(**bad)  # type: ignore[arg-type]


def test_learn_below_admits_low_severity_alerts_only(toy: Toy) -> None:
    # Normal traffic the model raises false alarms on (a mild shift) is learnt only when allowed.
    X = toy.stream(toy.normal(9000, shift=1.5), toy.attacks(1000))
    strict, relaxed = toy.retrain(X), toy.retrain(X, learn_below=2.0)
    assert relaxed.selection["fit"]["kept"] > strict.selection["fit"]["kept"]
    assert relaxed.selection["fit"]["alerted"] < strict.selection["fit"]["alerted"]
    with pytest.raises(ValueError, match="learn_below"):
        RetrainPolicy(learn_below=0.5)
