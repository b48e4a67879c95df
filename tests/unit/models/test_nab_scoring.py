"""Tests for models.evaluation.nab: hand-computed NAB scores and reproduction of NAB's published results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.evaluation.nab import (
    NAB_PROFILES,
    Profile,
    as_score_arrays,
    list_series,
    load_detector_results,
    load_profiles,
    load_published_results,
    load_score_table,
    load_series,
    load_thresholds,
    load_windows,
    nab_score_arrays,
    optimize_threshold,
    probation_length,
    scaled_sigmoid,
    score_corpus,
    sweep_thresholds,
)
from tests.support import require_data

STANDARD = Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0, tn_weight=1.0)
LOW_FN = Profile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0, tn_weight=1.0)

# The tiny series used by the hand-built cases: 40 one-minute rows, one window on rows 10..14.
# probation = min(floor(0.15 * 40), 0.15 * 5000) = min(6, 750) = 6, so rows 0..5 are ignored.
N_ROWS = 40
TIMES = pd.date_range("2024-01-01", periods=N_ROWS, freq="min")
WINDOW = [(TIMES[10], TIMES[14])]  # width = 14 - 10 + 1 = 5 rows
NAME = "toy/series.csv"


def nab_sigmoid(x: float) -> float:
    """NAB's scaledSigmoid written out: 2 * sigmoid(-5 x) - 1, and -1 beyond x > 3."""
    return -1.0 if x > 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


MAX_TP = nab_sigmoid(-1.0)  # 2 / (1 + e^-5) - 1 = 0.986614


def score_toy(detect_rows: list[int], profile: Profile = STANDARD, windows=None) -> float:
    """Raw NAB score of the toy series with anomaly score 1 on ``detect_rows`` and 0 elsewhere."""
    values = np.zeros(N_ROWS)
    values[detect_rows] = 1.0
    result = score_corpus(
        {NAME: (TIMES, values)}, {NAME: WINDOW if windows is None else windows}, profile, 0.5
    )
    return result.raw


# ---------------------------------------------------------------- hand-built cases


def test_probation_length_formula() -> None:
    assert probation_length(40) == 6  # floor(0.15 * 40) = 6
    assert probation_length(4032) == 604  # floor(604.8)
    assert probation_length(22695) == 750  # capped at 0.15 * 5000
    assert probation_length(3) == 0


def test_scaled_sigmoid_reference_points() -> None:
    # NAB docstring: S(-1) = 0.98661, S(-0.5) = 0.84828, S(0) = 0, S(1) = -0.98661, S(x > 3) = -1.
    got = scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 3.0, 3.0001]))
    assert got[:4] == pytest.approx([0.98661, 0.84828, 0.0, -0.98661], abs=1e-5)
    assert got[4] == pytest.approx(nab_sigmoid(3.0)) and got[4] > -1.0
    assert got[5] == -1.0


def test_detection_at_window_start_earns_full_tp_weight() -> None:
    # row 10: position = -(14 - 10 + 1) / 5 = -1 -> S(-1) / S(-1) * tp_weight = 1.0
    assert score_toy([10]) == pytest.approx(1.0)


def test_detection_in_window_middle() -> None:
    # row 12: position = -(14 - 12 + 1) / 5 = -0.6 -> S(-0.6) / S(-1) = 0.905148 / 0.986614 = 0.917429
    assert score_toy([12]) == pytest.approx(nab_sigmoid(-0.6) / MAX_TP)
    assert score_toy([12]) == pytest.approx(0.917429, abs=1e-6)


def test_detection_at_window_end_still_positive() -> None:
    # row 14: position = -(14 - 14 + 1) / 5 = -0.2 -> S(-0.2) / S(-1) = 0.462117 / 0.986614 = 0.468387
    assert score_toy([14]) == pytest.approx(0.468387, abs=1e-6)


def test_false_positive_before_any_window_costs_full_fp_weight() -> None:
    # row 8 (after probation, before the window): -fp_weight = -0.11; the window is missed: -1.
    assert score_toy([8]) == pytest.approx(-1.0 - 0.11)


def test_false_positive_shortly_after_window_is_sigmoid_weighted() -> None:
    # row 16: position = (16 - 14) / (5 - 1) = 0.5 -> S(0.5) * fp_weight = -0.848284 * 0.11 = -0.093311
    assert score_toy([10, 16]) == pytest.approx(1.0 + 0.11 * nab_sigmoid(0.5))
    assert score_toy([10, 16]) == pytest.approx(1.0 - 0.093311, abs=1e-6)
    # row 15, right after the window: position 1/4 -> S(0.25) * 0.11 = -0.061006
    assert score_toy([10, 15]) == pytest.approx(1.0 - 0.061006, abs=1e-6)


