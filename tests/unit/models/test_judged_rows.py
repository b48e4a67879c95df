"""Analysts' verdicts in a retrain, without Kafka: an incident verdict covers a cluster of rows; benign
ones are learnt where the label-free evidence would not learn them, malicious ones never are and join
the gate's attacks, and a benign word never teaches a row a malicious verdict also covers."""

from __future__ import annotations

import numpy as np
import pytest

from consumers.verdicts import judged_events
from models.retraining import MIXED, NEW_NORMAL, PASSED, REJECTED
from models.retraining.judged import judged_masks, learnt_ceilings, taught_by_verdicts
from stream.messages import Feedback, SourceRef
from tests.unit.models.test_retraining import D, Toy


@pytest.fixture(scope="module")
def toy() -> Toy:
    return Toy(seed=3)


def cluster(toy: Toy, n: int, k: float, features: slice = slice(4, 6)) -> np.ndarray:
    """``n`` near-identical rows ``k`` away from the normal traffic on ``features``: what an incident
    groups (a campaign to the label-free evidence, whether it is one or a new kind of normal)."""
    centre = toy.rng.normal(0, 1, (1, D))
    centre[:, features] += k
    return centre + toy.rng.normal(0, 1e-2, (n, D))


def rate(toy: Toy, model: object, rows: np.ndarray) -> float:
    return toy.alert_rate(model, toy.encoder.transform(rows))  # type: ignore[arg-type]


def test_a_benign_incident_is_learnt_where_the_evidence_alone_would_not(toy: Toy) -> None:
    new_kind = cluster(toy, 1500, 5.0)  # a dense cluster: the evidence says "mixed"
    X, judged = toy.labelled(toy.normal(8000, shift=1.5), new_kind)
    guess, told = toy.retrain(X), toy.retrain(X, benign=judged)
    assert guess.selection["mode"] == MIXED and guess.selection["benign_verdicts"] == 0
    later = new_kind[:1] + toy.rng.normal(0, 1e-2, (500, D))  # the same kind of traffic, not seen yet
    assert guess.candidate is not None and rate(toy, guess.candidate, later) == 1.0

    assert told.outcome == PASSED, told.detail
    assert told.selection["mode"] == NEW_NORMAL  # a campaign judged benign is no evidence of attack
    assert told.selection["benign_verdicts_beyond_evidence"] > 1000
    assert told.candidate is not None and rate(toy, told.candidate, later) == 0.0
    assert told.shadow["recall"]["candidate"] == told.shadow["recall"]["production"] == 1.0
    assert told.selection["holdout_taught_by_verdicts"] >= judged[-len(judged) // 4 :].sum()


def test_a_benign_incident_vouches_past_the_ceiling_of_a_mixed_stream(toy: Toy) -> None:
    """With an unjudged campaign beside it, the stream stays "mixed" (2 thresholds): the judged rows
    (above 2 thresholds) still vouch for their own kind, the campaign keeps alerting."""
    new_kind, campaign = cluster(toy, 1200, 6.0, slice(6, 8)), cluster(toy, 1200, 6.0)
    rows = np.vstack([toy.normal(7000, shift=1.5), new_kind, campaign])
    order = toy.rng.permutation(len(rows))
    judged = (np.arange(len(rows)) >= 7000) & (np.arange(len(rows)) < 8200)
    production = toy.production
    severity = production.judge(toy.encoder.transform(new_kind)) / production.threshold.threshold_
    assert np.median(severity) > 2.0  # above the mixed mode's ceiling
    report = toy.retrain(toy.encoder.transform(rows[order]), benign=judged[order])
    assert report.selection["mode"] == MIXED and report.outcome == PASSED, report.detail
    candidate = report.candidate
    assert candidate is not None
    assert rate(toy, candidate, new_kind[:1] + toy.rng.normal(0, 1e-2, (300, D))) == 0.0
    assert rate(toy, candidate, campaign[:1] + toy.rng.normal(0, 1e-2, (300, D))) == 1.0


def test_a_malicious_incident_is_never_learnt_even_under_a_benign_verdict(toy: Toy) -> None:
    attack = cluster(toy, 1500, 5.0)
    X, in_attack = toy.labelled(toy.normal(8000, shift=1.5), attack)
    report = toy.retrain(X, benign=in_attack, malicious=in_attack)  # both verdicts: malicious wins
    assert report.selection["benign_verdicts"] == 0 and report.selection["malicious_verdicts"] > 1000
    assert report.selection["mode"] == MIXED
    assert report.candidate is not None and rate(toy, report.candidate, attack[:300]) == 1.0
    # Every malicious row joins the gate's attacks, the training part's too, not only the holdout's.
    assert report.shadow["recall"]["attacks"] == int(toy.validation.y.sum()) + int(in_attack.sum())


def test_a_benign_verdict_on_an_attack_incident_is_refused_by_the_gate(toy: Toy) -> None:
    """An analyst who calls a campaign of validation-like attacks benign teaches them, and the
    shadow gate's recall on the validation attacks refuses the candidate."""
    X, attack = toy.labelled(toy.normal(6000, shift=1.5), toy.attacks(3000))
    report = toy.retrain(X, benign=attack)
    assert report.outcome == REJECTED and "recall on validation and confirmed attacks" in report.detail


def test_masks_ceilings_and_what_a_verdict_taught() -> None:
    benign, malicious = judged_masks(4, np.array([1, 1, 0, 0], bool), np.array([0, 1, 0, 1], bool))
    assert benign.tolist() == [True, False, False, False] and malicious.tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match="one entry per row"):
        judged_masks(3, np.ones(2, bool), None)
    assert learnt_ceilings(np.array([True, False]), 2.0).tolist() == [np.inf, 2.0]
    holdout = np.array([[0.0], [0.3], [3.0], [9.0]], np.float32)
    taught = taught_by_verdicts(holdout, np.array([[0.0]], np.float32), 0.5, np.array([0, 0, 0, 1], bool))
    assert taught.tolist() == [True, True, False, True]
    assert not taught_by_verdicts(holdout, np.zeros((0, 1), np.float32), 0.5).any()


def _feedback(
    verdict: str, alert: str | None = None, incident: str | None = None, offset: int = 0
) -> Feedback:
    source = SourceRef("kdd.connections", 0, offset, None) if alert else None
    return Feedback(alert, verdict, "ann", "", "2026-12-07T15:00:00Z", "kdd", "ae", 1, source, incident)  # type: ignore[arg-type]


def test_an_incident_verdict_covers_every_member_and_malicious_outranks_benign() -> None:
    members = {"inc-1": {("kdd.connections", 0, o) for o in range(10)}, "inc-2": {("kdd.connections", 1, 4)}}
    by_alert = {"a5": _feedback("malicious", "a5", offset=5), "a20": _feedback("benign", "a20", offset=20)}
    by_incident = {
        "inc-1": _feedback("benign", incident="inc-1"),
        "inc-2": _feedback("malicious", incident="inc-2"),
    }
    benign, malicious, overruled = judged_events(by_alert, by_incident, members)
    assert benign == {("kdd.connections", 0, o) for o in (*range(10), 20)} - {("kdd.connections", 0, 5)}
    assert malicious == {("kdd.connections", 0, 5), ("kdd.connections", 1, 4)} and overruled == 1
    # A judged incident whose members were not found teaches nothing (and raises nothing).
    assert judged_events({}, {"inc-3": _feedback("benign", incident="inc-3")}, {})[0] == frozenset()
