"""The NAB benchmark of the windowed detectors: every series, every profile, NAB's own scoring.

Per series and detector::

    probation (first 15%, <= 750 rows) -> fit encoder + detector + threshold   (:func:`fit_series`)
    every complete window (stride 1)   -> raw score, the same number the worker publishes
    raw scores of windows ending at each row -> NAB anomaly score in [0, 1] (:func:`anomaly_scores`)

then one threshold per profile for the whole corpus (:func:`~models.evaluation.nab.optimize_threshold` (NAB's
optimiser) and the normalised scores next to the published scoreboard. ``DIR/nab.json`` holds the
figures and per-series breakdown, ``DIR/report.md`` the tables, PNGs a few series with their anomaly
windows and detections, ``DIR/raw_scores.npz`` every raw window score (``"<detector>|<series>"``).

For example::

    result = run_benchmark(Path("../shared/data"), Path("eval/nab"))
    result["detectors"]["seq_ae"]["profiles"]["standard"]["score"]
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.detectors import detector_class
from models.evaluation.baselines import BASELINES
from models.evaluation.nab.likelihood import likelihood_scores
from models.evaluation.nab.scoring import CorpusScore
from models.evaluation.nab.sweep import optimize_threshold
from models.scoring import ScoringModel
from models.training.data import fit_window_count, sensor_training_data
from models.training.fit import FittedModel, fit_model
from models.training.recipes import resolve
from models.training.train import DEFAULT_WINDOW
from stream.datasets.nab import NAB_PROFILES, load_profiles, load_published_results, load_windows
from stream.datasets.sensor import SensorSeries, list_nab_series, load_nab_series, nab_root
from stream.windows import per_row_scores, sliding_windows, window_end_rows

log = logging.getLogger(__name__)

MAPPING = "anomaly-likelihood"
SENSOR_DETECTORS = ("context", "seq_ae", "ae", "hst")
ONLINE_BATCH = 64  # windows per scored-then-learnt batch offline (scores do not depend on it)
# Series drawn in the report: a failure with a long lead, a seasonal series, a spike, a traffic sensor.
PLOTTED = (
    "realKnownCause/machine_temperature_system_failure.csv",
    "realKnownCause/nyc_taxi.csv",
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
)


def anomaly_scores(
    raw: np.ndarray, calibration: np.ndarray, n_rows: int, window: int, skip: int
) -> np.ndarray:
    """One NAB anomaly score per row from the raw scores of the windows ending at each row.

    Raw scores are divided by the largest calibration score (held-out probation windows; only the
    likelihood's variance floor depends on the scale), then run through the anomaly likelihood
    (:mod:`models.evaluation.nab.likelihood`), whose first estimate leaves out the ``skip`` windows the model
    was fitted on. Rows before the first complete window score 0.
    """
    scale = float(np.max(calibration)) if len(calibration) and np.max(calibration) > 0 else 1.0
    mapped = likelihood_scores(np.asarray(raw, dtype=np.float64) / scale, skip=skip)
    return per_row_scores(n_rows, window_end_rows(n_rows, window), mapped)


@dataclass
class SeriesRun:
    """One detector on one series: raw window scores, NAB row scores, timings, or why it failed."""

    name: str
    raw: np.ndarray
    scores: np.ndarray
    fit_seconds: float = 0.0
    score_seconds: float = 0.0
    threshold: float | None = None  # the alert threshold fitted on the probation
    error: str | None = None
    trained: int = 0  # first windows a learning detector learnt when fitted (not scored: 0 in raw)


def fit_series(
    series: SensorSeries, detector: str, window: int, seed: int = 0, params: dict[str, Any] | None = None
) -> FittedModel:
    """Encoder, detector and threshold fitted on the probation windows of one series."""
    data = sensor_training_data([series], window)
    return fit_model(data, resolve("sensor", detector, "*", params, seed, window, len(data.fit)))


def run_online(
    series: SensorSeries,
    detector: str,
    window: int = DEFAULT_WINDOW,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    batch: int = ONLINE_BATCH,
) -> SeriesRun:
    """A detector that learns all along, run as a worker runs it: encoder and threshold from the
    probation, then every window in order, in batches, each scored and then learnt (``ScoringModel``).

    Its scores are already NAB anomaly scores (``calibrated``), so no mapping follows. Two ablation
    switches among ``params``: ``frozen`` stops learning after the probation's windows;
    ``whole_file_range`` hands the detector the series' global minimum and maximum (look-ahead, as
    NAB hands HTM, CAD OSE and ARTime), to compare with the published rows on their terms.
    """
    params = dict(params or {})
    frozen, whole_file = params.pop("frozen", False), params.pop("whole_file_range", False)
    if frozen:
        params.update(online=False, freeze_after=len(window_end_rows(series.probation, window)))
    fitted = fit_series(series, detector, window, seed, params)
    windows = fitted.encoder.transform(sliding_windows(series.values, window))
    if whole_file:
        extremes = np.repeat([[series.values.min()], [series.values.max()]], window, axis=1)
        low, high = fitted.encoder.transform(extremes)[:, 0]
        fitted.detector.limits = (float(low), float(high))  # type: ignore[attr-defined]
    model = ScoringModel("sensor", detector, 0, fitted.encoder, fitted.detector, fitted.threshold)
    # The detector has learnt the fit and early-stopping windows (the first of the probation) in
    # fit(); the stream goes on from the next window, as a worker started on the model would. Those
    # windows lie in the probation, which NAB does not score: they score 0 here.
    trained = trained_windows(fitted)
    started = time.perf_counter()
    raw = [np.zeros(trained)]
    for start in range(trained, len(windows), batch):
        scored = model.score_encoded(windows[start : start + batch])
        model.learn(scored)  # committed: learnt once, in order
        raw.append(scored.scores)
    raw_scores = np.concatenate(raw) if raw else np.zeros(0)
    score_seconds = time.perf_counter() - started
    scores = per_row_scores(len(series), window_end_rows(len(series), window), raw_scores)
    threshold = float(fitted.threshold.threshold_)
    return SeriesRun(
        series.name, raw_scores, scores, fitted.fit_seconds, score_seconds, threshold, trained=trained
    )


def trained_windows(fitted: FittedModel) -> int:
    """How many of a series' first windows a learning detector ran through its state when fitted."""
    return int(getattr(fitted.detector, "trained_", 0))


