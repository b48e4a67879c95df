"""One score sequence's drift detector: a river detector behind the reference transform.

:class:`ScoreDrift` follows river's protocol (``update`` -> ``drift_detected``) and adds what a
service needs around it: the estimated index of the first changed score, the statistic and the
threshold at detection, a batched ``update_many``, and a JSON-able state for checkpoints.

>>> import numpy as np
>>> from models.drift import calibrate
>>> rng = np.random.default_rng(7)
>>> config = calibrate("adwin", rng.normal(size=5000), target_ert=100_000, seed=0)
>>> drift = ScoreDrift(config)
>>> stream = np.r_[rng.normal(size=3000), rng.normal(1.0, 1.0, size=3000)]
>>> hits = drift.update_many(stream)
>>> len(hits), hits[0] > 3000, abs(drift.change_index() - 3000) < 200
(1, True, True)
"""

from __future__ import annotations

import base64
import math
import random
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from river import drift as river_drift
from river import stats as river_stats

from models.drift.config import DriftConfig


def make_river_detector(kind: str, params: dict[str, Any]) -> Any:
    """The river detector of ``kind`` with ``params`` (its constructor arguments)."""
    if kind == "adwin":
        return river_drift.ADWIN(**params)
    if kind == "kswin":
        return river_drift.KSWIN(**params)
    if kind == "page_hinkley":
        return river_drift.PageHinkley(**params)
    raise ValueError(f"unknown drift detector {kind!r}")


RECENT = 8192  # fed values kept to place a detected change (the detectors say when, this says where)