def test_false_positive_far_after_window_costs_full_fp_weight() -> None:
    # row 30: position = (30 - 14) / 4 = 4 > 3 -> S = -1 -> -0.11
    assert score_toy([10, 30]) == pytest.approx(1.0 - 0.11)


def test_missed_window_costs_fn_weight() -> None:
    assert score_toy([]) == pytest.approx(-1.0)
    assert score_toy([], profile=LOW_FN) == pytest.approx(-2.0)


def test_detection_in_probation_is_ignored() -> None:
    # rows 0..5 are probationary: neither FP (would be -0.11) nor anything else.
    assert score_toy([0, 3, 5]) == pytest.approx(-1.0)
    # row 6 is the first scored row: an FP before any window.
    assert score_toy([5, 6]) == pytest.approx(-1.11)


def test_window_inside_probation_is_not_scored() -> None:
    # NAB's sweeper only knows windows with at least one row after probation.
    in_probation = [(TIMES[1], TIMES[3])]
    assert score_toy([], windows=in_probation) == 0.0
    # ... but it still anchors the FP distance: row 8 -> (8 - 3) / (3 - 1) = 2.5 -> S(2.5) * 0.11
    assert score_toy([8], windows=in_probation) == pytest.approx(0.11 * nab_sigmoid(2.5))


def test_only_first_detection_in_window_counts() -> None:
    # rows 12, 13, 14 all detected: only row 12 counts, 0.917429; later ones add nothing.
    values = np.zeros(N_ROWS)
    values[[12, 13, 14]] = 1.0
    result = score_corpus({NAME: (TIMES, values)}, {NAME: WINDOW}, STANDARD, 0.5)
    assert result.raw == pytest.approx(0.917429, abs=1e-6)
    series = result.per_series[0]
    # NAB's TP/FN columns count rows: 3 detected window rows, 2 undetected ones.
    assert (series.tp, series.fn, series.fp, series.detected_windows) == (3, 2, 0, 1)
    assert series.tn == N_ROWS - 6 - 5


def test_score_equal_to_threshold_is_a_detection() -> None:
    values = np.zeros(N_ROWS)
    values[10] = 0.7
    at = score_corpus({NAME: (TIMES, values)}, {NAME: WINDOW}, STANDARD, 0.7)
    above = score_corpus({NAME: (TIMES, values)}, {NAME: WINDOW}, STANDARD, np.nextafter(0.7, 1.0))
    assert at.raw == pytest.approx(1.0)
    assert above.raw == pytest.approx(-1.0)


def test_nan_scores_never_detect() -> None:
    values = np.full(N_ROWS, np.nan)
    values[10] = 1.0
    assert score_corpus({NAME: (TIMES, values)}, {NAME: WINDOW}, STANDARD, 0.5).raw == pytest.approx(1.0)
    assert optimize_threshold({NAME: (TIMES, values)}, {NAME: WINDOW}, STANDARD).raw == pytest.approx(1.0)


def test_normalisation_null_is_zero_and_perfect_is_hundred() -> None:
    second = "toy/other.csv"
    windows = {NAME: WINDOW, second: [(TIMES[20], TIMES[24]), (TIMES[30], TIMES[35])]}
    # null: nothing detected -> raw = -3 windows * fn_weight; perfect: every window start.
    null_scores = {name: (TIMES, np.zeros(N_ROWS)) for name in windows}
    perfect = {name: (TIMES, np.zeros(N_ROWS)) for name in windows}
    perfect[NAME][1][10] = 1.0
    perfect[second][1][[20, 30]] = 1.0
    for profile in (STANDARD, LOW_FN):
        null_result = score_corpus(null_scores, windows, profile, 0.5)
        perfect_result = score_corpus(perfect, windows, profile, 0.5)
        assert null_result.null_raw == -3 * profile.fn_weight
        assert null_result.perfect_raw == 3 * profile.tp_weight
        assert null_result.normalized == pytest.approx(0.0)
        assert perfect_result.raw == pytest.approx(3.0)
        assert perfect_result.normalized == pytest.approx(100.0)


def test_optimizer_picks_best_threshold() -> None:
    values = np.zeros(N_ROWS)
    values[10] = 0.9  # window start: +1 instead of -1
    values[20] = 0.95  # FP at (20 - 14) / 4 = 1.5 -> 0.11 * S(1.5) = -0.109878
    result = optimize_threshold({NAME: (TIMES, values)}, {NAME: WINDOW}, STANDARD)
    # candidates: inf -> -1; 0.95 -> -1.109878; 0.9 -> 1 - 0.109878 = 0.890122; 0.0 -> worse (26 more FPs)
    assert result.threshold == 0.9
    assert result.raw == pytest.approx(1.0 + 0.11 * nab_sigmoid(1.5))
    assert result.raw == pytest.approx(0.890122, abs=1e-6)


