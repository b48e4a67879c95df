"""Metrics of per-row anomaly scores against per-row labels: point-wise, range-aware and event-wise.

- ``roc_auc`` and ``pr_auc`` (average precision), point-wise, as scikit-learn computes them;
- ``vus_pr``: the volume under the range-aware precision-recall surface (Paparrizos et al., "Volume
  Under the Surface: A New Accuracy Evaluation Measure for Time-Series Anomaly Detection", VLDB 2022;
  the measure TSB-AD ranks by), implemented here after the authors' code because the ``vus`` and
  ``tsb-ad`` packages pin their own TensorFlow. For each buffer length ``l`` in ``0..max_buffer``,
  every labelled range gets soft edges of ``l // 2`` rows on each side (weight
  ``sqrt(1 - d / l)`` at distance ``d``); recall counts those weights, times the share of ranges any
  alert reaches (existence), and precision counts the weights of the alerting rows; the range-aware
  PR AUC is averaged over the buffer lengths;
- ``best_f1``: the best point-wise F1 over every cut of the scores;
- ``event_f1``: the telemanom paper's event-wise F1 (Hundman et al., KDD 2018): a labelled range is
  found when one alert falls inside it, a run of consecutive alerts touching no labelled range is
  one false positive.

>>> import numpy as np
>>> labels = np.zeros(200, bool); labels[100:110] = True
>>> perfect = labels.astype(float)
>>> round(range_pr_auc(perfect, labels, 0), 3), event_f1(perfect >= 1, labels)
(1.0, 1.0)
>>> noise = np.random.default_rng(0).random(200)
>>> bool(vus_pr(perfect, labels) > vus_pr(noise, labels))
True
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

MAX_BUFFER = 100  # rows: TSB-AD's default sliding window for the VUS buffer
BUFFER_STEPS = 11  # buffer lengths 0, 10, ..., 100
CUTS = 250  # score cuts per range-aware PR curve (the authors' default)


def ranges(labels: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` row ranges of consecutive True labels."""
    padded = np.r_[False, np.asarray(labels, dtype=bool), False]
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _soft_labels(labels: np.ndarray, buffer: int) -> np.ndarray:
    soft = np.asarray(labels, dtype=np.float64).copy()
    if buffer < 2:
        return soft
    n, half = len(soft), buffer // 2
    for start, end in ranges(labels):
        after = np.arange(end, min(end + half, n))
        soft[after] += np.sqrt(1.0 - (after - end + 1) / buffer)
        before = np.arange(max(start - half, 0), start)
        soft[before] += np.sqrt(1.0 - (start - before) / buffer)
    return np.minimum(soft, 1.0)


def range_pr_auc(scores: np.ndarray, labels: np.ndarray, buffer: int, cuts: int = CUTS) -> float:
    """Range-aware PR AUC with soft range edges of ``buffer`` rows (one slice of the VUS-PR volume)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    soft = _soft_labels(labels, buffer)
    spans = ranges(soft > 0)
    positive = (labels.sum() + soft.sum()) / 2.0
    if positive <= 0 or not spans:
        return float("nan")
    recalls, precisions = [0.0], [1.0]
    for cut in np.quantile(scores, np.linspace(1.0, 0.0, cuts)):
        alert = scores >= cut
        n_alert = int(alert.sum())
        if n_alert == 0:
            continue
        hit = float((soft * alert).sum())
        existence = np.mean([alert[s:e].any() for s, e in spans])
        recalls.append(min(hit / positive, 1.0) * existence)
        precisions.append(hit / n_alert)
    r, p = np.asarray(recalls), np.asarray(precisions)
    return float(np.sum(np.diff(r) * p[1:]))


def vus_pr(scores: np.ndarray, labels: np.ndarray, max_buffer: int = MAX_BUFFER) -> float:
    """Volume under the range-aware PR surface: the mean range PR AUC over buffers ``0..max_buffer``."""
    buffers = np.linspace(0, max_buffer, BUFFER_STEPS).astype(int)
    return float(np.nanmean([range_pr_auc(scores, labels, int(b)) for b in buffers]))


def best_f1(scores: np.ndarray, labels: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(np.asarray(labels, bool), scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(f1.max())


def point_f1(alerts: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    alerts, labels = np.asarray(alerts, bool), np.asarray(labels, bool)
    tp = float((alerts & labels).sum())
    precision = tp / alerts.sum() if alerts.any() else 0.0
    recall = tp / labels.sum() if labels.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def event_counts(alerts: np.ndarray, labels: np.ndarray) -> tuple[int, int, int]:
    """(found ranges, missed ranges, false-positive alert runs), the telemanom paper's way."""
    alerts, labels = np.asarray(alerts, bool), np.asarray(labels, bool)
    truth = ranges(labels)
    found = sum(bool(alerts[s:e].any()) for s, e in truth)
    false_runs = sum(not labels[s:e].any() for s, e in ranges(alerts))
    return found, len(truth) - found, false_runs


def event_f1(alerts: np.ndarray, labels: np.ndarray) -> float:
    found, missed, false_runs = event_counts(alerts, labels)
    precision = found / (found + false_runs) if found + false_runs else 0.0
    recall = found / (found + missed) if found + missed else 0.0
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0


def series_metrics(scores: np.ndarray, labels: np.ndarray, alerts: np.ndarray) -> dict[str, float]:
    """Every metric of one scored series (point-wise ones are NaN without both classes)."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    labels = np.asarray(labels, dtype=bool)
    both = 0 < labels.sum() < len(labels)
    nan = float("nan")
    return {
        "roc_auc": float(roc_auc_score(labels, scores)) if both else nan,
        "pr_auc": float(average_precision_score(labels, scores)) if both else nan,
        "vus_pr": vus_pr(scores, labels) if both else nan,
        "best_f1": best_f1(scores, labels) if both else nan,
        **point_f1(alerts, labels),
        "event_f1": event_f1(alerts, labels) if labels.any() else nan,
        "alert_rate_normal": float(np.mean(np.asarray(alerts, bool)[~labels])) if (~labels).any() else nan,
    }


def mean_metrics(per_file: dict[str, dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over files (NaN ones left out)."""
    keys = next(iter(per_file.values()), {}).keys()
    out = {}
    for key in keys:
        values = np.array([m[key] for m in per_file.values()], dtype=np.float64)
        out[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out
