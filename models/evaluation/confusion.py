"""The confusion matrix of alerts against ground truth, and the precision / recall / F-scores read
off it: one implementation for the offline evaluation (``metrics.json``), the dashboard and the demo.

Counts come from arrays in one vectorised pass; a figure whose denominator is zero (no alert yet,
no attack yet) is ``None``, never 0.0: "undefined" and "all wrong" are different answers.

>>> c = Confusion.of([True, True, False, False], [True, False, True, False])
>>> (c.tp, c.fp, c.fn, c.tn), c.precision, c.recall, c.f1
((1, 1, 1, 1), 0.5, 0.5, 0.5)
>>> Confusion().precision is None
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from stream.labels import ATTACK, NORMAL, label_classes


@dataclass
class Confusion:
    """True / false positives, false negatives and true negatives (unlabelled events are in none)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @classmethod
    def of(cls, flagged: Any, attack: Any, labelled: Any = None) -> Confusion:
        """Counts of ``flagged`` (True = alert) against ``attack`` (True = anomalous), over the rows
        where ``labelled`` is True (all rows when it is None)."""
        flagged, attack = np.asarray(flagged, dtype=bool), np.asarray(attack, dtype=bool)
        known = np.ones(flagged.shape, dtype=bool) if labelled is None else np.asarray(labelled, dtype=bool)
        positive, negative = known & attack, known & ~attack
        return cls(
            tp=int(np.count_nonzero(flagged & positive)),
            fp=int(np.count_nonzero(flagged & negative)),
            fn=int(np.count_nonzero(~flagged & positive)),
            tn=int(np.count_nonzero(~flagged & negative)),
        )

    @classmethod
    def of_classes(cls, flagged: Any, classes: np.ndarray) -> Confusion:
        """Counts against label classes (:func:`stream.labels.label_classes`): unlabelled rows skipped."""
        classes = np.asarray(classes)
        return cls.of(flagged, classes == ATTACK, (classes == ATTACK) | (classes == NORMAL))

    @classmethod
    def of_labels(cls, flagged: Any, labels: Any) -> Confusion:
        """Counts against label strings, classified by the one label rule (``None`` skipped)."""
        return cls.of_classes(flagged, label_classes(labels))

    def add(self, other: Confusion) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn

    @property
    def precision(self) -> float | None:
        """Share of alerts that were attacks; None before any (labelled) alert."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """Share of attacks that alerted; None before any attack."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def fbeta(self, beta: float) -> float | None:
        """F-beta of precision and recall; None while either is undefined, 0.0 when both are 0."""
        precision, recall = self.precision, self.recall
        if precision is None or recall is None:
            return None
        b2 = beta * beta
        denominator = b2 * precision + recall
        return (1 + b2) * precision * recall / denominator if denominator > 0 else 0.0

    @property
    def f1(self) -> float | None:
        return self.fbeta(1.0)

    def summary(self) -> dict[str, float | int | None]:
        """Precision, recall and F1 (None while undefined) beside the four counts."""
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, **asdict(self)}
