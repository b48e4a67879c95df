"""Windowed detectors for sensor series, trained on the early normal part of each series.

The training part of a series is NAB's probationary period (its first 15%, at most 750 rows): a
detector scoring NAB may learn from it, and no anomaly there is ever counted. Its complete windows
(:mod:`stream.windows`, stride 1) are cut in time order, never shuffled across the cuts, so the
early-stopping and calibration windows come after the windows the model learns from (neighbouring
blocks share only the ``window - 1`` rows at their border)::

    probation windows:  |------------- fit (70%) -------------|-- early stop (15%) --|-- calib (15%) --|

The :class:`~models.features.WindowEncoder` (one min-max range) and the detector are fitted on the fit
windows, early stopping watches the middle block, and the alert threshold and the calibration scores
(which the NAB benchmark scales raw scores by) come from the last block. Nothing after the
probationary period is read.

>>> from stream.datasets.sensor import load_nab_series           # doctest: +SKIP
>>> series = load_nab_series(data_dir, "nyc_taxi")              # doctest: +SKIP
>>> model = fit_windowed([series], "seq_ae", window=16)           # doctest: +SKIP
>>> model.score(series.values).shape   # one raw score per complete window, stride 1  # doctest: +SKIP
(10305,)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.base import KerasDetector
from models.features import WindowEncoder
from models.registry import ModelRef, Registry
from models.thresholds import Threshold, threshold_for
from models.zoo import detector_class
from stream.datasets.sensor import SensorSeries, load_sensor_series
from stream.windows import sliding_windows, window_end_rows

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 16
SENSOR_DETECTORS = ("seq_ae", "ae", "hst")
CUTS = (0.70, 0.85)  # fit | early stop | calibration, as fractions of the probation windows
MIN_WINDOWS = 40
# A probation holds a few hundred windows: a Keras epoch over them is a handful of steps, and the
# fixed cost of an epoch (validation, callbacks) would dominate. Deep detectors see the fit windows
# repeated up to this many rows per epoch, so early stopping judges every ~30 steps instead.
EPOCH_ROWS = 4096


def default_params(detector: str, window: int, n_fit: int, seed: int = 0) -> dict[str, Any]:
    """Constructor arguments sized for a few hundred short windows (the class defaults suit KDD)."""
    deep = {"epochs": 15, "batch_size": 128, "patience": 3, "verbose": 0, "seed": seed}
    if detector == "seq_ae":
        return {**deep, "filters": [16, 8], "kernel_size": 5, "latent": max(4, window // 8)}
    if detector == "ae":
        return {**deep, "hidden": [max(8, window // 2), max(4, window // 8)]}
    if detector == "hst":
        # A reference window of every fit row there is (up to river's default of 250).
        return {"n_trees": 25, "height": 8, "window_size": min(250, n_fit), "seed": seed}
    return {"seed": seed}


def fit_window_count(rows: int, window: int) -> int:
    """How many of the first windows of ``rows`` training rows the detector is fitted on."""
    return int(len(window_end_rows(rows, window)) * CUTS[0])


@dataclass(frozen=True)
class ProbationWindows:
    """The complete windows of the training part of one or more series, cut in time order."""

    fit: np.ndarray
    early_stop: np.ndarray
    calibration: np.ndarray

    @classmethod
    def of(cls, series: Sequence[SensorSeries], window: int, rows: int | None = None) -> ProbationWindows:
        """Windows inside the first ``rows`` rows (default: each series' probation) of every series."""
        parts: list[list[np.ndarray]] = [[], [], []]
        for item in series:
            limit = item.probation if rows is None else min(rows, len(item))
            windows = sliding_windows(item.values[:limit], window)
            if len(windows) < MIN_WINDOWS:
                raise ValueError(
                    f"{item.name}: only {len(windows)} windows of {window} rows in its first {limit} rows "
                    f"(at least {MIN_WINDOWS} needed): use a shorter --window"
                )
            cut1, cut2 = (int(len(windows) * c) for c in CUTS)
            for part, block in zip(parts, (windows[:cut1], windows[cut1:cut2], windows[cut2:]), strict=True):
                part.append(block)
        fit, early_stop, calibration = (np.concatenate(p) for p in parts)
        return cls(fit, early_stop, calibration)


@dataclass
class WindowedModel:
    """A fitted windowed detector: encoder, detector, threshold, and its calibration scores."""

    detector_name: str
    window: int
    encoder: WindowEncoder
    detector: Any
    threshold: Threshold
    calibration_scores: np.ndarray
    fit_seconds: float
    training: dict[str, Any] = field(default_factory=dict)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """Raw detector scores of ``(n, window)`` windows, exactly as the worker computes them."""
        if not len(windows):
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.detector.score(self.encoder.transform(windows)), dtype=np.float64)

    def score(self, values: np.ndarray, stride: int = 1) -> np.ndarray:
        """Raw scores of every complete window of a series (see :func:`stream.windows.window_end_rows`)."""
        return self.score_windows(sliding_windows(values, self.window, stride))


