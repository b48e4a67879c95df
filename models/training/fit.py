"""Fitting: a recipe on training data -> detector + threshold, with the calibration scores kept.

:class:`FittedModel` is the one result type of training, tabular or windowed; the registry stores it
and offline evaluation and the NAB benchmark score with it exactly as a worker will.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.detectors import Detector, detector_class
from models.features import FeatureEncoder
from models.thresholds import Threshold, threshold_for
from models.training.data import TrainingData
from models.training.recipes import Recipe
from stream.errors import ConfigurationError


@dataclass(frozen=True)
class FittedModel:
    """A trained detector with its encoder and threshold, as training leaves it."""

    stream: str
    encoder: FeatureEncoder
    detector: Detector
    threshold: Threshold
    calibration_scores: np.ndarray  # the detector's scores of the held-out normal rows
    fit_seconds: float
    description: dict[str, Any] = field(default_factory=dict)  # data, rows, parameters

    def score(self, raw: Any) -> np.ndarray:
        """Raw detector scores of a raw batch (encoded as the worker encodes it)."""
        if not len(raw):
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.detector.score(self.encoder.transform(raw)), dtype=np.float64)


def fit_threshold(
    kind: str,
    detector: Detector,
    data: TrainingData,
    calibration_scores: np.ndarray,
    fpr: float = 0.01,
    params: dict[str, Any] | None = None,
) -> Threshold:
    """A threshold of ``kind`` fitted on validation scores: those of the held-out normal rows, or for
    ``fbeta`` the labelled validation split. Test data never reaches this function."""
    threshold = threshold_for(kind, fpr, params)
    if kind != "fbeta":
        return threshold.fit(calibration_scores)
    if data.labelled is None or data.labelled_anomaly is None or not data.labelled_anomaly.any():
        raise ConfigurationError(
            f"fbeta needs labelled validation data with anomalies; the {data.stream} training data has "
            "none: use --threshold quantile (or train on rows with labelled anomalies)"
        )
    return threshold.fit(detector.score(data.labelled), data.labelled_anomaly)


def _check_finite(stream: str, detector: str, calibration_scores: np.ndarray, threshold: Threshold) -> None:
    """Refuse a model that would be silently wrong: a ``nan`` score or threshold flags nothing (every
    comparison with nan is false). The data reader refuses non-finite inputs; this catches what an
    encoder or a detector makes of extreme ones (a log of a value below -1, an overflow)."""
    bad = int(np.count_nonzero(~np.isfinite(calibration_scores)))
    cut = float(threshold.threshold_)
    if bad or not np.isfinite(cut):
        raise ConfigurationError(
            f"{stream}/{detector}: training gave {bad:,} non-finite calibration scores and threshold {cut}: "
            "nothing was saved; check the training rows for extreme values (or drop them from [features] log)"
        )


# Constructor arguments that count something: a value below 1 would leave a detector untrained (zero
# epochs, or -1 which Keras reads as "no epochs") or fail deep inside a library.
POSITIVE_PARAMS = ("epochs", "batch_size", "n_estimators", "n_trees", "window_size", "max_samples")


def check_params(detector: str, params: dict[str, Any]) -> None:
    """Refuse parameters that would train nothing, before any data is read or anything is saved.

    >>> check_params("ae", {"epochs": 0})
    Traceback (most recent call last):
    ...
    stream.errors.ConfigurationError: ae: epochs must be a whole number of at least 1, got 0
    """
    for name in POSITIVE_PARAMS:
        if name not in params:
            continue
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(
                f"{detector}: {name} must be a whole number of at least 1, got {value!r}"
            )
    for member in params.get("members") or ():
        if isinstance(member, list | tuple) and len(member) == 2 and isinstance(member[1], dict):
            check_params(f"{detector} member {member[0]}", member[1])


def fit_model(
    data: TrainingData,
    recipe: Recipe,
    threshold: str = "quantile",
    fpr: float = 0.01,
    threshold_params: dict[str, Any] | None = None,
) -> FittedModel:
    """Fit the recipe's detector on the fit rows (early stopping on its own rows), then its threshold."""
    check_params(recipe.detector, recipe.params)
    detector: Detector = detector_class(recipe.detector)(**recipe.params)
    rows = data.fit
    if recipe.repeat_rows and len(rows) < recipe.repeat_rows:
        rows = np.tile(rows, (recipe.repeat_rows // len(rows), 1))
    started = time.perf_counter()
    detector.fit(rows, data.early_stop)
    fit_seconds = time.perf_counter() - started
    calibration_scores = np.asarray(detector.score(data.calibration), dtype=np.float64)
    fitted = fit_threshold(threshold, detector, data, calibration_scores, fpr, threshold_params)
    _check_finite(data.stream, recipe.detector, calibration_scores, fitted)
    description = {**data.description, "fit_seconds": round(fit_seconds, 2), "params": detector.get_params()}
    return FittedModel(
        data.stream, data.encoder, detector, fitted, calibration_scores, fit_seconds, description
    )
