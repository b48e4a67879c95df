"""Detection metrics and the cost figures of ``metrics.json``.

ROC AUC and PR AUC (average precision) rank the scores and need no threshold; precision, recall,
F1 and F2 are those of the alerts the fitted threshold raises (:class:`Confusion`: None where
undefined, e.g. the precision of a threshold that raised no alert).

>>> import numpy as np
>>> m = detection_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]),
...                       np.array([False, True, False, True]))
>>> m["roc_auc"], m["precision"], m["recall"], m["f1"]
(0.75, 0.5, 0.5, 0.5)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from models.evaluation.confusion import Confusion

WARMUP_ROWS = 256


def detection_metrics(y: np.ndarray, scores: np.ndarray, flags: np.ndarray) -> dict[str, float | None]:
    """ROC AUC, PR AUC, and precision / recall / F1 / F2 of ``flags`` (True = alert)."""
    y = np.asarray(y, dtype=bool)
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=np.inf, posinf=np.inf)
    confusion = Confusion.of(flags, y)
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "precision": confusion.precision,
        "recall": confusion.recall,
        "f1": confusion.f1,
        "f2": confusion.fbeta(2.0),
    }


def timed_scores(detector: Any, X: np.ndarray) -> tuple[np.ndarray, float]:
    """Scores of ``X`` and the seconds per 10,000 rows, after a warm-up call (graph tracing)."""
    detector.score(X[:WARMUP_ROWS])
    started = time.perf_counter()
    scores = np.asarray(detector.score(X), dtype=np.float64)
    seconds = time.perf_counter() - started
    return scores, seconds * 10_000 / max(len(X), 1)


def saved_size_kb(detector: Any) -> float:
    """Size on disk of what ``detector.save`` writes (the registry's ``detector/`` folder)."""
    with tempfile.TemporaryDirectory(prefix="anomstream-size-") as tmp:
        folder = Path(tmp) / "detector"
        detector.save(folder)
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1024.0


def flag_rates(labels: np.ndarray, flags: np.ndarray, top: int = 20) -> dict[str, dict[str, Any]]:
    """Per original label: row count and the share of rows the threshold flags (largest groups first)."""
    names, inverse, counts = np.unique(
        np.asarray(labels).astype(str), return_inverse=True, return_counts=True
    )
    flagged = np.bincount(inverse, weights=np.asarray(flags, dtype=np.float64), minlength=len(names))
    order = np.argsort(-counts, kind="stable")[:top]
    return {str(names[i]): {"n": int(counts[i]), "flagged": float(flagged[i] / counts[i])} for i in order}
