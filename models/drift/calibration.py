"""Setting a drift detector's sensitivity from the model's own validation scores.

A false alarm is a detection on a stream that has not changed. The target is an expected run time
(ERT) between false alarms, e.g. one per 1,000,000 scores, as alibi-detect sets its online
detectors' thresholds. Under no drift the scores a detector sees are draws from the validation
scores, so the calibration simulates that: ``runs`` independent bootstrap streams of ``run_length``
scores resampled from the reference, each through the detector, recording for each run its
*critical* setting, the most sensitive one at which the run raises no alarm. With a false-alarm
hazard of ``1 / ERT``, a run of length ``H`` alarms with probability ``F* = 1 - exp(-H / ERT)``; the
setting is the quantile of the critical settings that lets a share ``F*`` of runs alarm. When fewer
than 8 runs may alarm (a strict target), the quantile is extrapolated from an exponential tail
fitted to the 16 most extreme runs (peaks over threshold), rather than simulating ~10 x ERT scores.

* ADWIN (``delta``): until ADWIN first cuts, its state does not depend on delta, so each run is
  followed down a log-spaced grid of deltas in one pass (snapshots of the Rust state; see
  :func:`models.drift.score_drift.adwin_with_delta`): every grid delta's verdict for the cost of one
  run. Critical setting: ``-log(delta)`` of the first grid delta at which the run stays silent.
* Page-Hinkley (``threshold``): the statistic is a fading cumulative sum, computed for all runs at
  once (numpy; the same recursion as river's, checked by a test); critical: the run's maximum.
* KSWIN (``alpha``): a two-sample KS test of 30 recent values against 30 of the 70 before them.
  With 30 against 30 the statistic takes the values k/30 and its p-value is a decreasing function of
  k, so the critical setting is one more than the run's largest k and alpha sits between the p-values
  of the chosen k and the one below. One scipy test costs ~150 us, so KSWIN sees every ``stride``-th
  score (64: ~2.3 us per score).

The bootstrap draws scores independently: real traffic is autocorrelated, which no resampling of
shuffled validation rows can reproduce; the benchmark measures false alarms on real ordered streams.
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


def ert_for_risk(events: int, risk: float) -> int:
    """The expected run time at which a stable stream of ``events`` scores raises any false alarm
    with probability ``risk`` (false alarms as a Poisson process).

    >>> ert_for_risk(1_000_000, 0.05)
    19495725
    """
    return int(-events / math.log1p(-risk))


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
    Each run yields its *critical* setting (the most sensitive one at which it stays silent); the
    setting is the right quantile of those, read off the runs when at least 8 of them may alarm, else
    extrapolated with an exponential tail fitted to the 16 most extreme runs (peaks over threshold).
    """
    if kind not in DETECTORS:
        raise ValueError(f"unknown drift detector {kind!r}: choose one of {', '.join(DETECTORS)}")
    if target_ert < 100:
        raise ValueError("target_ert must be at least 100 scores")
    ref = ReferenceCDF.from_scores(reference)
    pool = ref.transform(np.asarray(reference, dtype=np.float64))
    pool = pool[np.isfinite(np.asarray(reference, dtype=np.float64))]
    every = stride or (KSWIN_STRIDE if kind == "kswin" else 1)
    horizon = run_length or _run_length(kind, target_ert, every)
    share = 1.0 - math.exp(-horizon / target_ert)  # allowed share of runs with an alarm
    rng = np.random.default_rng(seed)
    runs_u = np.stack([pool[rng.integers(0, len(pool), horizon // every)] for _ in range(runs)])
    critical = _CRITICAL[kind](runs_u, seed)
    theta, alarmed, tail = _quantile(critical, share)
    params = _PARAMS[kind](theta)
    simulated = alarmed / runs if tail is None else tail["modelled_share"]
    estimated = math.inf if simulated <= 0 else -horizon / math.log1p(-simulated)
    simulation = {"runs": runs, "run_length": horizon, "seed": seed, "alarmed_runs": alarmed,
                  "allowed_share": round(share, 8), "tail": tail}  # fmt: skip
    return DriftConfig(kind, params, ref, every, target_ert,
                       None if math.isinf(estimated) else round(estimated), True, simulation)  # fmt: skip


MIN_ALARMED = 8  # runs that may alarm before the quantile is read off the runs directly
TAIL = 16  # most extreme runs an exponential tail is fitted to


def _quantile(critical: np.ndarray, share: float) -> tuple[float, int, dict[str, float] | None]:
    """The setting theta at which (about) ``share`` of the runs alarm, i.e. have critical > theta."""
    ordered = np.sort(critical)[::-1]
    allowed = math.floor(share * len(ordered) + 1e-9)
    if allowed >= MIN_ALARMED or len(ordered) <= TAIL:
        theta = float(ordered[min(allowed, len(ordered) - 1)])
        return theta, int(np.sum(critical > theta)), None
    top = ordered[:TAIL]
    u = float(ordered[TAIL])
    if not np.isfinite(u):
        raise ValueError("too few simulated runs raised any alarm to fit a tail: raise `runs`")
    scale = max(float(np.mean(top - u)), 1e-12)
    theta = u + scale * math.log((TAIL / len(ordered)) / share)
    modelled = (TAIL / len(ordered)) * math.exp(-(theta - u) / scale)
    return theta, int(np.sum(critical > theta)), {"threshold": u, "scale": scale, "modelled_share": modelled}


def _run_length(kind: str, target_ert: int, stride: int) -> int:
    """Long enough for a detector's false-alarm rate to settle, short enough to be cheap.

    ADWIN's rate is steady from the start (a fifth of the target, at most 200,000). KSWIN needs ten
    windows of fed values. Page-Hinkley's statistic is measured from the lowest point of its sum since
    it started, which keeps sinking: its alarm rate grows with the time since its last reset, and runs
    shorter than the target underestimate it (measured: 2x with runs of a fifth), so its runs last
    the whole target, up to 2,000,000 scores (vectorised, ~1 s per 64 runs of 1,000,000).
    """
    if kind == "page_hinkley":
        return int(min(max(target_ert, 50_000), 2_000_000))
    if kind == "kswin":
        return int(max(min(target_ert // 5, 200_000), 10 * LIBRARY_DEFAULTS["kswin"]["window_size"] * stride))
    return int(max(min(target_ert // 5, 200_000), 2_000))


# -- ADWIN ----------------------------------------------------------------------------------------
def _adwin_critical(runs_u: np.ndarray, seed: int) -> np.ndarray:
    """-log(delta) of the first grid delta at which each run stays silent (-inf: silent at all)."""
    base = {k: v for k, v in LIBRARY_DEFAULTS["adwin"].items() if k != "delta"}
    deepest = np.array([_adwin_descent(u, base) for u in runs_u])
    quiet = np.r_[ADWIN_GRID[1:], ADWIN_GRID[-1] / 1.25]  # the grid delta after the deepest alarmed
    return np.where(deepest >= 0, -np.log(quiet[np.maximum(deepest, 0)]), -np.inf)


def _adwin_params(theta: float) -> dict[str, Any]:
    return {**LIBRARY_DEFAULTS["adwin"], "delta": float(min(math.exp(-theta), 0.9))}


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


def _page_hinkley_critical(runs_u: np.ndarray, seed: int) -> np.ndarray:
    """Each run's largest statistic: river alarms when the statistic exceeds the threshold."""
    params = LIBRARY_DEFAULTS["page_hinkley"]
    return np.concatenate([page_hinkley_statistic(chunk, params).max(axis=1)
                           for chunk in np.array_split(runs_u, max(1, len(runs_u) // 8))])  # fmt: skip


def _page_hinkley_params(theta: float) -> dict[str, Any]:
    return {**LIBRARY_DEFAULTS["page_hinkley"], "threshold": float(theta)}


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


def _kswin_critical(runs_u: np.ndarray, seed: int) -> np.ndarray:
    """One more than each run's largest D * stat_size: KSWIN alarms from k = that on."""
    window, stat = LIBRARY_DEFAULTS["kswin"]["window_size"], LIBRARY_DEFAULTS["kswin"]["stat_size"]
    rng = np.random.default_rng(seed + 1)
    return np.array([kswin_statistics(run, window, stat, rng).max() + 1.0 for run in runs_u])


def _kswin_params(theta: float) -> dict[str, Any]:
    params = dict(LIBRARY_DEFAULTS["kswin"])
    stat = params["stat_size"]
    k = int(min(max(math.ceil(theta - 1e-9), 1), stat))
    pvalues = kswin_critical_pvalues(stat)
    # Detect from D = k/stat on: alpha between p(k) (detects) and p(k - 1) (does not).
    return {**params, "alpha": float(math.sqrt(pvalues[k] * pvalues[k - 1]))}


_CRITICAL = {"adwin": _adwin_critical, "page_hinkley": _page_hinkley_critical, "kswin": _kswin_critical}
_PARAMS = {"adwin": _adwin_params, "page_hinkley": _page_hinkley_params, "kswin": _kswin_params}


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
