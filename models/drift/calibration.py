"""Setting a drift detector's sensitivity from the model's own validation scores.

A false alarm is a detection on a stream that has not changed. The target is an expected run time
(ERT) between false alarms, e.g. one per 1,000,000 scores, as alibi-detect sets its online
detectors' thresholds. Under no drift the scores a detector sees are draws from the validation
scores, so the calibration simulates that: ``runs`` independent bootstrap streams of ``run_length``
scores resampled from the reference, each through the real river detector, recording the first
false alarm of each. With a roughly constant false-alarm hazard ``1 / ERT``, a run of length ``H``
raises an alarm with probability ``F* = 1 - exp(-H / ERT)``; the calibration picks the most
sensitive setting whose simulated share of alarmed runs stays at or below ``F*``.

* ADWIN (``delta``): until ADWIN first cuts, its state does not depend on delta, so each run is
  followed down a log-spaced grid of deltas in one pass (snapshots of the Rust state; see
  :func:`models.drift.score_drift.adwin_with_delta`): every grid delta's first alarm for the cost
  of one run.
* Page-Hinkley (``threshold``): the statistic is a fading cumulative sum, computed for all runs at
  once (numpy; the same recursion as river's); the threshold is a quantile of the runs' maxima.
* KSWIN (``alpha``): a two-sample KS test of 30 recent values against 30 of the 70 before them.
  With 30 against 30 the statistic takes the values k/30 and its p-value is a decreasing function of
  k, so the runs' largest k give the critical k and alpha sits between its p-value and the next
  one's. One scipy test costs ~150 us, so KSWIN sees every ``stride``-th score.

Calibration is deterministic for a given reference and seed (tests pin it).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import signal as sp_signal
from scipy import stats as sp_stats

from models.drift.config import DETECTORS, DriftConfig, ReferenceCDF
from models.drift.score_drift import ScoreDrift, adwin_with_delta, make_river_detector

LIBRARY_DEFAULTS: dict[str, dict[str, Any]] = {
    "adwin": {"delta": 0.002},
    "kswin": {"alpha": 0.005, "window_size": 100, "stat_size": 30, "seed": 0},
    "page_hinkley": {"min_instances": 30, "delta": 0.005, "threshold": 50.0, "alpha": 0.9999},
}
KSWIN_STRIDE = 64  # ~150 us per KS test / 64 -> ~2.3 us per score
ADWIN_GRID = np.geomspace(0.9, 1e-9, 95)  # ratio ~1.25 between neighbours
SNAPSHOT_EVERY = 1024


def library_defaults(kind: str, reference: np.ndarray) -> DriftConfig:
    """river's defaults (every score fed), for comparison with the calibrated setting."""
    if kind not in DETECTORS:
        raise ValueError(f"unknown drift detector {kind!r}: choose one of {', '.join(DETECTORS)}")
    return DriftConfig(kind, dict(LIBRARY_DEFAULTS[kind]), ReferenceCDF.from_scores(reference),
                       target_ert=0, calibrated=False)  # fmt: skip


