"""Sliding windows over a series, shared by the sensor replay and offline training and evaluation.

A window is ``length`` consecutive *rows*; windows end on rows ``length - 1, length - 1 + stride, ...``
and a window exists only once its last row exists (as in a live stream: the window ending on row
``i`` is emitted when row ``i`` arrives). Rows after the last complete window belong to no window
until more rows come. Windows follow row order, never time order: NAB scores by row position, and
series whose timestamps repeat or step backwards (daylight-saving changes) must keep their order, so
a window's ``start`` can even be later than its ``end``.

>>> import numpy as np
>>> ends = window_end_rows(10, length=4, stride=3)
>>> ends.tolist()                        # rows 3, 6, 9: each window ends there
[3, 6, 9]
>>> sliding_windows(np.arange(10.0), 4, 3)[-1].tolist()
[6.0, 7.0, 8.0, 9.0]
>>> sliding_windows(np.arange(6.0).reshape(3, 2), 2).tolist()   # two channels
[[0.0, 1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0]]
>>> per_row_scores(10, ends, np.array([0.1, 0.2, 0.3])).tolist()
[0.0, 0.0, 0.0, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.3]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowSpec:
    """Window length and stride, in rows."""

    length: int
    stride: int = 1

    def __post_init__(self) -> None:
        if self.length < 2:
            raise ValueError(f"a window needs at least 2 rows, got length={self.length}")
        if self.stride < 1:
            raise ValueError(f"stride must be at least 1, got {self.stride}")


def window_end_rows(n_rows: int, length: int, stride: int = 1) -> np.ndarray:
    """Row index of the last row of every complete window of a series of ``n_rows`` rows."""
    spec = WindowSpec(length, stride)
    if n_rows < spec.length:
        return np.zeros(0, dtype=np.int64)
    return np.arange(spec.length - 1, n_rows, spec.stride, dtype=np.int64)


def sliding_windows(values: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
    """``(n_windows, length)`` view of a 1-D series, one row per window (see :func:`window_end_rows`).

    A multivariate series ``(n_rows, channels)`` gives ``(n_windows, length * channels)``: each
    window's rows one after the other, all channels of a row together (row-major, as a window of a
    multivariate sensor travels in its message)::

        sliding_windows(np.arange(6.0).reshape(3, 2), 2)   # rows [0, 1], [2, 3], [4, 5]
        # -> [[0, 1, 2, 3], [2, 3, 4, 5]]

    A read-only view for one channel, a copy for several: copy it before writing into it.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim not in (1, 2):
        raise ValueError(f"expected a 1-D series or (rows, channels), got shape {values.shape}")
    channels = 1 if values.ndim == 1 else values.shape[1]
    ends = window_end_rows(len(values), length, stride)
    if not len(ends):
        return np.zeros((0, length * channels), dtype=np.float64)
    if values.ndim == 2:
        view = np.lib.stride_tricks.sliding_window_view(values, length, axis=0)  # (n, channels, length)
        return view[ends - (length - 1)].transpose(0, 2, 1).reshape(len(ends), length * channels)
    view = np.lib.stride_tricks.sliding_window_view(values, length)
    return view[ends - (length - 1)]


def per_row_scores(
    n_rows: int, end_rows: np.ndarray, window_scores: np.ndarray, fill: float = 0.0
) -> np.ndarray:
    """One score per row: the score of the latest window ending at or before the row.

    Rows before the first window ending get ``fill``. With ``stride == 1`` every later row has its
    own window; with a larger stride a row between two window ends keeps the last known score, which
    is all a live consumer knows at that row.
    """
    end_rows = np.asarray(end_rows, dtype=np.int64)
    window_scores = np.asarray(window_scores, dtype=np.float64)
    if end_rows.shape != window_scores.shape:
        raise ValueError(f"{len(end_rows)} window ends for {len(window_scores)} scores")
    if len(end_rows) and (np.any(np.diff(end_rows) <= 0) or end_rows[-1] >= n_rows or end_rows[0] < 0):
        raise ValueError("window end rows must be increasing and inside the series")
    latest = np.searchsorted(end_rows, np.arange(n_rows), side="right") - 1
    out = np.full(n_rows, fill, dtype=np.float64)
    covered = latest >= 0
    out[covered] = window_scores[latest[covered]]
    return out