def run_series(
    series: SensorSeries,
    detector: str,
    window: int = DEFAULT_WINDOW,
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> SeriesRun:
    """Fit on the series' probation, score every window, map to NAB scores (a detector that learns
    all along and scores on NAB's scale itself runs through :func:`run_online` instead).

    A detector that cannot be fitted on a series (Half-Space Trees on a constant probation) never
    fires on it; the reason is kept in ``error``.
    """
    if getattr(detector_class(detector), "calibrated", False):
        return run_online(series, detector, window, seed, params)
    n = len(series)
    try:
        model = fit_series(series, detector, window, seed, params)
    except ValueError as exc:
        log.warning("%s on %s: %s; scored as never firing", detector, series.name, exc)
        return SeriesRun(series.name, np.zeros(0), np.zeros(n), error=str(exc))
    started = time.perf_counter()
    raw = model.score(sliding_windows(series.values, window))
    score_seconds = time.perf_counter() - started
    skip = fit_window_count(series.probation, window)
    scores = anomaly_scores(raw, model.calibration_scores, n, window, skip)
    threshold = float(model.threshold.threshold_)
    return SeriesRun(series.name, raw, scores, model.fit_seconds, score_seconds, threshold)


def run_baseline(series: SensorSeries, name: str) -> SeriesRun:
    """A baseline (:mod:`models.evaluation.baselines`) on one series: its row scores from the
    probation on, mapped to NAB scores through the anomaly likelihood as a detector's raw scores are
    (scaled by the largest probation score; the probation's rows left out of the first estimate)."""
    started = time.perf_counter()
    raw, cut = BASELINES[name](series.values, series.probation)
    held = raw[: series.probation]
    scale = float(held.max()) if len(held) and held.max() > 0 else 1.0
    scores = likelihood_scores(raw / scale, skip=series.probation)
    return SeriesRun(series.name, raw, scores, 0.0, time.perf_counter() - started, float(cut))


@dataclass
class DetectorResult:
    name: str
    runs: dict[str, SeriesRun] = field(default_factory=dict)
    profiles: dict[str, CorpusScore] = field(default_factory=dict)


def score_runs(
    runs: dict[str, SeriesRun], series: dict[str, SensorSeries], nab_dir: Path
) -> dict[str, CorpusScore]:
    """NAB score for each profile, one optimised threshold per profile across ``runs``."""
    windows, profiles = load_windows(nab_dir), load_profiles(nab_dir)
    arrays = {name: (series[name].timestamps, run.scores) for name, run in runs.items()}
    return {p: optimize_threshold(arrays, windows, profiles[p]) for p in NAB_PROFILES}


def run_benchmark(
    data_dir: Path,
    out: Path,
    detectors: Sequence[str] = SENSOR_DETECTORS,
    window: int = DEFAULT_WINDOW,
    seed: int = 0,
    names: Sequence[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
    plots: Sequence[str] = PLOTTED,
) -> dict[str, Any]:
    """Run ``detectors`` over the NAB series (all 58 by default); write nab.json, report.md, PNGs.

    Scores are comparable with NAB's published ones only for the full corpus (its normalisation
    counts the windows of the series scored).
    """
    from models.evaluation.nab.report import write_plots, write_report

    started = time.perf_counter()
    root = nab_root(data_dir)
    keys = list(names) if names is not None else list_nab_series(data_dir)
    series = {s.name: s for s in (load_nab_series(data_dir, key) for key in keys)}
    results: dict[str, DetectorResult] = {}
    for detector in detectors:
        result = results[detector] = DetectorResult(detector)
        for i, (name, item) in enumerate(series.items(), 1):
            if progress is not None:
                progress(f"{detector} {i}/{len(series)}: {name}")
            if detector in BASELINES:
                result.runs[name] = run_baseline(item, detector)
            else:
                result.runs[name] = run_series(item, detector, window, seed, (params or {}).get(detector))
        result.profiles = score_runs(result.runs, series, root)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(results, window, seed, len(series), root, time.perf_counter() - started)
    (out / "nab.json").write_text(json.dumps(summary, indent=2))
    raw: dict[str, Any] = {f"{d}|{n}": r.raw for d, res in results.items() for n, r in res.runs.items()}
    np.savez_compressed(out / "raw_scores.npz", **raw)
    pictures = write_plots(out, results, series, [p for p in plots if p in series])
    write_report(out, summary, pictures)
    return summary


def summarise(
    results: dict[str, DetectorResult], window: int, seed: int, n_series: int, nab_dir: Path, seconds: float
) -> dict[str, Any]:
    detectors = {}
    for name, result in results.items():
        runs = result.runs.values()
        detectors[name] = {
            "profiles": {
                profile: {
                    "score": round(score.normalized, 2),
                    "threshold": score.threshold,
                    "raw": score.raw,
                    "detected_windows": sum(s.detected_windows for s in score.per_series),
                    "missed_windows": sum(s.missed_windows for s in score.per_series),
                    "fp_rows": sum(s.fp for s in score.per_series),
                }
                for profile, score in result.profiles.items()
            },
            "fit_seconds": round(sum(r.fit_seconds for r in runs), 1),
            "score_seconds": round(sum(r.score_seconds for r in runs), 2),
            "failed_series": {r.name: r.error for r in runs if r.error},
            "per_series": {
                s.name: {
                    "raw_standard": round(s.raw, 4),
                    "detected_windows": s.detected_windows,
                    "missed_windows": s.missed_windows,
                    "fp_rows": s.fp,
                    "alert_threshold": result.runs[s.name].threshold,
                }
                for s in result.profiles["standard"].per_series
            },
        }
    try:
        published = load_published_results(nab_dir)
    except FileNotFoundError:
        published = {}
    return {
        "benchmark": "NAB v1.1 (58 series, combined_windows.json)",
        "series": n_series,
        "window": window,
        "stride": 1,
        "mapping": MAPPING,
        "training": "probationary period (first 15%, at most 750 rows)",
        "cpu_cores": os.cpu_count(),
        "seed": seed,
        "seconds": round(seconds, 1),
        "detectors": detectors,
        "published": {
            name: {p: round(v, 1) for p, v in scores.items()} for name, scores in published.items()
        },
    }
