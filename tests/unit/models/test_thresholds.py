"""Threshold objects: hand-checkable cuts, stored-form round trips, FPR held on unseen normal data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.thresholds import (
    FBetaThreshold,
    FixedThreshold,
    GaussianThreshold,
    QuantileThreshold,
    SlidingPercentileThreshold,
    Threshold,
    judge_stream,
    make_threshold,
    threshold_from_dict,
)


def _round_trip(threshold: Threshold) -> Threshold:
    """Through JSON text, as the registry stores it."""
    return threshold_from_dict(json.loads(json.dumps(threshold.to_dict())))


# -- quantile -------------------------------------------------------------------------------------
def test_quantile_cut_is_an_observed_score_by_hand() -> None:
    scores = np.arange(1.0, 101.0)  # 1..100
    t = QuantileThreshold(fpr=0.05).fit(scores)
    # the 95% "higher" quantile of 1..100 is 96 (index ceil(0.95 * 99) = 95): 5 of 100 flagged
    assert t.threshold_ == 96.0
    assert int(t.classify(scores).sum()) == 5


def test_quantile_uses_only_the_normal_part_of_a_labelled_split() -> None:
    scores = np.r_[np.arange(1.0, 101.0), np.full(50, 1000.0)]
    labels = np.r_[np.zeros(100, bool), np.ones(50, bool)]
    assert QuantileThreshold(fpr=0.05).fit(scores, labels).threshold_ == 96.0


@pytest.mark.parametrize("kind", ["quantile", "gaussian"])
def test_target_fpr_holds_on_held_out_normal_data(kind: str) -> None:
    rng = np.random.default_rng(7)
    validation, held_out = rng.lognormal(-6, 0.8, 20_000), rng.lognormal(-6, 0.8, 200_000)
    t = make_threshold(kind, fpr=0.01).fit(validation)
    assert 0.008 <= float(np.mean(t.classify(held_out))) <= 0.012


def test_quantile_rejects_bad_fpr_and_empty_input() -> None:
    with pytest.raises(ValueError, match="fpr"):
        QuantileThreshold(fpr=1.5)
    with pytest.raises(ValueError, match="no normal"):
        QuantileThreshold().fit(np.array([1.0]), np.array([True]))


# -- gaussian -------------------------------------------------------------------------------------
def test_gaussian_cut_by_hand() -> None:
    # Two values, log-fitted: log scores 0 and 2 -> mean 1, sample std sqrt(2).
    t = GaussianThreshold(fpr=0.5).fit(np.array([1.0, np.e**2]))
    assert t.log_ is True and t.mean_ == pytest.approx(1.0) and t.std_ == pytest.approx(np.sqrt(2))
    assert t.threshold_ == pytest.approx(np.e)  # z(0.5) = 0: the cut is exp(mean)
    linear = GaussianThreshold(fpr=0.15865525393145707, log=False).fit(np.array([-1.0, 1.0, -1.0, 1.0]))
    # mean 0, sample std sqrt(4/3); the 84.13% point of a normal is mean + 1 std
    assert linear.threshold_ == pytest.approx(np.sqrt(4 / 3), rel=1e-6)


def test_gaussian_falls_back_to_linear_for_non_positive_scores() -> None:
    assert GaussianThreshold().fit(np.array([-0.5, 0.1, 0.2, 0.4])).log_ is False
    with pytest.raises(ValueError, match="positive"):
        GaussianThreshold(log=True).fit(np.array([-0.5, 0.1]))


# -- F-beta ---------------------------------------------------------------------------------------
def test_fbeta_picks_the_known_optimum() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1], bool)
    # cut 0.6: TP 3, FP 0, FN 1 -> F1 6/7 = 0.857; cut 0.4: TP 4, FP 1 -> F1 8/9 = 0.889 (best)
    t = FBetaThreshold(beta=1.0).fit(scores, labels)
    assert t.threshold_ == 0.4 and t.fbeta_ == pytest.approx(8 / 9)
    # precision-heavy F0.5 prefers the clean cut: 0.6 scores 0.9375 against 0.833 at 0.4
    assert FBetaThreshold(beta=0.5).fit(scores, labels).threshold_ == 0.6


def test_fbeta_ties_go_to_the_highest_cut_and_equal_scores_move_together() -> None:
    scores = np.array([0.9, 0.9, 0.5, 0.1])
    labels = np.array([1, 0, 1, 0], bool)
    t = FBetaThreshold().fit(scores, labels)
    # Cut 0.9 flags both 0.9 rows (TP 1, FP 1: F1 0.5); cut 0.5: TP 2, FP 1 -> F1 0.8.
    assert t.threshold_ == 0.5
    # Cut 4: TP 1, FP 0 -> F1 2/3; cut 1: TP 2, FP 2 -> F1 2/3 too: the higher cut wins.
    tied = FBetaThreshold().fit(np.array([4.0, 3.0, 2.0, 1.0]), np.array([1, 0, 0, 1], bool))
    assert tied.threshold_ == 4.0


def test_fbeta_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="labels"):
        FBetaThreshold().fit(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="both"):
        FBetaThreshold().fit(np.array([1.0, 2.0]), np.array([0, 0]))


# -- sliding percentile ---------------------------------------------------------------------------
def test_sliding_threshold_follows_the_window_by_hand() -> None:
    t = SlidingPercentileThreshold(window=4, percentile=50).fit(np.array([9.0, 1.0, 2.0, 3.0, 4.0]))
    assert t.threshold_ == 3.0  # last 4 scores [1, 2, 3, 4]; "higher" median = 3
    # One event per batch: each is judged, then learnt, as a worker committing every event would.
    flags = judge_stream(t, np.array([3.0, 0.5, 0.5, 0.5, 10.0]), batch_size=1)
    # windows before each score: [1,2,3,4]->3, [2,3,4,3]->3, [3,4,3,.5]->3, [4,3,.5,.5]->3, [3,.5,.5,.5]->.5
    assert flags.tolist() == [True, False, False, False, True]
    assert t.threshold_ == 0.5  # window [.5, .5, .5, 10]


def test_classify_is_pure_and_learn_moves_the_cut() -> None:
    """A retried batch is judged twice; it must not be learnt twice (the bug before classify/learn)."""
    t = SlidingPercentileThreshold(window=4, percentile=75).fit(np.array([1.0, 2.0, 3.0, 4.0]))
    batch = np.array([10.0, 12.0])
    first, second = t.classify(batch), t.classify(batch)  # e.g. a delivery failure, then the retry
    assert first.tolist() == second.tolist() == [True, True]
    assert t.threshold_ == 4.0 and t.state() == {"recent": [1.0, 2.0, 3.0, 4.0]}
    t.learn(batch)  # once, after the commit
    assert t.state() == {"recent": [3.0, 4.0, 10.0, 12.0]} and t.threshold_ == 12.0


def test_sliding_threshold_with_clipped_alerts_holds_against_a_flood() -> None:
    t = SlidingPercentileThreshold(window=3, percentile=100, clip_alerts=True).fit(np.array([1.0, 2.0, 3.0]))
    assert judge_stream(t, np.array([50.0, 60.0, 2.5])).tolist() == [True, True, False]
    assert t.threshold_ == 3.0  # the burst entered as 3.0, 3.0: window [3, 3, 2.5]
    flood = SlidingPercentileThreshold(window=3, percentile=100).fit(np.array([1.0, 2.0, 3.0]))
    assert judge_stream(flood, np.array([50.0, 60.0, 55.0])).tolist() == [True, True, False]  # dragged up


def test_sliding_batches_judge_against_the_committed_window_and_end_alike() -> None:
    rng = np.random.default_rng(3)
    seed, stream = rng.exponential(size=500), rng.exponential(size=2_000)
    batched = SlidingPercentileThreshold(window=200, percentile=95).fit(seed)
    online = SlidingPercentileThreshold(window=200, percentile=95).fit(seed)
    flags = []
    for score in stream:
        flags.append(score >= online.threshold_)
        online.update(score)
    assert judge_stream(online.__class__(window=200, percentile=95).fit(seed), stream).tolist() == flags
    # Batches of 100: each judged against the window as the previous batch left it.
    expected, cuts = [], SlidingPercentileThreshold(window=200, percentile=95).fit(seed)
    for start in range(0, len(stream), 100):
        expected += (stream[start : start + 100] >= cuts.threshold_).tolist()
        cuts.learn(stream[start : start + 100])
    assert judge_stream(batched, stream, batch_size=100).tolist() == expected
    assert batched.threshold_ == online.threshold_ == cuts.threshold_  # the same scores learnt


def test_sliding_state_round_trips_and_resumes() -> None:
    rng = np.random.default_rng(5)
    t = SlidingPercentileThreshold(window=50, percentile=90).fit(rng.exponential(size=80))
    t.learn(rng.exponential(size=30))
    restored = _round_trip(t)
    assert isinstance(restored, SlidingPercentileThreshold)
    assert restored.threshold_ == t.threshold_
    more = rng.exponential(size=100)
    assert judge_stream(restored, more).tolist() == judge_stream(t, more).tolist()


# -- shared behaviour -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "threshold",
    [
        QuantileThreshold(fpr=0.02, ratios=(1.0, 3.0, 6.0, 9.0)),
        GaussianThreshold(fpr=0.05),
        FBetaThreshold(beta=2.0),
        SlidingPercentileThreshold(window=10, percentile=80),
    ],
    ids=lambda t: t.kind,
)
def test_round_trip_keeps_kind_cut_params_and_state(threshold: Threshold) -> None:
    rng = np.random.default_rng(1)
    scores, labels = rng.exponential(size=300), rng.random(300) < 0.2
    threshold.fit(scores, labels)
    restored = _round_trip(threshold)
    assert type(restored) is type(threshold)
    assert restored.to_dict() == threshold.to_dict()
    probe = rng.exponential(size=50)
    assert restored.classify(probe).tolist() == threshold.classify(probe).tolist()


def test_severity_lives_in_the_base_class() -> None:
    t = FixedThreshold(2.0, ratios=(1.0, 2.0, 5.0, 20.0))
    assert t.severity(np.array([2.0, 3.9, 4.0, 10.0, 40.0])) == ["low", "low", "medium", "high", "critical"]
    g = GaussianThreshold(fpr=0.5).fit(np.array([1.0, np.e**2]))  # cut e
    assert g.severity(np.array([np.e * 25])) == ["critical"]


def test_stored_form_of_the_old_quantile_threshold_still_loads() -> None:
    t = threshold_from_dict({"kind": "quantile", "threshold": 0.25, "ratios": [1, 2, 5, 20], "fpr": 0.01})
    assert isinstance(t, QuantileThreshold) and t.threshold_ == 0.25 and t.fpr == 0.01


def test_unknown_kinds_are_refused_with_the_known_ones_named() -> None:
    with pytest.raises(ValueError, match="quantile"):
        make_threshold("max-train-error")
    with pytest.raises(ValueError, match="known"):
        threshold_from_dict({"kind": "nope", "threshold": 1.0})
