"""Repeated records: no identical record may make up more than its share of what is learnt.

A flood repeats one record (the 10% file's smurf run of 193,127 connections holds 135 distinct
records, one of them 161,356 times), so even a flood the model misses cannot become more than a
sliver of what a retrain learns, nor of the rows a shadow evaluation counts as normal-looking.
"""

from __future__ import annotations

import numpy as np


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
