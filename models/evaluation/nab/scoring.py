"""NAB (Numenta Anomaly Benchmark) scoring, re-implemented with numpy.

The rules follow NAB's current scorer (``nab/sweeper.py`` at NAB v1.1, the code
that produced ``results/final_results.json``):

* The first ``min(floor(0.15 * n_rows), 0.15 * 5000)`` rows of a series are the
  probationary period. Rows in it are ignored completely: a detection there is
  neither a true nor a false positive, and an undetected window row there is not
  a false negative.
* A row is a detection when ``anomaly_score >= threshold``.
* Each anomaly window scores once: ``-fn_weight`` when no row in it is detected,
  otherwise the reward of its *earliest* detected row,
  ``tp_weight * S(-(end - i + 1) / width) / S(-1)`` where ``S`` is NAB's scaled
  sigmoid. A detection on the first row of the window earns exactly ``tp_weight``
  and one on its last row earns ``tp_weight * S(-1/width) / S(-1)`` (small, > 0).
* Every detected row outside all windows is a false positive worth
  ``fp_weight * S((i - prev_end) / (prev_width - 1))`` where ``prev_*`` describe the
  closest window that ends before row ``i``. ``S`` is negative for positive
  arguments, so an FP right after a window costs almost nothing and one more than
  three window-lengths later costs the full ``fp_weight``. An FP with no window
  before it costs the full ``fp_weight``.
* True negatives score nothing: ``tn_weight`` is read from the profile but NAB
  never uses it.
* The corpus score is the sum over series. NAB normalises it to
  ``100 * (raw - null) / (perfect - null)`` with ``null = -fn_weight * n_windows``
  (the detector that never fires) and ``perfect = tp_weight * n_windows``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from stream.datasets.nab import (
    PROBATION_FRACTION,
    Profile,
    WindowLimits,
    probation_length,
    window_row_bounds,
)

ScoreArrays = Mapping[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class SeriesScore:
    """NAB score of one series at one threshold.

    ``tp``/``fp``/``fn``/``tn`` are *row* counts over the rows after the
    probationary period, exactly like the TP/TN/FP/FN columns of NAB's
    ``*_scores.csv`` tables. Window-level counts are in ``detected_windows`` and
    ``missed_windows``.
    """

    name: str
    raw: float
    tp: int
    fp: int
    fn: int
    tn: int
    threshold: float
    detected_windows: int = 0
    missed_windows: int = 0


@dataclass
class CorpusScore:
    """NAB score of a set of series for one profile and threshold."""

    profile: str
    threshold: float
    raw: float
    null_raw: float
    perfect_raw: float
    normalized: float
    per_series: list[SeriesScore] = field(default_factory=list)

    def series(self, name: str) -> SeriesScore:
        """Return the per-series score for ``name``."""
        for item in self.per_series:
            if item.name == name:
                return item
        raise KeyError(name)


@dataclass(frozen=True)
class SeriesLayout:
    """Profile- and threshold-independent geometry of one series.

    Attributes:
        name: series key, e.g. ``"realKnownCause/nyc_taxi.csv"``.
        n_rows: number of rows.
        probation: rows ``0 .. probation-1`` are ignored.
        window_bounds: ``(k, 2)`` inclusive row ranges of the windows, sorted.
        window_scorable: per window, whether it has a row after probation (only
            those windows count as TP/FN, as in NAB's sweeper).
        window_id: per row, index into ``window_bounds`` or -1 outside windows.
        tp_unit: per row inside a window, the TP reward for ``tp_weight == 1``.
        fp_unit: per row outside windows, the (negative) FP value for ``fp_weight == 1``.
        scorable: per row, ``row >= probation``.
    """

    name: str
    n_rows: int
    probation: int
    window_bounds: np.ndarray
    window_scorable: np.ndarray
    window_id: np.ndarray
    tp_unit: np.ndarray
    fp_unit: np.ndarray
    scorable: np.ndarray

    @property
    def n_scorable_windows(self) -> int:
        return int(self.window_scorable.sum())


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 x)) - 1``, forced to -1 for ``x > 3``.

    ``x = -1`` (left edge of a window) gives 0.98661, ``x = 0`` gives 0 and
    ``x = 1`` gives -0.98661; NAB uses the value both as TP reward (x < 0) and
    as FP penalty (x > 0).
    """
    x = np.asarray(position, dtype=float)
    # Clip only to keep exp() finite; values above 3 are replaced by -1 below anyway.
    value = 2.0 / (1.0 + np.exp(5.0 * np.clip(x, -50.0, 3.0))) - 1.0
    return np.where(x > 3.0, -1.0, value)


_MAX_TP = float(scaled_sigmoid(-1.0))


def build_layout(
    name: str,
    timestamps: np.ndarray,
    limits: WindowLimits,
    probation_fraction: float = PROBATION_FRACTION,
) -> SeriesLayout:
    """Precompute everything about one series that depends on neither profile nor threshold."""
    n = len(timestamps)
    bounds = window_row_bounds(timestamps, limits)
    probation = probation_length(n, probation_fraction)
    rows = np.arange(n)

    window_id = np.full(n, -1, dtype=np.int64)
    tp_unit = np.full(n, np.nan)
    for k, (start, end) in enumerate(bounds):
        window_id[start : end + 1] = k
        width = end - start + 1
        # NAB's "+ 1" makes the first row of the window sit at exactly -1, the maximum reward.
        position = -(end - rows[start : end + 1] + 1) / width
        tp_unit[start : end + 1] = scaled_sigmoid(position) / _MAX_TP

    fp_unit = _false_positive_units(rows, bounds)
    fp_unit[window_id >= 0] = np.nan
    return SeriesLayout(
        name=name,
        n_rows=n,
        probation=probation,
        window_bounds=bounds,
        window_scorable=bounds[:, 1] >= probation,
        window_id=window_id,
        tp_unit=tp_unit,
        fp_unit=fp_unit,
        scorable=rows >= probation,
    )


def _false_positive_units(rows: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """FP value per row for ``fp_weight == 1``, measured from the closest preceding window."""
    if not len(bounds):
        return np.full(len(rows), -1.0)
    ends = bounds[:, 1]
    widths = bounds[:, 1] - bounds[:, 0] + 1
    prev = np.searchsorted(ends, rows, side="left") - 1
    prev_safe = np.maximum(prev, 0)
    # NAB divides by (width - 1) and crashes on one-row windows; treat those as width 2.
    denom = np.maximum(widths - 1, 1)[prev_safe]
    position = (rows - ends[prev_safe]) / denom
    return np.where(prev >= 0, scaled_sigmoid(position), -1.0)


def _check_scores(layout: SeriesLayout, anomaly_scores: np.ndarray) -> np.ndarray:
    values = np.asarray(anomaly_scores, dtype=float)
    if values.shape != (layout.n_rows,):
        raise ValueError(
            f"{layout.name}: {values.shape[0] if values.ndim else 0} anomaly scores for "
            f"{layout.n_rows} timestamps; NAB needs exactly one score per row"
        )
    return values


def score_series(
    layout: SeriesLayout, anomaly_scores: np.ndarray, profile: Profile, threshold: float
) -> SeriesScore:
    """Score one series the way NAB's sweeper does for a fixed threshold.

    NaN anomaly scores never count as detections.
    """
    values = _check_scores(layout, anomaly_scores)
    with np.errstate(invalid="ignore"):
        detected = layout.scorable & (values >= threshold)
    in_window = layout.window_id >= 0

    fp_rows = detected & ~in_window
    fp_score = profile.fp_weight * float(layout.fp_unit[fp_rows].sum())

    tp_rows = np.flatnonzero(detected & in_window)
    # Rows are in time order, so the first occurrence of each window id is its earliest detection.
    hit_windows, first = np.unique(layout.window_id[tp_rows], return_index=True)
    tp_score = profile.tp_weight * float(layout.tp_unit[tp_rows[first]].sum())
    missed = layout.n_scorable_windows - len(hit_windows)

    return SeriesScore(
        name=layout.name,
        raw=tp_score + fp_score - profile.fn_weight * missed,
        tp=int(len(tp_rows)),
        fp=int(fp_rows.sum()),
        fn=int((layout.scorable & in_window & ~detected).sum()),
        tn=int((layout.scorable & ~in_window & ~detected).sum()),
        threshold=float(threshold),
        detected_windows=int(len(hit_windows)),
        missed_windows=int(missed),
    )


def normalized_score(raw: float, null_raw: float, perfect_raw: float) -> float:
    """NAB's normalisation: 0 for the never-firing detector, 100 for the perfect one."""
    span = perfect_raw - null_raw
    return 100.0 * (raw - null_raw) / span if span else float("nan")


def build_layouts(
    scores: ScoreArrays,
    windows: Mapping[str, WindowLimits],
    probation_fraction: float = PROBATION_FRACTION,
) -> list[tuple[SeriesLayout, np.ndarray]]:
    """Pair every series' layout with its validated anomaly-score array.

    Every series must have an entry in ``windows`` (an empty list when it has no
    anomaly): a missing key is almost always a naming mismatch, which would
    silently turn missed anomalies into true negatives.
    """
    prepared = []
    for name in sorted(scores):
        if name not in windows:
            raise KeyError(f"no NAB windows for series {name!r}; pass [] for a series without anomalies")
        timestamps, anomaly_scores = scores[name]
        layout = build_layout(name, timestamps, windows[name], probation_fraction)
        prepared.append((layout, _check_scores(layout, anomaly_scores)))
    return prepared


def corpus_bounds(layouts: Sequence[SeriesLayout], profile: Profile) -> tuple[float, float]:
    """Raw scores of NAB's null detector (all windows missed) and perfect detector."""
    n_windows = sum(layout.n_scorable_windows for layout in layouts)
    return -profile.fn_weight * n_windows, profile.tp_weight * n_windows


def score_prepared(
    prepared: Sequence[tuple[SeriesLayout, np.ndarray]], profile: Profile, threshold: float
) -> CorpusScore:
    """Score already-built layouts; see :func:`score_corpus`."""
    per_series = [score_series(layout, values, profile, threshold) for layout, values in prepared]
    raw = float(sum(item.raw for item in per_series))
    null_raw, perfect_raw = corpus_bounds([layout for layout, _ in prepared], profile)
    return CorpusScore(
        profile=profile.name,
        threshold=float(threshold),
        raw=raw,
        null_raw=null_raw,
        perfect_raw=perfect_raw,
        normalized=normalized_score(raw, null_raw, perfect_raw),
        per_series=per_series,
    )


def score_corpus(
    scores: ScoreArrays,
    windows: Mapping[str, WindowLimits],
    profile: Profile,
    threshold: float,
    probation_fraction: float = PROBATION_FRACTION,
) -> CorpusScore:
    """Score a detector on a set of series at one threshold, as NAB's ``scoreCorpus`` does.

    Args:
        scores: series key -> ``(timestamps, anomaly_scores)``, one score per row,
            aligned with the series' own timestamps (NAB scores by row position,
            not by timestamp lookup).
        windows: series key -> list of ``(start, end)`` window timestamps.
        profile: cost matrix.
        threshold: a row is a detection when its score is ``>= threshold``.

    Returns:
        Raw score summed over series and NAB's normalised score. The null and
        perfect baselines count the windows of the series passed in, so the
        normalised value equals NAB's published one only for the full corpus.
    """
    return score_prepared(build_layouts(scores, windows, probation_fraction), profile, threshold)
