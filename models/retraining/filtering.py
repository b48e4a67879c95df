"""What a retrain may learn from: post-change events that look normal, with no single repeated
record dominating.

Contamination (attacks learnt as normal) cannot be removed without labels; it is bounded:

1. no identical record keeps more than ``max_record_share`` of the rows: a flood repeats one
   record (the 10% file's smurf run of 193,127 connections holds 135 distinct records, one of them
   161,356 times), so even a flood the model misses cannot become more than a sliver of "normal";
2. events the production model alerted on are dropped, so every detected attack stays out;
3. of the rest, those at or above the ``keep_quantile`` of their scores are dropped too: an attack
   the model misses usually still scores higher than the bulk of normal traffic, and these rows
   are where such misses concentrate.

What remains: attacks the production model already misses and scores in the bottom of its normal
range, each record at most ``max_record_share`` of the rows. Learning those cannot lose detections
the model has (it misses them already); what it could lose on similar attacks is what the shadow
evaluation's recall criterion checks before anything is promoted.

**A moved baseline.** When the production model alerts on more than ``moved_alert_share`` of the
post-change events *after* repeats are capped (so not a flood of a few records, but most of a
diverse, persistent stream: the drift monitor only fires on a change that persists), rule 2 would
leave nothing to learn from, and the model would raise alarms forever. Then the rows kept are those
below the ``moved_quantile`` of the (capped) post-change scores instead: the half of the new traffic
that looks most normal. Contamination there is bounded by that quantile and the repeat cap, and a
candidate that learnt an attack campaign this way fails the recall criterion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Selection:
    """Rows kept (indices into the candidate pool, in order) and how many each rule dropped."""

    rows: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def cap_repeats(X: np.ndarray, rows: np.ndarray, max_share: float) -> np.ndarray:
    """``rows`` with each identical record (row of ``X``) kept at most ``max(1, max_share * len(rows))``
    times, its first occurrences, in their original order.

    >>> X = np.array([[0.0], [1.0], [0.0], [0.0], [2.0]])
    >>> cap_repeats(X, np.arange(5), 0.4).tolist()   # at most 2 copies of any record
    [0, 1, 2, 4]
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return rows
    cap = max(1, int(max_share * rows.size))
    block = np.ascontiguousarray(X[rows])
    keys = block.view(np.dtype((np.void, block.dtype.itemsize * block.shape[1]))).ravel()
    _, inverse = np.unique(keys, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    grouped = inverse[order]
    starts = np.r_[0, np.flatnonzero(np.diff(grouped)) + 1]
    rank = np.arange(rows.size) - np.repeat(starts, np.diff(np.r_[starts, rows.size]))
    keep = np.zeros(rows.size, dtype=bool)
    keep[order[rank < cap]] = True
    return rows[keep]


NORMAL, MOVED = "alerts", "moved_baseline"


def capped_alert_share(X: np.ndarray, is_alert: np.ndarray, max_record_share: float) -> float:
    """Share of alerts among the rows left once repeated records are capped (a flood counts little)."""
    capped = cap_repeats(X, np.arange(len(X)), max_record_share)
    return float(np.mean(np.asarray(is_alert, dtype=bool)[capped])) if capped.size else 0.0


def select_normal_looking(
    X: np.ndarray,
    scores: np.ndarray,
    is_alert: np.ndarray,
    keep_quantile: float | None,
    max_record_share: float,
    mode: str = NORMAL,
    moved_quantile: float = 0.5,
) -> Selection:
    """Rows of ``X`` to learn from, in order: repeats capped, then (``mode`` "alerts") the rows the
    production model did not alert on, below the ``keep_quantile`` of their scores (None: no
    quantile cut), or (``mode`` "moved_baseline") the rows below the ``moved_quantile`` of all
    capped scores. Counts say what each rule removed.

    >>> X = np.arange(10.0).reshape(-1, 1)
    >>> s = select_normal_looking(X, np.arange(10.0), np.arange(10) >= 8, 0.5, 0.5)
    >>> s.rows.tolist(), s.counts["alerted"], s.counts["above_quantile"]
    ([0, 1, 2, 3], 2, 4)
    >>> select_normal_looking(X, np.arange(10.0), np.ones(10, bool), None, 0.5, MOVED).rows.tolist()
    [0, 1, 2, 3, 4]
    """
    scores, is_alert = np.asarray(scores, dtype=np.float64), np.asarray(is_alert, dtype=bool)
    capped = cap_repeats(X, np.arange(len(X)), max_record_share)
    counts = {"pool": int(len(scores)), "repeats_capped": int(len(scores) - capped.size), "alerted": 0}
    counts["above_quantile"] = 0
    if mode == MOVED:
        cut = float(np.quantile(scores[capped], moved_quantile)) if capped.size else 0.0
        kept = capped[scores[capped] < cut] if capped.size else capped
        counts["above_quantile"] = int(capped.size - kept.size)
    else:
        kept = capped[~is_alert[capped]]
        counts["alerted"] = int(capped.size - kept.size)
        if keep_quantile is not None and kept.size:
            cut = float(np.quantile(scores[kept], keep_quantile))
            below = kept[scores[kept] < cut]
            counts["above_quantile"] = int(kept.size - below.size)
            kept = below
    # Capped again against what is kept, so no record exceeds its share of the rows learnt.
    final = cap_repeats(X, kept, max_record_share)
    counts["repeats_capped"] += int(kept.size - final.size)
    counts["kept"] = int(final.size)
    return Selection(final, counts)