def change_point(values: np.ndarray, margin: int = 5) -> int:
    """Index of the first value after the most likely single mean shift in ``values`` (least squares:
    the split that maximises ``k (n - k) / n * (mean_left - mean_right) ** 2``).

    >>> change_point(np.r_[np.zeros(100), np.ones(20)])
    100
    """
    n = len(values)
    if n < 2 * margin + 1:
        return max(n // 2, 0)
    csum = np.cumsum(values, dtype=np.float64)
    k = np.arange(margin, n - margin + 1)
    left = csum[k - 1] / k
    right = (csum[-1] - csum[k - 1]) / (n - k)
    gain = k * (n - k) / n * (left - right) ** 2
    return int(k[np.argmax(gain)])


def adwin_bound(delta: float, n0: Any, n1: Any, variance: float, min_window_length: int = 5) -> Any:
    """ADWIN's cut threshold ``eps_cut`` between sub-windows of ``n0`` and ``n1`` values whose union has
    (population) ``variance``, as river computes it (Bifet and Gavalda 2007). Vectorised over n0/n1."""
    log_term = math.log(2.0 * math.log(max(np.max(n0 + n1), 3)) / delta)
    m_recip = 1.0 / np.maximum(n0 - min_window_length + 1, 1) + 1.0 / np.maximum(
        n1 - min_window_length + 1, 1
    )
    return np.sqrt(2.0 * m_recip * variance * log_term) + 2.0 / 3.0 * log_term * m_recip


def adwin_split(
    segment: np.ndarray, before: int, before_sum: float, variance: float, delta: float, mwl: int = 5
) -> tuple[int, float, float]:
    """ADWIN's most significant split of a window: ``before`` older values (summing to ``before_sum``)
    then ``segment``. Returns (index into segment of the first newer value, |mean difference|, bound)."""
    n = len(segment)
    if n < 2:
        return 0, 0.0, 0.0
    csum = np.cumsum(segment, dtype=np.float64)
    k = np.arange(1, n)
    n0 = before + k
    n1 = n - k
    mean0 = (before_sum + csum[k - 1]) / n0
    mean1 = (csum[-1] - csum[k - 1]) / n1
    diff = np.abs(mean0 - mean1)
    bound = adwin_bound(delta, n0, n1, variance, mwl)
    best = int(np.argmax(diff / np.maximum(bound, 1e-12)))
    return int(k[best]), float(diff[best]), float(bound[best])


@dataclass(frozen=True)
class Detection:
    """One detection: the score that completed it, the estimated first changed score (both indices
    count every score given to the detector), and the statistic against its threshold then."""

    index: int
    change_index: int
    statistic: float
    threshold: float


class ScoreDrift:
    """Drift detector of one score sequence, configured by :func:`models.drift.calibrate`.

    ``update(score)`` returns True on the update that detects a change (river's ``drift_detected``);
    the detector then starts afresh on the next score, as river's do. ``change_index()`` is the
    estimated index (counting every score ever given to this object, from 0) of the first score of
    the new regime: the least-squares split of
    the values seen since the detector last started afresh (at most the last 8,192 it was fed).
    """

    def __init__(self, config: DriftConfig) -> None:
        self.config = config
        self.detector = make_river_detector(config.kind, config.params)
        self.n = 0  # scores seen
        self.drift_detected = False
        self.detections = 0
        self.statistic = 0.0
        self.threshold = self._static_threshold()
        self._change = -1
        self.last_detections: list[Detection] = []  # those of the last update / update_many call
        self._fed = 0  # values given to the river detector (every stride-th score)
        self._since_reset = 0  # values fed since the river detector last started afresh
        self._sum_since_reset = 0.0
        self._sumsq_since_reset = 0.0
        self._recent = np.zeros(0, dtype=np.float32)  # the last RECENT fed values

    def _static_threshold(self) -> float:
        kind, params = self.config.kind, self.config.params
        if kind == "page_hinkley":
            return float(params.get("threshold", 50.0))
        if kind == "kswin":
            return -math.log10(float(params.get("alpha", 0.005)))
        return 0.0  # ADWIN's bound depends on the split: see _refresh_statistic

    # -- updating --------------------------------------------------------------------------------
    def update(self, score: float) -> bool:
        """Give one score; True when this score completes a detection."""
        return bool(self.update_many(np.asarray([score], dtype=np.float64)))

    def update_many(self, scores: np.ndarray) -> list[int]:
        """Give scores in order; the indices (into ``scores``) of those that completed a detection."""
        scores = np.asarray(scores, dtype=np.float64)
        start, stride = self.n, self.config.stride
        self.n += len(scores)
        first = (-start) % stride  # the next score whose global index is a multiple of stride
        picked = np.arange(first, len(scores), stride)
        self.drift_detected = False
        self.last_detections = []
        if not picked.size:
            return []
        values = self.config.reference.transform(scores[picked])
        hits: list[int] = []
        begin = 0
        while begin < len(values):
            found = self._feed(values, begin)
            if found < 0:
                break
            hits.append(int(picked[found]))
            self.last_detections.append(
                Detection(start + hits[-1], self._change, self.statistic, self.threshold)
            )
            begin = found + 1
        self.drift_detected = bool(hits) and hits[-1] == len(scores) - 1
        return hits

    def _feed(self, values: np.ndarray, begin: int) -> int:
        """Feed values[begin:] until a detection; its position, or -1 when none."""
        detector, update = self.detector, self.detector.update
        chunk = values[begin:].tolist()
        for offset, value in enumerate(chunk):
            update(value)
            if detector._drift_detected:
                position = begin + offset
                self._detected(values, begin, position)
                return position
        self._advance(values[begin:])
        return -1

    def _advance(self, values: np.ndarray) -> None:
        self._fed += len(values)
        self._since_reset += len(values)
        self._sum_since_reset += float(values.sum())
        self._sumsq_since_reset += float(values @ values)
        self._recent = np.concatenate([self._recent, values.astype(np.float32)])[-RECENT:]
        self._refresh_statistic()

    def _detected(self, values: np.ndarray, begin: int, position: int) -> None:
        fed_values = values[begin : position + 1]
        self._advance(fed_values)
        since_reset = self._since_reset
        self.detections += 1
        last_fed = self._fed - 1  # fed index of the detecting value
        kind, det = self.config.kind, self.detector
        segment = self._recent[-min(since_reset, len(self._recent)) :]
        if kind == "adwin":
            # Report ADWIN's own most significant split of its window (the older part beyond the
            # kept values enters as one block): the mean difference and the bound it exceeded.
            n = since_reset
            variance = max(self._sumsq_since_reset / n - (self._sum_since_reset / n) ** 2, 0.0)
            before = since_reset - len(segment)
            before_sum = self._sum_since_reset - float(segment.sum(dtype=np.float64))
            params = self.config.params
            split, self.statistic, self.threshold = adwin_split(segment, before, before_sum, variance,
                params.get("delta", 0.002), params.get("min_window_length", 5))  # fmt: skip
        else:
            if kind == "kswin":
                self.statistic = -math.log10(max(float(det.p_value), 1e-300))
            else:
                up = det._sum_increase - det._min_increase
                down = det._max_decrease - det._sum_decrease
                self.statistic = float(max(up, down))
            # Where: the least-squares split of what the detector saw since it last started afresh.
            split = change_point(segment)
        first_fed = last_fed + 1 - len(segment) + split
        self._change = max(first_fed, 0) * self.config.stride
        self._since_reset, self._sum_since_reset, self._sumsq_since_reset = 0, 0.0, 0.0

    def _refresh_statistic(self) -> None:
        """The running statistic (the Prometheus gauge); at a detection, the detecting one."""
        kind, det = self.config.kind, self.detector
        if kind == "adwin":
            # One of ADWIN's own split tests: the recent half of its window (at most 4,096 values)
            # against the rest, with the bound it would have to exceed.
            width = min(int(det.width), self._since_reset)
            recent = min(width // 2, len(self._recent), RECENT // 2)
            if recent < 5:
                self.statistic, self.threshold = 0.0, 0.0
                return
            sum1 = float(self._recent[-recent:].sum(dtype=np.float64))
            mean0 = (self._sum_since_reset - sum1) / (self._since_reset - recent)
            self.statistic = abs(sum1 / recent - mean0)
            n = self._since_reset
            variance = max(self._sumsq_since_reset / n - (self._sum_since_reset / n) ** 2, 0.0)
            params = self.config.params
            self.threshold = float(adwin_bound(params.get("delta", 0.002), n - recent, recent, variance,
                                               params.get("min_window_length", 5)))  # fmt: skip
        elif kind == "kswin":
            self.statistic = -math.log10(max(float(det.p_value), 1e-300)) if det.p_value else 0.0
        else:
            up = det._sum_increase - det._min_increase if det._min_increase != math.inf else 0.0
            down = det._max_decrease - det._sum_decrease if det._max_decrease != -1 else 0.0
            self.statistic = float(max(up, down, 0.0))

    def change_index(self) -> int:
        """Estimated index of the first score of the new regime, at the last detection (-1: none)."""
        return self._change

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to resume exactly, JSON-able."""
        return {
            "kind": self.config.kind,
            "n": self.n,
            "fed": self._fed,
            "since_reset": self._since_reset,
            "sum_since_reset": self._sum_since_reset,
            "sumsq_since_reset": self._sumsq_since_reset,
            "detections": self.detections,
            "change": self._change,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "recent": base64.b64encode(self._recent.astype("<f4").tobytes()).decode(),
            "detector": _detector_state(self.config.kind, self.detector),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if state["kind"] != self.config.kind:
            raise ValueError(f"state of a {state['kind']} detector given to a {self.config.kind} one")
        self.n, self._fed = int(state["n"]), int(state["fed"])
        self._since_reset, self._sum_since_reset = int(state["since_reset"]), float(state["sum_since_reset"])
        self._sumsq_since_reset = float(state["sumsq_since_reset"])
        self.detections, self._change = int(state["detections"]), int(state["change"])
        self.statistic, self.threshold = float(state["statistic"]), float(state["threshold"])
        self._recent = np.frombuffer(base64.b64decode(state["recent"]), dtype="<f4").astype(np.float32)
        _set_detector_state(self.config.kind, self.detector, state["detector"])
        self.drift_detected = False


def _detector_state(kind: str, det: Any) -> dict[str, Any]:
    base = {"drift_detected": bool(det._drift_detected)}
    if kind == "adwin":
        # river's ADWIN is Rust; its state is its own serialisation (bincode, not pickle).
        return {**base, "adwin": base64.b64encode(det._helper.__getstate__()).decode()}
    if kind == "kswin":
        version, internal, gauss = det._rng.getstate()
        return {**base, "window": list(det.window), "n": det.n, "p_value": float(det.p_value),
                "rng": [version, list(internal), gauss]}  # fmt: skip
    return {
        **base,
        "mean_n": det._x_mean.n,
        "mean": det._x_mean._mean,
        "sum_increase": det._sum_increase,
        "sum_decrease": det._sum_decrease,
        "min_increase": det._min_increase if det._min_increase != math.inf else None,
        "max_decrease": det._max_decrease,
    }


def _set_detector_state(kind: str, det: Any, state: dict[str, Any]) -> None:
    det._reset()
    det._drift_detected = bool(state["drift_detected"])
    if kind == "adwin":
        det._helper.__setstate__(base64.b64decode(state["adwin"]))
    elif kind == "kswin":
        det.window = deque(state["window"], maxlen=det.window_size)
        det.n, det.p_value = int(state["n"]), float(state["p_value"])
        version, internal, gauss = state["rng"]
        det._rng = random.Random()
        det._rng.setstate((version, tuple(internal), gauss))
    else:
        det._x_mean = river_stats.Mean()
        det._x_mean.n, det._x_mean._mean = float(state["mean_n"]), float(state["mean"])
        det._sum_increase, det._sum_decrease = float(state["sum_increase"]), float(state["sum_decrease"])
        low = state["min_increase"]
        det._min_increase = math.inf if low is None else float(low)
        det._max_decrease = float(state["max_decrease"])


def adwin_with_delta(snapshot: bytes, taken_with: float, delta: float, params: dict[str, Any]) -> Any:
    """An ADWIN restored from ``snapshot`` (its Rust state, taken under delta ``taken_with``) that
    tests with ``delta`` from now on.

    Until ADWIN first cuts its window its state does not depend on delta (buckets merge by count
    only), so a snapshot taken under one delta is the state any other delta would have had. The
    calibration uses this to follow one simulated run down a whole grid of deltas at the cost of one
    pass. river serialises delta first, as a little-endian f64: checked here, and by a unit test
    that compares with plain runs.
    """
    if len(snapshot) < 8 or struct.unpack("<d", snapshot[:8])[0] != taken_with:
        raise RuntimeError("unexpected ADWIN state layout (river changed its serialisation?)")
    detector = river_drift.ADWIN(**{**params, "delta": delta})
    detector._helper.__setstate__(struct.pack("<d", delta) + snapshot[8:])
    return detector
