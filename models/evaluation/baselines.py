"""Simple sensor baselines, measured beside the detectors on the same rows (issue 27).

Each takes a whole series (``(n,)`` or ``(n, channels)``) and the number of its first rows that are
training rows, and returns one score per row (higher = more anomalous) plus an alert threshold
fitted on the training rows only (the ``1 - fpr`` quantile of the scores of the last 30% of them,
which the fit never saw). A multi-channel series scores the largest of its channels' scores.

- ``rolling_zscore``: how many standard deviations a value lies from the mean of the ``window`` rows before
  it (causal);
- ``mp_discord``: matrix-profile discord (``stumpy``): the distance from the subsequence ending at a row
  to its nearest non-overlapping neighbour anywhere in the series (a self-join, as TSB-AD runs it:
  it looks ahead, which only flatters the baseline);
- ``window_pca``: windowed PCA (TSB-AD's Sub-PCA): reconstruction error of the window ending at a row by the
  principal components (90% of the variance) of the training windows.

>>> import numpy as np
>>> x = np.sin(np.arange(1200) / 5.0); x[900:905] += 4
>>> scores, cut = zscore(x, 600)
>>> bool(scores[900] > cut > np.median(scores[600:890]))
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.decomposition import PCA

from stream.windows import sliding_windows, window_end_rows

HELD_OUT = 0.3  # the last share of the training rows: the thresholds' calibration rows
Z_WINDOW = 100
SUBSEQUENCE = 32  # discord and PCA window, rows


def _threshold(scores: np.ndarray, n_train: int, fpr: float) -> float:
    held = scores[int(n_train * (1 - HELD_OUT)) : n_train]
    held = held[np.isfinite(held)]
    return float(np.quantile(held, 1 - fpr, method="higher")) if len(held) else float("inf")


def _channels(values: np.ndarray) -> list[np.ndarray]:
    values = np.asarray(values, dtype=np.float64)
    return [values] if values.ndim == 1 else [values[:, c] for c in range(values.shape[1])]


def _rolling_z(x: np.ndarray, window: int) -> np.ndarray:
    csum = np.r_[0.0, np.cumsum(x)]
    csq = np.r_[0.0, np.cumsum(x * x)]
    idx = np.arange(len(x))
    lo = np.maximum(idx - window, 0)
    count = np.maximum(idx - lo, 1)
    mean = (csum[idx] - csum[lo]) / count
    var = np.maximum((csq[idx] - csq[lo]) / count - mean**2, 0.0)
    spread = np.maximum(np.sqrt(var), 1e-6 * max(1.0, float(np.abs(x).max())))
    z = np.abs(x - mean) / spread
    z[:2] = 0.0
    return z


def zscore(
    values: np.ndarray, n_train: int, fpr: float = 0.01, window: int = Z_WINDOW
) -> tuple[np.ndarray, float]:
    scores = np.max([_rolling_z(x, window) for x in _channels(values)], axis=0)
    return scores, _threshold(scores, n_train, fpr)


def _discord(x: np.ndarray, m: int) -> np.ndarray:
    import stumpy

    out = np.zeros(len(x))
    if len(x) < 2 * m or np.ptp(x) == 0:
        return out
    profile = stumpy.stump(x, m)[:, 0].astype(np.float64)
    profile[~np.isfinite(profile)] = 0.0
    out[m - 1 :] = profile  # the subsequence ending at each row
    return out


def discord(
    values: np.ndarray, n_train: int, fpr: float = 0.01, m: int = SUBSEQUENCE
) -> tuple[np.ndarray, float]:
    scores = np.max([_discord(x, m) for x in _channels(values)], axis=0)
    return scores, _threshold(scores, n_train, fpr)


def pca(
    values: np.ndarray, n_train: int, fpr: float = 0.01, m: int = SUBSEQUENCE
) -> tuple[np.ndarray, float]:
    per_channel = []
    for x in _channels(values):
        windows = sliding_windows(x, m)
        ends = window_end_rows(len(x), m)
        fit_rows = ends < int(n_train * (1 - HELD_OUT))
        out = np.zeros(len(x))
        if fit_rows.sum() >= 2 and np.ptp(windows[fit_rows]) > 0:
            model = PCA(n_components=0.9, svd_solver="full").fit(windows[fit_rows])
            rebuilt = model.inverse_transform(model.transform(windows))
            out[ends] = ((windows - rebuilt) ** 2).mean(axis=1)
        per_channel.append(out)
    scores = np.max(per_channel, axis=0)
    return scores, _threshold(scores, n_train, fpr)


Baseline = Callable[..., tuple[np.ndarray, float]]
BASELINES: dict[str, Baseline] = {"rolling_zscore": zscore, "mp_discord": discord, "window_pca": pca}
