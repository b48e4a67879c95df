"""Alert thresholds: objects of their own, fitted on validation scores and stored with the model.

Never "max training error", never tuned on test labels.

>>> import numpy as np
>>> normal_val_scores = np.random.default_rng(0).exponential(size=10_000)
>>> t = QuantileThreshold(fpr=0.01).fit(normal_val_scores)
>>> round(float(np.mean(t.predict(normal_val_scores))), 3)
0.01
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

SEVERITIES = ("low", "medium", "high", "critical")


class Threshold:
    """Base: a fitted ``threshold_``; ``predict`` flags scores at or above it; severities by ratio.

    Severity grows with how far a score is beyond the threshold: ``ratios`` are the multiples of
    the threshold where low, medium, high and critical begin.
    """

    kind: ClassVar[str] = "fixed"
    threshold_: float  # set by fit() (or by the constructor of FixedThreshold)

    def __init__(self, ratios: tuple[float, ...] = (1.0, 2.0, 5.0, 20.0)) -> None:
        self.ratios = tuple(ratios)

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) >= self.threshold_

    def severity(self, scores: np.ndarray) -> list[str]:
        """Severity of each score (scores below the threshold get "low" too; filter with predict)."""
        ratio = np.asarray(scores, dtype=np.float64) / max(self.threshold_, 1e-12)
        level = np.clip(np.searchsorted(self.ratios, ratio, side="right") - 1, 0, len(SEVERITIES) - 1)
        return [SEVERITIES[i] for i in level]

    def params(self) -> dict[str, Any]:
        return {"ratios": list(self.ratios)}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "threshold": float(self.threshold_), **self.params()}


class FixedThreshold(Threshold):
    kind: ClassVar[str] = "fixed"

    def __init__(self, threshold: float, ratios: tuple[float, ...] = (1.0, 2.0, 5.0, 20.0)) -> None:
        super().__init__(ratios)
        self.threshold_ = float(threshold)


class QuantileThreshold(Threshold):
    """Threshold at the (1 - fpr) quantile of scores of held-out *normal* data."""

    kind: ClassVar[str] = "quantile"

    def __init__(self, fpr: float = 0.01, ratios: tuple[float, ...] = (1.0, 2.0, 5.0, 20.0)) -> None:
        if not 0 < fpr < 1:
            raise ValueError(f"fpr must be in (0, 1), got {fpr}")
        super().__init__(ratios)
        self.fpr = fpr

    def fit(self, normal_scores: np.ndarray, labels: np.ndarray | None = None) -> QuantileThreshold:
        scores = np.asarray(normal_scores, dtype=np.float64)
        if labels is not None:  # a labelled validation split: use its normal part only
            scores = scores[~np.asarray(labels, dtype=bool)]
        if scores.size == 0:
            raise ValueError("no normal validation scores to fit a threshold on")
        self.threshold_ = float(np.quantile(scores, 1.0 - self.fpr, method="higher"))
        self.n_validation_ = int(scores.size)
        return self

    def params(self) -> dict[str, Any]:
        return {**super().params(), "fpr": self.fpr}


THRESHOLDS: dict[str, type[Threshold]] = {"fixed": FixedThreshold, "quantile": QuantileThreshold}


def threshold_from_dict(data: dict[str, Any]) -> Threshold:
    """Rebuild a fitted threshold from its stored form (see ``Threshold.to_dict``)."""
    kind = data.get("kind")
    if kind not in THRESHOLDS:
        raise ValueError(f"unknown threshold kind {kind!r}; known: {sorted(THRESHOLDS)}")
    params = {k: v for k, v in data.items() if k not in ("kind", "threshold")}
    if "ratios" in params:
        params["ratios"] = tuple(params["ratios"])
    cls = THRESHOLDS[kind]
    obj: Threshold = cls(data["threshold"], **params) if cls is FixedThreshold else cls(**params)
    obj.threshold_ = float(data["threshold"])
    return obj