def fit_windowed(
    series: Sequence[SensorSeries],
    detector: str = "seq_ae",
    window: int = DEFAULT_WINDOW,
    scaling: str = "global",
    fpr: float = 0.01,
    seed: int = 0,
    detector_params: dict[str, Any] | None = None,
    threshold: str = "quantile",
    threshold_params: dict[str, Any] | None = None,
    rows: int | None = None,
) -> WindowedModel:
    """Fit encoder, detector and threshold on the probation windows of ``series`` (see module doc).

    ``rows`` trains on the first ``rows`` rows of each series instead of NAB's probationary period.
    """
    if threshold == "fbeta":
        raise ValueError("fbeta needs labelled validation data; the probationary period has no labels")
    parts = ProbationWindows.of(series, window, rows)
    encoder = WindowEncoder(window, scaling).fit(parts.fit)
    fit_rows, stop_rows = encoder.transform(parts.fit), encoder.transform(parts.early_stop)
    params = {**default_params(detector, window, len(fit_rows), seed), **(detector_params or {})}
    model = detector_class(detector)(**params)
    started = time.perf_counter()
    if isinstance(model, KerasDetector) and len(fit_rows) < EPOCH_ROWS:
        fit_rows = np.tile(fit_rows, (EPOCH_ROWS // len(fit_rows), 1))
    model.fit(fit_rows, stop_rows)
    fit_seconds = time.perf_counter() - started
    calibration = np.asarray(model.score(encoder.transform(parts.calibration)), dtype=np.float64)
    fitted = threshold_for(threshold, fpr, threshold_params).fit(calibration)
    training = {
        "data": [item.name for item in series],
        "window": window,
        "scaling": scaling,
        "rows": {
            "training_rows": {item.name: item.probation if rows is None else rows for item in series},
            "fit": len(parts.fit),
            "early_stop": len(parts.early_stop),
            "calibration": len(parts.calibration),
        },
        "params": params,
        "seed": seed,
    }
    return WindowedModel(detector, window, encoder, model, fitted, calibration, fit_seconds, training)


def train_sensor(
    registry: Registry,
    data_dir: Path,
    series: str | None = None,
    bearing: bool = False,
    detector: str = "seq_ae",
    window: int = DEFAULT_WINDOW,
    fpr: float = 0.01,
    seed: int = 0,
    detector_params: dict[str, Any] | None = None,
    promote: bool | None = None,
    threshold: str = "quantile",
    threshold_params: dict[str, Any] | None = None,
    scaling: str = "global",
    training_rows: int | None = None,
) -> ModelRef:
    """Train a windowed detector on a series' probationary part; save it as stream ``sensor``.

    The worker then scores ``sensor.windows`` messages of exactly ``window`` values with it (replay
    with the same ``--window``). ``training_rows`` replaces NAB's probationary period (e.g. the
    bearing tutorial's 445 rows). The calibration scores are kept in the manifest, so a consumer of
    the scores topic can map raw scores to NAB's [0, 1] scale as the benchmark does.
    """
    chosen = load_sensor_series(data_dir, series, bearing)
    model = fit_windowed(
        chosen,
        detector,
        window,
        scaling,
        fpr,
        seed,
        detector_params,
        threshold,
        threshold_params,
        training_rows,
    )
    training = {
        **model.training,
        "fit_seconds": round(model.fit_seconds, 2),
        "calibration_scores": model.calibration_scores.tolist(),
    }
    # Compared with the cut, not through predict(): a sliding threshold's predict() moves its window,
    # and the saved threshold must be the one fitted on the calibration scores.
    cut = model.threshold.threshold_
    metrics = {"calibration_fpr": float(np.mean(model.calibration_scores >= cut))}
    ref = registry.save("sensor", model.detector, model.encoder, model.threshold, training, metrics, promote)
    log.info(
        "trained sensor/%s v%d on %s (window %d) in %.1fs",
        detector,
        ref.version,
        ", ".join(training["data"]),
        window,
        model.fit_seconds,
    )
    return ref
