"""Exact NAB threshold optimisation (NAB's ``optimizer.py`` + ``Sweeper.calcScoreByThreshold``).

NAB pools the rows of every series (probationary rows removed), sorts them by
anomaly score from high to low and lowers the threshold one distinct score at a
time, adding the score change of the rows that become detections. The best
threshold is the one with the highest summed raw score; among equal scores the
highest threshold wins, and "detect nothing" (NAB's threshold 1.1) is a candidate.
This module does the same sweep with numpy: one sort and a few cumulative sums.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.evaluation.nab.scoring import (
    PROBATION_FRACTION,
    CorpusScore,
    Profile,
    ScoreArrays,
    SeriesLayout,
    WindowLimits,
    build_layouts,
    corpus_bounds,
    score_prepared,
)

# Threshold reported when detecting nothing beats every real threshold (NAB reports 1.1).
NO_DETECTION_THRESHOLD = math.inf


@dataclass(frozen=True)
class ThresholdSweep:
    """Raw corpus score for every candidate threshold, highest threshold first.

    ``thresholds[0]`` is :data:`NO_DETECTION_THRESHOLD`; the others are the
    distinct anomaly scores of the scorable rows. ``raw[i]`` is the score when
    every row with ``anomaly_score >= thresholds[i]`` is a detection.
    """

    thresholds: np.ndarray
    raw: np.ndarray
    null_raw: float
    perfect_raw: float

    def best_index(self) -> int:
        # argmax returns the first maximum, i.e. the highest threshold among ties, as NAB does.
        return int(np.argmax(self.raw))


def _pooled_rows(
    prepared: Sequence[tuple[SeriesLayout, np.ndarray]], profile: Profile
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anomaly score, corpus-wide window id (-1 outside windows) and weighted value of scorable rows."""
    scores, window_ids, values = [], [], []
    offset = 0
    for layout, anomaly_scores in prepared:
        keep = layout.scorable & ~np.isnan(anomaly_scores)
        wid = layout.window_id[keep]
        in_window = wid >= 0
        scores.append(anomaly_scores[keep])
        window_ids.append(np.where(in_window, wid + offset, -1))
        values.append(
            np.where(
                in_window,
                profile.tp_weight * layout.tp_unit[keep],
                profile.fp_weight * layout.fp_unit[keep],
            )
        )
        offset += len(layout.window_bounds)
    return np.concatenate(scores), np.concatenate(window_ids), np.concatenate(values)


def _score_changes(window_ids: np.ndarray, values: np.ndarray, fn_weight: float) -> np.ndarray:
    """Score change of each row (already in sweep order) when it becomes a detection.

    An FP row adds its value. A window row can only raise its window from
    ``-fn_weight`` (or from its current best reward) to a higher reward, because a
    window is worth the reward of its earliest detected row, which is also its
    largest one; the change is the step in the window's running maximum.
    """
    changes = np.where(window_ids < 0, values, 0.0)
    rows = np.flatnonzero(window_ids >= 0)
    if not len(rows):
        return changes
    grouped = pd.Series(values[rows]).groupby(window_ids[rows], sort=False)
    best_after = np.maximum(grouped.cummax().to_numpy(), -fn_weight)
    best_before = pd.Series(best_after).groupby(window_ids[rows], sort=False).shift(1)
    changes[rows] = best_after - best_before.fillna(-fn_weight).to_numpy()
    return changes


def sweep_prepared(prepared: Sequence[tuple[SeriesLayout, np.ndarray]], profile: Profile) -> ThresholdSweep:
    """Run the exact threshold sweep over already-built layouts; see :func:`sweep_thresholds`."""
    null_raw, perfect_raw = corpus_bounds([layout for layout, _ in prepared], profile)
    scores, window_ids, values = _pooled_rows(prepared, profile)
    order = np.argsort(-scores, kind="stable")
    scores, window_ids, values = scores[order], window_ids[order], values[order]

    running = null_raw + np.cumsum(_score_changes(window_ids, values, profile.fn_weight))
    # The score for threshold t includes every row scoring >= t: the last row of each tie group.
    is_last = np.ones(len(scores), dtype=bool)
    is_last[:-1] = scores[1:] != scores[:-1]
    last_of_group = np.flatnonzero(is_last)
    return ThresholdSweep(
        thresholds=np.concatenate([[NO_DETECTION_THRESHOLD], scores[last_of_group]]),
        raw=np.concatenate([[null_raw], running[last_of_group]]),
        null_raw=null_raw,
        perfect_raw=perfect_raw,
    )


def sweep_thresholds(
    scores: ScoreArrays,
    windows: Mapping[str, WindowLimits],
    profile: Profile,
    probation_fraction: float = PROBATION_FRACTION,
) -> ThresholdSweep:
    """Raw corpus score at every distinct anomaly score used as threshold (exact, no grid)."""
    return sweep_prepared(build_layouts(scores, windows, probation_fraction), profile)


def optimize_threshold(
    scores: ScoreArrays,
    windows: Mapping[str, WindowLimits],
    profile: Profile,
    probation_fraction: float = PROBATION_FRACTION,
) -> CorpusScore:
    """Find the threshold that maximises the summed raw score, as NAB's optimiser does.

    NAB tunes one threshold for the whole corpus per profile (not one per
    series). The returned score is recomputed with :func:`score_corpus` semantics
    at the chosen threshold, so it carries per-series details. When no threshold
    beats detecting nothing, the threshold is ``inf``.
    """
    prepared = build_layouts(scores, windows, probation_fraction)
    sweep = sweep_prepared(prepared, profile)
    return score_prepared(prepared, profile, float(sweep.thresholds[sweep.best_index()]))
