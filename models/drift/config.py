"""What a calibrated drift detector is: its kind, river arguments, the reference it was set on.

Scores of different models live on different scales (a reconstruction error, an isolation depth, a
log-likelihood) and are heavy-tailed. Every detector therefore watches the score's position in the
model's own validation scores, ``u = F_ref(score)`` (mid-rank empirical CDF), which is close to
uniform on ``[0, 1]`` while nothing drifts, whatever the model. One huge score moves ``u`` by at most
its rank, not by its magnitude, and ADWIN's Hoeffding-style bound (which assumes values in
``[0, 1]``) holds.

>>> ref = ReferenceCDF.from_scores(np.arange(1000.0))
>>> [round(float(u), 2) for u in ref.transform(np.array([-5.0, 499.5, 2e9]))]
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

DETECTORS = ("adwin", "kswin", "page_hinkley")
GRID = 2001  # reference quantiles kept: the transform's resolution is 1/2000


@dataclass(frozen=True)
class ReferenceCDF:
    """Mid-rank empirical CDF of reference scores, kept as a grid of quantiles (small, JSON-able)."""

    quantiles: tuple[float, ...]

    @classmethod
    def from_scores(cls, scores: np.ndarray, grid: int = GRID) -> ReferenceCDF:
        scores = np.asarray(scores, dtype=np.float64)
        scores = scores[np.isfinite(scores)]
        if scores.size < 100:
            raise ValueError(
                f"drift calibration needs at least 100 reference scores, got {scores.size}: "
                "retrain the model so the registry keeps its calibration scores"
            )
        return cls(tuple(np.quantile(scores, np.linspace(0.0, 1.0, grid)).tolist()))

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Each score's mid-rank position in the reference, in ``[0, 1]``."""
        q = self._array
        low = np.searchsorted(q, scores, side="left")
        high = np.searchsorted(q, scores, side="right")
        return (low + high) / (2.0 * len(q))

    @property
    def _array(self) -> np.ndarray:
        cached = self.__dict__.get("_cache")
        if cached is None:
            cached = np.asarray(self.quantiles, dtype=np.float64)
            object.__setattr__(self, "_cache", cached)
        return cached


@dataclass(frozen=True)
class DriftConfig:
    """A detector set to a target expected run time (ERT) between false alarms.

    ``params`` are the river constructor arguments; ``stride`` feeds the detector every stride-th
    score only (KSWIN runs a two-sample test per update: see :mod:`models.drift.calibration`);
    ``estimated_ert`` is what the calibration simulation measured, in scores; ``calibrated`` is False
    for river's library defaults (kept for comparison in the benchmark).
    """

    kind: str
    params: dict[str, Any]
    reference: ReferenceCDF
    stride: int = 1
    target_ert: int = 1_000_000
    estimated_ert: float | None = None
    calibrated: bool = True
    simulation: dict[str, Any] = field(default_factory=dict)  # runs, run length, seed, per-run alarms

    def __post_init__(self) -> None:
        if self.kind not in DETECTORS:
            raise ValueError(f"unknown drift detector {self.kind!r}: choose one of {', '.join(DETECTORS)}")
        if self.stride < 1:
            raise ValueError("stride must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftConfig:
        data = dict(data)
        data["reference"] = ReferenceCDF(tuple(data["reference"]["quantiles"]))
        return cls(**data)