def test_optimizer_prefers_detecting_nothing_when_detections_only_hurt() -> None:
    values = np.zeros(N_ROWS)
    values[30] = 1.0
    result = optimize_threshold({NAME: (TIMES, values)}, {NAME: WINDOW}, STANDARD)
    assert result.threshold == math.inf
    assert result.raw == pytest.approx(-1.0)
    assert result.normalized == pytest.approx(0.0)


def test_length_mismatch_and_unknown_series_are_errors() -> None:
    with pytest.raises(ValueError, match="one score per row"):
        score_corpus({NAME: (TIMES, np.zeros(N_ROWS - 1))}, {NAME: WINDOW}, STANDARD, 0.5)
    with pytest.raises(KeyError, match="no NAB windows"):
        score_corpus({NAME: (TIMES, np.zeros(N_ROWS))}, {}, STANDARD, 0.5)


def test_repeated_and_backward_timestamps_are_scored_by_row() -> None:
    # Row 12 repeats the timestamp of row 11 and the clock steps back (as at a DST change in NAB data).
    times = list(TIMES)
    times[12] = times[11]
    times[13] = times[10]
    values = np.zeros(N_ROWS)
    values[13] = 1.0
    result = score_corpus({NAME: (np.array(times), values)}, {NAME: WINDOW}, STANDARD, 0.5)
    # The window still spans rows 10..14; row 13: position -(14 - 13 + 1) / 5 = -0.4.
    assert result.raw == pytest.approx(nab_sigmoid(-0.4) / MAX_TP)


# ---------------------------------------------------------------- sweep == brute force


def _reference_raw(scores, windows, profile, threshold) -> float:
    """Slow, literal reading of NAB's rules, used to cross-check the vectorised code."""
    total = 0.0
    for name, (times, values) in scores.items():
        n = len(values)
        probation = min(math.floor(0.15 * n), 0.15 * 5000)
        times = list(pd.to_datetime(times))
        bounds = [(times.index(a), times.index(b)) for a, b in windows[name]]
        hits = {k: [] for k, (_, e) in enumerate(bounds) if e >= probation}
        for i in range(n):
            if i < probation or not values[i] >= threshold:
                continue
            inside = [k for k, (s, e) in enumerate(bounds) if s <= i <= e]
            if inside:
                hits[inside[0]].append(i)
                continue
            before = [k for k, (_, e) in enumerate(bounds) if e < i]
            if not before:
                total -= profile.fp_weight
            else:
                s, e = bounds[before[-1]]
                total += profile.fp_weight * nab_sigmoid((i - e) / (e - s))
        for k, rows in hits.items():
            s, e = bounds[k]
            if rows:
                total += profile.tp_weight * nab_sigmoid(-(e - rows[0] + 1) / (e - s + 1)) / MAX_TP
            else:
                total -= profile.fn_weight
    return total


def test_sweep_matches_brute_force_on_random_series() -> None:
    rng = np.random.default_rng(7)
    scores, windows = {}, {}
    for j in range(4):
        n = int(rng.integers(60, 200))
        times = pd.date_range("2024-01-01", periods=n, freq="5min")
        # Rounded scores create ties, which the sweep must treat as one threshold.
        scores[f"c/s{j}.csv"] = (times.to_numpy(), np.round(rng.random(n) ** 3, 2))
        starts = sorted(rng.choice(np.arange(5, n - 12, 12), size=2, replace=False))
        windows[f"c/s{j}.csv"] = [(times[a], times[a + int(rng.integers(1, 8))]) for a in starts]
    for profile in (STANDARD, LOW_FN):
        sweep = sweep_thresholds(scores, windows, profile)
        assert sweep.raw[0] == pytest.approx(sweep.null_raw)
        for threshold, raw in zip(sweep.thresholds[1:], sweep.raw[1:], strict=True):
            assert raw == pytest.approx(_reference_raw(scores, windows, profile, threshold), abs=1e-9)
            assert raw == pytest.approx(score_corpus(scores, windows, profile, threshold).raw, abs=1e-9)
        best = optimize_threshold(scores, windows, profile)
        assert best.raw == pytest.approx(sweep.raw.max(), abs=1e-9)


# ---------------------------------------------------------------- real NAB data


NAB_LABELS = ("nab", "labels", "combined_windows.json")


@pytest.fixture(scope="module")
def nab_dir() -> Path:
    return require_data(*NAB_LABELS).parents[1]


@pytest.mark.data
def test_nab_data_present_in_ci() -> None:
    # In CI a missing data folder must fail loudly instead of silently skipping the reproduction tests.
    assert require_data(*NAB_LABELS).is_file()


@pytest.fixture(scope="module")
def nab_inputs(nab_dir: Path):
    return load_windows(nab_dir), load_profiles(nab_dir)


