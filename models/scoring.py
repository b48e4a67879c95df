"""A loaded model as a worker uses it: encoder -> detector -> threshold -> explanations.

Scoring is pure: ``score`` judges a batch and changes nothing, so a retried batch is judged the same
way. What learns while scoring (a sliding threshold, Half-Space Trees) learns in ``learn``, which the
worker calls only once the batch's outputs are committed; an online detector learns only the rows that
did not alert, so an attack never becomes normal by being seen (unless it is sequential: the sensor
``context`` detector learns every window, so an anomaly that repeats stops being new). What a
detector can do is the contract's (:mod:`models.detectors.base`): checked with ``isinstance``.

Explanations stay arrays (feature indices and contributions per alerting row) until an alert is
serialised: no Python object per feature per alert on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from models.detectors import Detector
from models.detectors.backend import warm_up_sizes
from models.detectors.base import KerasDetector, MemberHolder, OnlineDetector, SequentialDetector, explainer
from models.features import FeatureEncoder
from models.learnt_normal import LearntNormal
from models.model_id import Manifest, ModelId
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
    top_index: np.ndarray  # (alerts, k) int: feature indices, largest contribution first
    top_values: np.ndarray  # (alerts, k) float: their contributions
    feature_names: list[str] = field(default_factory=list)
    encoded: np.ndarray | None = None  # the encoded rows, kept only when the detector learns online

    @cached_property
    def top_features(self) -> list[list[FeatureContribution]]:
        """The top features as message structs (for callers that want objects, not the hot path)."""
        names = self.feature_names
        return [
            [FeatureContribution(names[i], v) for i, v in zip(idx, vals, strict=True)]
            for idx, vals in zip(self.top_index.tolist(), self.top_values.tolist(), strict=True)
        ]


@dataclass
class ScoringModel:
    """One registry version of a stream's model, loaded as a worker serves it.

    ``score`` encodes a raw batch, scores it in one detector call, applies the fitted threshold and
    explains only the rows that alert; it changes nothing. ``learn`` is where a learning threshold or
    an online detector moves, called only with a committed batch's scores. Built by
    ``Registry.load``, verified against its manifest.
    """

    stream: str
    detector_name: str
    version: int
    encoder: FeatureEncoder
    detector: Detector
    threshold: Threshold
    manifest: Manifest = field(default_factory=lambda: Manifest())
    calibration_scores: np.ndarray | None = None  # the detector's scores of held-out normal rows
    learnt_normal: LearntNormal | None = None  # normal traffic learnt after a drift (an adapted model)

    @property
    def model_id(self) -> ModelId:
        return ModelId(self.detector_name, self.version)

    @property
    def feature_names(self) -> list[str]:
        return list(self.encoder.feature_names_)

    @property
    def detector_learns(self) -> bool:
        return isinstance(self.detector, OnlineDetector)

    @property
    def learns(self) -> bool:
        """Whether committed batches move this model (a learning threshold, an online detector)."""
        return self.threshold.learns or self.detector_learns

    def score(self, raw: Any) -> BatchScores:
        """Score a raw batch in ONE detector call; explain only the rows that alert."""
        return self.score_encoded(self.encoder.transform(raw))

    def score_encoded(self, X: np.ndarray) -> BatchScores:
        """Score an encoded batch (what ``encoder.transform`` returned)."""
        explain = explainer(self.detector)
        if isinstance(self.detector, SequentialDetector):  # in the context of the batches scored before
            scores, contributions = self.detector.score_next(X), None
        elif explain is not None:
            scores, contributions = explain(X)
        else:
            scores, contributions = self.detector.score(X), None
        scores = np.asarray(scores, dtype=np.float64)
        if self.learnt_normal is not None:
            scores = self.learnt_normal.adjust(X, scores, self.threshold.threshold_)
        is_alert = self.threshold.classify(scores)
        rows = np.flatnonzero(is_alert)
        names = self.encoder.feature_names_
        if contributions is not None and rows.size:
            top_index, top_values = top_contributions(np.asarray(contributions)[rows])
        else:
            top_index, top_values = np.zeros((rows.size, 0), np.int64), np.zeros((rows.size, 0))
        severities = self.threshold.severity(scores[rows]) if rows.size else []
        encoded = X if self.detector_learns else None
        return BatchScores(scores, is_alert, rows, severities, top_index, top_values, names, encoded)

    def judge(self, X: np.ndarray) -> np.ndarray:
        """The model's scores of encoded rows, as the worker gives them (learnt normal applied), without
        explanations: what evaluations and the shadow gate compare."""
        scores = np.asarray(self.detector.score(X), dtype=np.float64)
        if self.learnt_normal is not None:
            scores = self.learnt_normal.adjust(X, scores, self.threshold.threshold_)
        return scores

    @property
    def served_by_keras(self) -> bool:
        """Whether scoring runs through Keras (a Keras detector, or an ensemble with one among its
        members), rather than NumPy, scikit-learn or river."""
        members = self.detector.members_ if isinstance(self.detector, MemberHolder) else [self.detector]
        return any(isinstance(member, KerasDetector) for member in members)

    def warm_up(self, max_batch: int = 1) -> None:
        """Run the detector once per batch size it compiles for, up to ``max_batch`` (see
        :func:`~models.detectors.backend.warm_up_sizes`), so compilation happens before the first
        event. A model that Keras does not serve is called once, and Keras is not imported."""
        sizes = warm_up_sizes(max_batch) if self.served_by_keras else (1,)
        width = len(self.encoder.feature_names_)
        for n in sizes:
            self.detector.score(np.zeros((n, width), np.float32))

    def learn(self, scored: BatchScores | np.ndarray) -> None:
        """Learn from a committed batch, in stream order: the threshold its scores, an online detector
        its rows that did not alert. (A bare score array teaches the threshold only.)"""
        if isinstance(scored, np.ndarray):
            self.threshold.learn(scored)
            return
        self.threshold.learn(scored.scores)
        if isinstance(self.detector, OnlineDetector) and scored.encoded is not None:
            # A sequential detector learns every window it scored, in order (repeated anomalies stop
            # being new); its scores of a batch assumed exactly that.
            sequential = isinstance(self.detector, SequentialDetector)
            rows = scored.encoded if sequential else scored.encoded[~scored.is_alert]
            self.detector.learn(rows)


def top_contributions(contributions: np.ndarray, k: int = TOP_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest contributions of each row, largest first.

    >>> index, values = top_contributions(np.array([[0.1, 0.5, 0.2]]), k=2)
    >>> index.tolist(), values.tolist()
    ([[1, 2]], [[0.5, 0.2]])
    """
    k = min(k, contributions.shape[1])
    part = np.argpartition(-contributions, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(contributions, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)