def calibrate(
    kind: str,
    reference: np.ndarray,
    target_ert: int = 1_000_000,
    seed: int = 0,
    runs: int = 64,
    run_length: int | None = None,
    stride: int | None = None,
) -> DriftConfig:
    """A ``kind`` detector whose expected run time between false alarms on scores like ``reference``
    is at least ``target_ert`` scores (estimated by simulation).

    ``reference``: the scores the detector will see while nothing drifts (the model's validation
    scores of normal rows that do not alert). ``run_length`` defaults to a fifth of the target (at
    most 200,000): long enough to include the detector's steady state, short enough to be cheap.
    """
    if kind not in DETECTORS:
        raise ValueError(f"unknown drift detector {kind!r}: choose one of {', '.join(DETECTORS)}")
    if target_ert < 100:
        raise ValueError("target_ert must be at least 100 scores")
    ref = ReferenceCDF.from_scores(reference)
    pool = ref.transform(np.asarray(reference, dtype=np.float64))
    pool = pool[np.isfinite(np.asarray(reference, dtype=np.float64))]
    every = stride or (KSWIN_STRIDE if kind == "kswin" else 1)
    horizon = run_length or int(max(min(target_ert // 5, 200_000), _shortest_run(kind, every)))
    fed_length = horizon // every
    share = 1.0 - math.exp(-horizon / target_ert)  # allowed share of runs with an alarm
    rng = np.random.default_rng(seed)
    runs_u = [pool[rng.integers(0, len(pool), fed_length)] for _ in range(runs)]
    if kind == "adwin":
        params, alarmed = _calibrate_adwin(runs_u, share)
    elif kind == "page_hinkley":
        params, alarmed = _calibrate_page_hinkley(np.stack(runs_u), share)
    else:
        params, alarmed = _calibrate_kswin(np.stack(runs_u), share, seed)
    estimated = math.inf if alarmed == 0 else -horizon / math.log(1.0 - alarmed / runs)
    simulation = {"runs": runs, "run_length": horizon, "seed": seed, "alarmed_runs": alarmed,
                  "allowed_share": round(share, 6)}  # fmt: skip
    return DriftConfig(kind, params, ref, every, target_ert,
                       None if math.isinf(estimated) else round(estimated), True, simulation)  # fmt: skip


def _shortest_run(kind: str, stride: int) -> int:
    """Runs must outlast a detector's warm-up, or its early (lower) false-alarm rate is extrapolated:
    Page-Hinkley's fading sum needs ~5 memories (1 / (1 - alpha)), KSWIN ten windows of fed values."""
    if kind == "page_hinkley":
        return int(5 / (1 - LIBRARY_DEFAULTS["page_hinkley"]["alpha"]))
    if kind == "kswin":
        return 10 * LIBRARY_DEFAULTS["kswin"]["window_size"] * stride
    return 2_000


# -- ADWIN ----------------------------------------------------------------------------------------
def _calibrate_adwin(runs_u: list[np.ndarray], share: float) -> tuple[dict[str, Any], int]:
    base = {k: v for k, v in LIBRARY_DEFAULTS["adwin"].items() if k != "delta"}
    # deepest[r]: index of the smallest grid delta that still alarms within run r (-1: none does).
    deepest = np.array([_adwin_descent(u, base) for u in runs_u])
    allowed = math.floor(share * len(runs_u) + 1e-9)
    for j, delta in enumerate(ADWIN_GRID):  # from the most sensitive (largest) delta down
        alarmed = int(np.sum(deepest >= j))
        if alarmed <= allowed:
            return {**base, "delta": float(delta)}, alarmed
    return {**base, "delta": float(ADWIN_GRID[-1])}, int(np.sum(deepest >= len(ADWIN_GRID) - 1))


def _adwin_descent(values: np.ndarray, base: dict[str, Any]) -> int:
    """Follow one run down ADWIN_GRID: the deepest grid index whose ADWIN alarms within the run."""
    data = values.tolist()
    j = 0
    detector = make_river_detector("adwin", {**base, "delta": float(ADWIN_GRID[0])})
    # The state before the first alarm, every SNAPSHOT_EVERY values, and the delta it was taken under.
    snapshot, snap_at, snap_delta = detector._helper.__getstate__(), 0, float(ADWIN_GRID[0])
    t = 0
    while t < len(data):
        update = detector.update
        stop = min(len(data), snap_at + SNAPSHOT_EVERY)
        alarm = -1
        for i in range(t, stop):
            update(data[i])
            if detector._drift_detected:
                alarm = i
                break
        if alarm < 0:
            t = stop
            snapshot, snap_at, snap_delta = detector._helper.__getstate__(), stop, float(ADWIN_GRID[j])
            continue
        # Alarm under grid[j]: every smaller delta shares the state up to the snapshot; replay from it.
        if j + 1 == len(ADWIN_GRID):
            return j
        j += 1
        detector = adwin_with_delta(snapshot, snap_delta, float(ADWIN_GRID[j]), base)
        t = snap_at
    return j - 1


# -- Page-Hinkley ---------------------------------------------------------------------------------
def page_hinkley_statistic(values: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """river's Page-Hinkley statistic (both directions) at every step of each row of ``values``;
    zero before ``min_instances``. Vectorised over rows: the fading sum is a first-order filter."""
    values = np.atleast_2d(values)
    alpha, delta = params["alpha"], params["delta"]
    steps = np.arange(1, values.shape[1] + 1)
    mean = np.cumsum(values, axis=1) / steps
    dev = values - mean
    up = sp_signal.lfilter([1.0], [1.0, -alpha], dev - delta, axis=1)
    down = sp_signal.lfilter([1.0], [1.0, -alpha], dev + delta, axis=1)
    test_up = up - np.minimum.accumulate(up, axis=1)
    test_down = np.maximum(np.maximum.accumulate(down, axis=1), -1.0) - down
    statistic = np.maximum(test_up, test_down)
    statistic[:, : params["min_instances"] - 1] = 0.0
    return statistic


def _calibrate_page_hinkley(runs_u: np.ndarray, share: float) -> tuple[dict[str, Any], int]:
    params = dict(LIBRARY_DEFAULTS["page_hinkley"])
    maxima = np.concatenate([page_hinkley_statistic(chunk, params).max(axis=1)
                             for chunk in np.array_split(runs_u, max(1, len(runs_u) // 8))])  # fmt: skip
    allowed = math.floor(share * len(maxima) + 1e-9)
    ordered = np.sort(maxima)[::-1]
    # river alarms when the statistic exceeds the threshold: sit on the (allowed+1)-th largest maximum.
    threshold = float(ordered[allowed]) if allowed < len(ordered) else 0.0
    return {**params, "threshold": threshold}, int(np.sum(maxima > threshold))


# -- KSWIN ----------------------------------------------------------------------------------------
def kswin_critical_pvalues(stat_size: int) -> np.ndarray:
    """p-value of scipy's exact two-sample KS test (as KSWIN calls it) when D = k / stat_size."""
    base = np.arange(stat_size, dtype=np.float64)
    with warnings.catch_warnings():  # scipy falls back to the asymptotic p-value for the extremes
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.array([1.0] + [sp_stats.ks_2samp(base, base + k, method="auto").pvalue
                                 for k in range(1, stat_size + 1)])  # fmt: skip


def kswin_statistics(values: np.ndarray, window: int, stat: int, rng: np.random.Generator) -> np.ndarray:
    """KSWIN's D * stat at each full-window step of one sequence (random old sub-sample as river)."""
    windows = np.lib.stride_tricks.sliding_window_view(values, window)
    old_n = window - stat
    pick = np.argsort(rng.random((len(windows), old_n)), axis=1)[:, :stat]
    old = np.take_along_axis(windows[:, :old_n], pick, axis=1)
    both = np.concatenate([old, windows[:, old_n:]], axis=1)
    order = np.argsort(both, axis=1, kind="stable")
    ordered = np.take_along_axis(both, order, axis=1)
    steps = np.where(order < stat, 1, -1)
    walk = np.cumsum(steps, axis=1)
    # Only where the next value differs (ties move together), as scipy evaluates the ECDFs.
    last_of_tie = np.ones_like(walk, dtype=bool)
    last_of_tie[:, :-1] = ordered[:, 1:] != ordered[:, :-1]
    return np.max(np.abs(walk) * last_of_tie, axis=1)


def _calibrate_kswin(runs_u: np.ndarray, share: float, seed: int) -> tuple[dict[str, Any], int]:
    params = dict(LIBRARY_DEFAULTS["kswin"])
    window, stat = params["window_size"], params["stat_size"]
    rng = np.random.default_rng(seed + 1)
    maxima = np.array([kswin_statistics(run, window, stat, rng).max() for run in runs_u])
    allowed = math.floor(share * len(maxima) + 1e-9)
    pvalues = kswin_critical_pvalues(stat)
    for k in range(1, stat + 1):
        if np.sum(maxima >= k) <= allowed:
            # Detect from D = k/stat on: alpha between p(k) (detects) and p(k - 1) (does not).
            alpha = math.sqrt(pvalues[k] * pvalues[k - 1])
            return {**params, "alpha": alpha}, int(np.sum(maxima >= k))
    return {**params, "alpha": float(pvalues[stat])}, int(np.sum(maxima >= stat))


# -- checking a setting ---------------------------------------------------------------------------
def false_alarms(config: DriftConfig, reference: np.ndarray, events: int, seed: int = 1) -> list[int]:
    """Indices of the alarms a detector raises on ``events`` scores resampled from ``reference``
    (held-out check of a calibration: use another seed than the calibration's)."""
    scores = np.asarray(reference, dtype=np.float64)
    rng = np.random.default_rng(seed)
    drift = ScoreDrift(replace(config))
    alarms: list[int] = []
    for start in range(0, events, 1_000_000):
        chunk = scores[rng.integers(0, len(scores), min(1_000_000, events - start))]
        alarms += [start + i for i in drift.update_many(chunk)]
    return alarms