@pytest.fixture(scope="module", params=["windowedGaussian", "randomCutForest"])
def detector_scores(request, nab_dir: Path):
    # NAB pairs the i-th result score with the i-th data row, ignoring the result file's timestamps.
    return request.param, nab_score_arrays(nab_dir, request.param)


@pytest.mark.data
def test_corpus_files_load(nab_dir: Path, nab_inputs) -> None:
    windows, profiles = nab_inputs
    names = list_series(nab_dir)
    assert len(names) == 58 and names == sorted(names)
    assert set(windows) == set(names)
    assert sum(len(w) for w in windows.values()) == 116
    assert profiles["reward_low_FN_rate"].fn_weight == 2.0
    assert profiles["reward_low_FP_rate"].fp_weight == 0.22
    total_rows = sum(len(load_series(nab_dir, name)) for name in names)
    assert total_rows == 365_558


@pytest.mark.data
def test_machine_temperature_backward_timestamps(nab_dir: Path, nab_inputs) -> None:
    windows, profiles = nab_inputs
    name = "realKnownCause/machine_temperature_system_failure.csv"
    series = load_series(nab_dir, name)
    assert len(series) == 22_695
    assert series["timestamp"].dtype.kind == "M"
    assert not series["timestamp"].is_monotonic_increasing  # 02:00-02:55 on 2014-01-07 repeats
    # randomCutForest's result file holds the same rows re-sorted by timestamp, so its own
    # timestamps disagree with the data file's order; NAB scores by position regardless.
    result_times = load_detector_results(nab_dir, "randomCutForest", [name])[name]["timestamp"]
    assert result_times.is_monotonic_increasing
    assert (np.sort(series["timestamp"].to_numpy()) == result_times.to_numpy()).all()

    table = load_score_table(nab_dir, "randomCutForest", "standard").set_index("File")
    threshold = load_thresholds(nab_dir)["randomCutForest"]["standard"]
    for scores in (
        nab_score_arrays(nab_dir, "randomCutForest", [name]),
        as_score_arrays(load_detector_results(nab_dir, "randomCutForest", [name])),
    ):
        times, values = scores[name]
        result = score_corpus({name: (times, values)}, {name: windows[name]}, profiles["standard"], threshold)
        assert result.raw == pytest.approx(table.loc[name, "Score"], abs=1e-9)


@pytest.mark.data
@pytest.mark.parametrize("profile_name", NAB_PROFILES)
def test_published_scores_with_nab_thresholds(nab_dir, nab_inputs, detector_scores, profile_name) -> None:
    windows, profiles = nab_inputs
    detector, scores = detector_scores
    threshold = load_thresholds(nab_dir)[detector][profile_name]
    result = score_corpus(scores, windows, profiles[profile_name], threshold)
    published = load_published_results(nab_dir)[detector][profile_name]
    assert abs(result.normalized - published) < 0.1
    table = load_score_table(nab_dir, detector, profile_name)
    totals = table.iloc[-1]
    assert totals["Detector"] == "Totals"
    assert result.raw == pytest.approx(totals["Score"], abs=1e-6)

    # Every file's raw score and row counts agree with NAB's own per-file table.
    per_file = table.iloc[:-1].set_index("File")
    assert len(per_file) == len(result.per_series) == 58
    for series in result.per_series:
        row = per_file.loc[series.name]
        assert series.raw == pytest.approx(row["Score"], abs=1e-9), series.name
        assert (series.tp, series.tn, series.fp, series.fn) == (row["TP"], row["TN"], row["FP"], row["FN"])


@pytest.mark.data
@pytest.mark.parametrize("profile_name", NAB_PROFILES)
def test_published_scores_with_own_optimizer(nab_dir, nab_inputs, detector_scores, profile_name) -> None:
    windows, profiles = nab_inputs
    detector, scores = detector_scores
    result = optimize_threshold(scores, windows, profiles[profile_name])
    published = load_published_results(nab_dir)[detector][profile_name]
    assert abs(result.normalized - published) < 0.1
    # NAB's tuned threshold is one of the candidates, so the exact optimum cannot be worse.
    nab_threshold = load_thresholds(nab_dir)[detector][profile_name]
    assert result.raw >= score_corpus(scores, windows, profiles[profile_name], nab_threshold).raw - 1e-9


@pytest.mark.data
def test_sweep_agrees_with_direct_scoring_on_real_data(nab_inputs, detector_scores) -> None:
    windows, profiles = nab_inputs
    _, scores = detector_scores
    profile = profiles["reward_low_FP_rate"]
    sweep = sweep_thresholds(scores, windows, profile)
    picks = np.linspace(1, len(sweep.thresholds) - 1, 12).astype(int)
    for i in picks:
        direct = score_corpus(scores, windows, profile, float(sweep.thresholds[i]))
        assert sweep.raw[i] == pytest.approx(direct.raw, abs=1e-6)
