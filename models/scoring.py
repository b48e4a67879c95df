"""A loaded model as a worker uses it: encoder -> detector -> threshold -> explanations.

Scoring is pure: ``score`` judges a batch and changes nothing, so a retried batch is judged the same
way. What learns while scoring (a sliding threshold) learns in ``learn``, which the worker calls only
once the batch's outputs are committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.detectors import Detector
from models.features import FeatureEncoder
from models.thresholds import Threshold
from stream.messages import FeatureContribution

TOP_FEATURES = 5


@dataclass(frozen=True)
class BatchScores:
    """Scores of one batch; severities and top features only for the alerting rows."""

    scores: np.ndarray  # (n,) float
    is_alert: np.ndarray  # (n,) bool
    alert_rows: np.ndarray  # indices of alerting rows
    severities: list[str]  # per alert row
    top_features: list[list[FeatureContribution]]  # per alert row, largest first


@dataclass
class ScoringModel:
    stream: str
    detector_name: str
    version: int
    encoder: FeatureEncoder
    detector: Detector
    threshold: Threshold
    manifest: dict[str, Any] = field(default_factory=dict)
    calibration_scores: np.ndarray | None = None  # the detector's scores of held-out normal rows

    @property
    def feature_names(self) -> list[str]:
        return list(self.encoder.feature_names_)

    @property
    def learns(self) -> bool:
        """Whether committed scores move this model (a learning threshold)."""
        return self.threshold.learns

    def score(self, raw: Any) -> BatchScores:
        """Score a raw batch in ONE detector call; explain only the rows that alert."""
        X = self.encoder.transform(raw)
        explain = getattr(self.detector, "explain", None)
        if explain is not None:
            scores, contributions = explain(X)
        else:
            scores, contributions = self.detector.score(X), None
        scores = np.asarray(scores, dtype=np.float64)
        is_alert = self.threshold.classify(scores)
        rows = np.flatnonzero(is_alert)
        top: list[list[FeatureContribution]] = [[] for _ in rows]
        if contributions is not None and rows.size:
            top = top_contributions(contributions[rows], self.feature_names)
        return BatchScores(scores, is_alert, rows, self.threshold.severity(scores[rows]), top)

    def learn(self, scores: np.ndarray) -> None:
        """Learn from the scores of a committed batch, in stream order."""
        self.threshold.learn(scores)


def top_contributions(
    contributions: np.ndarray, names: list[str], k: int = TOP_FEATURES
) -> list[list[FeatureContribution]]:
    """The ``k`` largest contributions of each row, largest first."""
    k = min(k, contributions.shape[1])
    part = np.argpartition(-contributions, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(contributions, part, axis=1)
    order = np.argsort(-values, axis=1)
    part, values = np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)
    # Index a names array once for the whole batch instead of looking names up row by row, and
    # build the alert's contribution objects directly (no intermediate tuples).
    top_names = np.asarray(names, dtype=object)[part].tolist()
    return [
        [FeatureContribution(n, c) for n, c in zip(row_names, row_values, strict=True)]
        for row_names, row_values in zip(top_names, values.tolist(), strict=True)
    ]
