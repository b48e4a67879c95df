"""The retrain core without Kafka: the evidence, what a candidate learns, and the shadow evaluation
that decides its promotion. Seeded toy streams with known drift, floods, bursts and attack campaigns."""

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
    select_learnt,
    weigh,
)
from models.retraining.evidence import BURSTS, MIXED, NEW_NORMAL, campaign_rows
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
        self.production = ScoringModel(
            "kdd", "pca", 1, self.encoder, detector, threshold, manifest, detector.score(calibration)
        )
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

    def retrain(self, X: np.ndarray, labels: np.ndarray | None = None, **kwargs: object):
        verdicts = {k: kwargs.pop(k) for k in ("benign", "malicious", "confirmed_attacks") if k in kwargs}
        settings = {"min_events": 2000, "max_events": 50_000, "min_learnt_rows": 500, **kwargs}
        return retrain_after_change(
            self.production,
            X,
            RetrainPolicy(**settings),
            self.validation,
            labels,
            None,
            **verdicts,  # type: ignore[arg-type]
        )

    def labelled(self, normal: np.ndarray, attacks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Encoded rows in a seeded order, and which of them are the attacks."""
        order = self.rng.permutation(len(normal) + len(attacks))
        is_attack = np.r_[np.zeros(len(normal), bool), np.ones(len(attacks), bool)][order]
        return self.encoder.transform(np.vstack([normal, attacks])[order]), is_attack

    def alert_rate(self, model: ScoringModel, X: np.ndarray) -> float:
        return float(np.mean(model.threshold.classify(model.judge(X))))


@pytest.fixture(scope="module")
def toy() -> Toy:
    return Toy()


def test_cap_repeats_keeps_first_copies_in_order() -> None:
    X = np.array([[1.0], [2.0], [1.0], [1.0], [3.0], [1.0], [2.0]])
    assert cap_repeats(X, np.arange(7), 2 / 7).tolist() == [0, 1, 2, 4, 6]
    assert cap_repeats(X, np.array([], dtype=np.int64), 0.5).size == 0


def test_a_flood_is_capped_to_a_sliver_of_what_is_learnt() -> None:
    rng = np.random.default_rng(1)
    flood = np.repeat(rng.random((1, 4)), 9000, axis=0)
    X = np.vstack([flood, rng.random((1000, 4))]).astype(np.float32)
    policy = RetrainPolicy(max_record_share=0.01)
    ratio = np.zeros(len(X))
    evidence, capped, campaign, _ = weigh(X, ratio, (1.0, 2.0, 5.0, 20.0), policy)
    learnt = select_learnt(X, ratio, evidence, capped, campaign, policy)
    assert np.sum(learnt.rows < 9000) <= 0.01 * learnt.counts["kept"] + 1 and learnt.counts["kept"] < 1100


def test_a_campaign_is_many_alerting_records_within_a_hair_of_each_other() -> None:
    rng = np.random.default_rng(2)
    quiet = rng.random((2000, 3))
    campaign = 5.0 + rng.normal(0, 1e-4, (50, 3))  # near-identical records
    odd = 5.0 + rng.random((50, 3)) * 5  # alerting, but each its own
    X = np.vstack([quiet, campaign, odd]).astype(np.float32)
    alerting = np.r_[np.zeros(2000, bool), np.ones(100, bool)]
    rows, radius = campaign_rows(X, alerting, RetrainPolicy())
    assert rows[2000:2050].all() and not rows[2050:].any() and not rows[:2000].any() and radius > 0


def test_a_shift_of_normal_traffic_is_learnt_and_its_false_alarms_go(toy: Toy) -> None:
    X = toy.stream(toy.normal(9000, shift=1.5), toy.attacks(1000, k=20.0))  # attacks: far above
    report = toy.retrain(X)
    assert report.outcome == PASSED, report.detail
    assert report.evidence is not None and report.evidence.persistent
    assert report.selection["mode"] == NEW_NORMAL and report.selection["alerting_learnt"] > 0
    shadow = report.shadow
    assert shadow["alert_rate"]["candidate"] <= 0.9 * shadow["alert_rate"]["production"]
    assert shadow["recall"]["candidate"] >= shadow["recall"]["production"] - 0.02
    # On shifted normal traffic it has never seen, the candidate raises far fewer alarms; the attacks
    # (far more anomalous than anything learnt) all still alert.
    candidate, later = report.candidate, toy.encoder.transform(toy.normal(5000, shift=1.5))
    assert (
        candidate is not None
        and candidate.encoder is toy.encoder
        and candidate.detector is toy.production.detector
    )
    assert toy.alert_rate(candidate, later) < 0.5 * toy.alert_rate(toy.production, later)
    assert toy.alert_rate(candidate, toy.encoder.transform(toy.attacks(500))) == 1.0
    entries = report.manifest_entries({"event_id": "e1"})
    assert entries["shadow"]["passed"] and entries["retrain"]["event_id"] == "e1"
    assert (
        entries["retrain"]["evidence"]["mode"] == NEW_NORMAL and entries["retrain"]["selection"]["learnt"] > 0
    )


def test_a_stable_stream_has_no_false_alarms_to_remove(toy: Toy) -> None:
    report = toy.retrain(toy.stream(toy.normal(9000), toy.attacks(1000, k=20.0)))
    assert report.outcome == REJECTED and "no false alarms to remove" in report.detail


def test_a_campaign_in_the_new_traffic_is_never_learnt(toy: Toy) -> None:
    one = toy.attacks(1, k=4.0)
    campaign = one + toy.rng.normal(0, 1e-3, (2000, D))  # a low-severity campaign: near-identical records
    X = toy.stream(toy.normal(8000, shift=1.5), campaign)
    labels = np.array(["x"] * len(X), dtype=object)
    report = toy.retrain(X, labels)
    assert report.evidence is not None and report.evidence.mode == MIXED, report.evidence
    assert report.selection["campaign"] > 0
    learnt = report.candidate.learnt_normal  # type: ignore[union-attr]
    distance = np.linalg.norm(learnt.records_ - toy.encoder.transform(one), axis=1)
    assert distance.min() > 0.1, "no record of the campaign was learnt"


def test_no_row_of_a_burst_is_learnt(toy: Toy) -> None:
    normal = toy.encoder.transform(toy.normal(8000))
    burst = toy.encoder.transform(toy.attacks(2000, k=3.0) + toy.rng.normal(0, 2, (2000, D)))
    X = np.vstack([normal[:4000], burst, normal[4000:]])  # in offset order: one burst
    report = toy.retrain(X)
    assert report.evidence is not None and report.evidence.mode == BURSTS, report.evidence
    assert report.selection["in_bursts"] > 500  # the burst's alerting rows: not learnt
    learnt = report.candidate.learnt_normal if report.candidate is not None else None
    if learnt is not None:
        alerting = burst[toy.production.threshold.classify(toy.production.judge(burst))][:300]
        nearest = np.min(np.linalg.norm(learnt.records_[:, None, :] - alerting[None, :, :], axis=2), axis=0)
        assert (nearest > 0).all(), "an alerting row of the burst was learnt"


def test_a_flood_alone_is_insufficient_data(toy: Toy) -> None:
    flood = np.repeat(toy.attacks(3), 3000, axis=0)
    report = toy.retrain(toy.stream(flood, toy.normal(300)))
    assert report.outcome == INSUFFICIENT and report.candidate is None
    assert "may be learnt" in report.detail


def test_too_few_post_change_events_is_insufficient_data(toy: Toy) -> None:
    report = toy.retrain(toy.stream(toy.normal(500)))
    assert report.outcome == INSUFFICIENT and "2,000 needed" in report.detail


def test_a_flood_of_benign_verdicts_on_attacks_cannot_pass_the_gate(toy: Toy) -> None:
    """Verdicts teach: an analyst (or an attacker with an analyst's token) calling every attack
    benign gets those rows learnt, and the gate's recall on the validation attacks refuses it."""
    X, attack = toy.labelled(toy.normal(6000, shift=1.5), toy.attacks(4000))
    report = toy.retrain(X, benign=attack)
    assert report.selection["benign_verdicts"] > 2000
    assert report.outcome == REJECTED and "recall on validation and confirmed attacks" in report.detail


def test_malicious_verdicts_are_never_learnt_and_join_the_attacks(toy: Toy) -> None:
    X, mild = toy.labelled(toy.normal(9000, shift=1.5), toy.attacks(1000, k=4.0))  # confirmed malicious
    report = toy.retrain(X, malicious=mild, confirmed_attacks=toy.encoder.transform(toy.attacks(50, k=4.0)))
    assert report.selection["malicious_verdicts"] > 0
    learnt = report.candidate.learnt_normal.records_  # type: ignore[union-attr]
    assert not any((learnt == row).all(axis=1).any() for row in X[mild][:200])
    assert report.shadow["recall"]["attacks"] > len(toy.validation.y[toy.validation.y])


def test_contamination_is_measured_from_labels_only(toy: Toy) -> None:
    normal, attacks = toy.normal(9000, shift=1.5), toy.attacks(1000, k=20.0)
    rows = np.vstack([normal, attacks])
    labels = np.array(["normal"] * 9000 + ["smurf"] * 1000, dtype=object)
    order = toy.rng.permutation(len(rows))
    report = toy.retrain(toy.encoder.transform(rows[order]), labels[order])
    contamination = report.contamination
    assert contamination["pool_attack_share"] == pytest.approx(0.1, abs=0.01)
    # Attacks far above the learnable severities stay out of what is learnt.
    assert contamination["learnt_attack_share"] < 0.01


@pytest.mark.parametrize(
    "bad",
    [
        {"holdout_share": 0.0},
        {"max_campaign_share": 1.0},
        {"min_events": 10, "max_events": 5},
        {"normal_band": 0.5},
        {"vouch_ratio": 0.5},
    ],
)
def test_policy_refuses_values_that_make_no_sense(bad: dict) -> None:
    with pytest.raises(ValueError):
        RetrainPolicy(**bad)  # type: ignore[arg-type]
