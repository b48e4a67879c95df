"""Alert thresholds: objects of their own, fitted on validation scores and stored with the model.

Never "max training error", never tuned on test labels. Four kinds:

- ``QuantileThreshold`` (default): the (1 - fpr) quantile of held-out *normal* scores.
- ``GaussianThreshold``: a normal (or log-normal) fit of held-out normal scores, cut at the tail
  probability ``fpr``; smoother than the empirical quantile when few validation rows are at hand.
- ``FBetaThreshold``: the cut with the best F-beta on a *labelled* validation split of training data.
- ``SlidingPercentileThreshold``: dynamic, the percentile of the last ``window`` scores.

Judging and learning are separate calls. ``classify`` (and ``severity``) are pure: judging a batch
twice gives the same answer and changes nothing. A threshold that learns while scoring
(``learns = True``) moves only when ``learn`` is called, which a worker does once a batch is
committed, so a retried batch is never learned twice.

>>> import numpy as np
>>> normal_val_scores = np.random.default_rng(0).exponential(size=10_000)
>>> t = QuantileThreshold(fpr=0.01).fit(normal_val_scores)
>>> round(float(np.mean(t.classify(normal_val_scores))), 3)
0.01
>>> threshold_from_dict(t.to_dict()).threshold_ == t.threshold_
True
"""

from __future__ import annotations

import bisect
from collections import deque
from statistics import NormalDist
from typing import Any, ClassVar, Self

import numpy as np

SEVERITIES = ("low", "medium", "high", "critical")
DEFAULT_RATIOS = (1.0, 2.0, 5.0, 20.0)


def grade(scores: np.ndarray, threshold: float, ratios: tuple[float, ...] = DEFAULT_RATIOS) -> np.ndarray:
    """The severity grading: each score's index into :data:`SEVERITIES`, by its multiple of
    ``threshold`` (``ratios`` are the multiples where low, medium, high and critical begin; a score
    below the threshold grades "low" too). Workers grade alerts with it (``Threshold.severity``), and
    the dashboard grades score records with it, with the production threshold's own ratios.

    >>> grade(np.array([0.5, 1.0, 2.5, 30.0]), 1.0).tolist()
    [0, 0, 1, 3]
    >>> grade(np.array([1.5, 2.5]), 1.0, ratios=(1.0, 1.5, 2.0, 3.0)).tolist()
    [1, 2]
    """
    ratio = np.asarray(scores, dtype=np.float64) / max(threshold, 1e-12)
    return np.clip(np.searchsorted(ratios, ratio, side="right") - 1, 0, len(SEVERITIES) - 1)


class Threshold:
    """Base: a fitted ``threshold_``; ``classify`` flags scores at or above it; severities by ratio.

    Severity grows with how far a score is beyond the threshold: ``ratios`` are the multiples of
    the threshold where low, medium, high and critical begin. Subclasses implement ``fit`` and,
    when they learn more than the cut itself, ``state`` / ``set_state`` for persistence.
    """

    kind: ClassVar[str] = "fixed"
    learns: ClassVar[bool] = False  # True: ``learn`` moves the cut as committed scores arrive
    threshold_: float  # set by fit() (or by the constructor of FixedThreshold)

    def __init__(self, ratios: tuple[float, ...] = DEFAULT_RATIOS) -> None:
        self.ratios = tuple(ratios)

    def fit(self, scores: np.ndarray, labels: np.ndarray | None = None) -> Self:
        """Fit on validation scores; ``labels`` (True = anomaly) when the split is labelled."""
        raise NotImplementedError

    def classify(self, scores: np.ndarray) -> np.ndarray:
        """Which scores alert (score >= threshold). Pure: changes nothing."""
        return np.asarray(scores) >= self.threshold_

    def learn(self, scores: np.ndarray) -> None:
        """Learn from scores of committed events, in stream order (no-op for a fixed cut)."""

    def severity_levels(self, scores: np.ndarray) -> np.ndarray:
        """Severity of each score as an index into :data:`SEVERITIES` (:func:`grade`, by ``ratios``)."""
        return grade(scores, self.threshold_, self.ratios)

    def severity(self, scores: np.ndarray) -> list[str]:
        """Severity of each score (scores below the threshold get "low" too; filter with classify)."""
        return [SEVERITIES[i] for i in self.severity_levels(scores)]

    def params(self) -> dict[str, Any]:
        """Constructor arguments, as stored (``threshold_from_dict`` passes them back)."""
        return {"ratios": list(self.ratios)}

    def state(self) -> dict[str, Any]:
        """Fitted values other than ``threshold_`` (JSON-ready)."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what ``state`` returned."""

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, "threshold": float(self.threshold_), **self.params()}
        state = self.state()
        return {**data, "state": state} if state else data


def _normal_part(scores: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if labels is not None:  # a labelled validation split: use its normal part only
        scores = scores[~np.asarray(labels, dtype=bool)]
    if scores.size == 0:
        raise ValueError("no normal validation scores to fit a threshold on")
    return scores


def _check_fpr(fpr: float) -> float:
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    return float(fpr)


class FixedThreshold(Threshold):
    """A threshold set by hand (``anomstream train`` never makes one; tests and overrides do)."""

    kind: ClassVar[str] = "fixed"

    def __init__(self, threshold: float, ratios: tuple[float, ...] = DEFAULT_RATIOS) -> None:
        super().__init__(ratios)
        self.threshold_ = float(threshold)

    def fit(self, scores: np.ndarray, labels: np.ndarray | None = None) -> Self:
        return self


class QuantileThreshold(Threshold):
    """Threshold at the (1 - fpr) quantile of scores of held-out *normal* data."""

    kind: ClassVar[str] = "quantile"

    def __init__(self, fpr: float = 0.01, ratios: tuple[float, ...] = DEFAULT_RATIOS) -> None:
        super().__init__(ratios)
        self.fpr = _check_fpr(fpr)

    def fit(self, scores: np.ndarray, labels: np.ndarray | None = None) -> Self:
        normal = _normal_part(scores, labels)
        # "higher": the cut is an observed score, so at most fpr of the validation rows reach it ...
        cut = float(np.quantile(normal, 1.0 - self.fpr, method="higher"))
        if np.mean(normal >= cut) > self.fpr:
            # ... unless many rows tie at it (a detector's floor: every calibration window scored
            # "nothing unusual"): the cut goes just above the tie, or it would alert on every row.
            cut = float(np.nextafter(cut, np.inf))
        self.threshold_ = cut
        self.n_validation_ = int(normal.size)
        return self

    def params(self) -> dict[str, Any]:
        return {**super().params(), "fpr": self.fpr}

    def state(self) -> dict[str, Any]:
        return {"n_validation": self.n_validation_} if hasattr(self, "n_validation_") else {}

    def set_state(self, state: dict[str, Any]) -> None:
        if "n_validation" in state:
            self.n_validation_ = int(state["n_validation"])


class GaussianThreshold(Threshold):
    """Fit mean and std of (log) normal validation scores; cut where the upper tail holds ``fpr``.

    Reconstruction errors are positive and right-skewed, so by default (``log=None``) the fit is on
    ``log(score)`` whenever every validation score is positive, which makes the tail far closer to
    Gaussian; scores that can be zero or negative are fitted as they are.

    >>> import numpy as np
    >>> t = GaussianThreshold(fpr=0.025).fit(np.exp(np.random.default_rng(0).normal(0, 1, 50_000)))
    >>> round(t.threshold_, 1)  # exp(1.96)
    7.1
    """

    kind: ClassVar[str] = "gaussian"

    def __init__(
        self, fpr: float = 0.01, log: bool | None = None, ratios: tuple[float, ...] = DEFAULT_RATIOS
    ) -> None:
        super().__init__(ratios)
        self.fpr = _check_fpr(fpr)
        self.log = log

    def fit(self, scores: np.ndarray, labels: np.ndarray | None = None) -> Self:
        normal = _normal_part(scores, labels)
        positive = bool(np.all(normal > 0))
        if self.log and not positive:
            raise ValueError("log=True needs positive scores; use log=False (or None to decide)")
        self.log_ = positive if self.log is None else self.log
        values = np.log(normal) if self.log_ else normal
        self.mean_, self.std_ = float(values.mean()), float(values.std(ddof=1) if values.size > 1 else 0.0)
        self.n_validation_ = int(normal.size)
        cut = self.mean_ + NormalDist().inv_cdf(1.0 - self.fpr) * self.std_
        self.threshold_ = float(np.exp(cut) if self.log_ else cut)
        return self

    def params(self) -> dict[str, Any]:
        return {**super().params(), "fpr": self.fpr, "log": self.log}

    def state(self) -> dict[str, Any]:
        return {"log": self.log_, "mean": self.mean_, "std": self.std_, "n_validation": self.n_validation_}

    def set_state(self, state: dict[str, Any]) -> None:
        self.log_, self.mean_, self.std_ = bool(state["log"]), float(state["mean"]), float(state["std"])
        self.n_validation_ = int(state["n_validation"])


class FBetaThreshold(Threshold):
    """The cut with the best F-beta on a labelled validation split (drawn from training data).

    ``beta`` > 1 weighs recall higher (F2 for "miss few attacks"), < 1 precision. Ties go to the
    highest cut, i.e. the fewest alerts. The optimum depends on the anomaly share of the validation
    split, so draw that split the way the stream is expected to look.

    >>> import numpy as np
    >>> t = FBetaThreshold(beta=1.0).fit(np.array([0.1, 0.2, 0.3, 0.4, 0.9]), np.array([0, 0, 1, 0, 1]))
    >>> t.threshold_, round(t.fbeta_, 3)
    (0.3, 0.8)
    """

    kind: ClassVar[str] = "fbeta"

    def __init__(self, beta: float = 1.0, ratios: tuple[float, ...] = DEFAULT_RATIOS) -> None:
        if beta <= 0:
            raise ValueError(f"beta must be positive, got {beta}")
        super().__init__(ratios)
        self.beta = float(beta)

    def fit(self, scores: np.ndarray, labels: np.ndarray | None = None) -> Self:
        if labels is None:
            raise ValueError("FBetaThreshold needs labels: fit it on a labelled validation split")
        scores = np.asarray(scores, dtype=np.float64)
        y = np.asarray(labels, dtype=bool)
        if y.all() or not y.any():
            raise ValueError("the labelled validation split needs both normal and anomalous rows")
        order = np.argsort(-scores, kind="stable")
        s, hits = scores[order], y[order]
        # Only the last row of each run of equal scores is a reachable cut ("score >= cut").
        last = np.r_[s[1:] != s[:-1], True]
        tp = np.cumsum(hits)[last]
        flagged = (np.arange(len(s)) + 1)[last]
        b2 = self.beta**2
        fbeta = (1 + b2) * tp / (flagged + b2 * y.sum())
        best = int(np.argmax(fbeta))  # argmax takes the first, i.e. the highest cut, on ties
        self.threshold_ = float(s[last][best])
        self.fbeta_ = float(fbeta[best])
        self.n_validation_ = int(len(s))
        self.n_anomalies_ = int(y.sum())
        return self

    def params(self) -> dict[str, Any]:
        return {**super().params(), "beta": self.beta}

    def state(self) -> dict[str, Any]:
        return {"fbeta": self.fbeta_, "n_validation": self.n_validation_, "n_anomalies": self.n_anomalies_}

    def set_state(self, state: dict[str, Any]) -> None:
        self.fbeta_ = float(state["fbeta"])
        self.n_validation_, self.n_anomalies_ = int(state["n_validation"]), int(state["n_anomalies"])


class SlidingPercentileThreshold(Threshold):
    """Dynamic threshold: the ``percentile`` of the last ``window`` scores learnt.

    ``fit`` seeds the window with the last ``window`` normal validation scores; ``learn`` adds the
    scores of committed events, in order, and moves the cut. ``classify`` judges a batch against the
    cut as it stands, so every event of a batch is judged against the scores committed before it.

    It suits streams where anomalies are rare. Where they come in floods (KDD's ``corrected`` is 80%
    attacks), the window fills with attack scores and the cut rises to meet them. ``clip_alerts=True``
    learns a flagged score at the cut's value instead: a flood then holds the cut where it is (it
    cannot drag it up), while lower scores still move it down; dropping flagged scores altogether
    would ratchet the cut down, since the window would only ever hold scores below it.

    >>> t = SlidingPercentileThreshold(window=4, percentile=75).fit([1.0, 2.0, 3.0, 4.0])
    >>> t.threshold_
    4.0
    >>> t.classify([10.0, 1.5]).tolist(), t.threshold_   # judging learns nothing
    ([True, False], 4.0)
    >>> t.learn([10.0, 1.5]); t.threshold_               # window now [3, 4, 10, 1.5]
    10.0
    >>> c = SlidingPercentileThreshold(window=4, percentile=75, clip_alerts=True).fit([1.0, 2.0, 3.0, 4.0])
    >>> c.learn([10.0, 1.5]); c.threshold_               # window now [3, 4, 4 (clipped 10), 1.5]
    4.0
    """

    kind: ClassVar[str] = "sliding"
    learns: ClassVar[bool] = True

    def __init__(
        self,
        window: int = 1000,
        percentile: float = 99.0,
        clip_alerts: bool = False,
        ratios: tuple[float, ...] = DEFAULT_RATIOS,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        super().__init__(ratios)
        self.window = int(window)
        self.percentile = float(percentile)
        self.clip_alerts = clip_alerts

    def fit(self, scores: np.ndarray, labels: np.ndarray | None = None) -> Self:
        self._reset(_normal_part(scores, labels)[-self.window :].tolist())
        return self

    def _reset(self, recent: list[float]) -> None:
        self._recent: deque[float] = deque((float(s) for s in recent), maxlen=self.window)
        self._sorted = sorted(self._recent)
        self._refresh()

    def _refresh(self) -> None:
        # The "higher" percentile of the window, as QuantileThreshold uses: an observed score.
        rank = int(np.ceil(self.percentile / 100.0 * (len(self._sorted) - 1)))
        self.threshold_ = float(self._sorted[rank])

    def update(self, score: float) -> None:
        """Add one score to the window (dropping the oldest when full) and move the threshold."""
        score = float(score)
        if len(self._recent) == self.window:
            oldest = self._recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        self._recent.append(score)
        bisect.insort(self._sorted, score)
        self._refresh()

    def learn(self, scores: np.ndarray) -> None:
        """Add committed scores, in order; with ``clip_alerts`` a flagged one enters at the cut."""
        for score in np.asarray(scores, dtype=np.float64).ravel().tolist():
            self.update(min(score, self.threshold_) if self.clip_alerts else score)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "window": self.window,
            "percentile": self.percentile,
            "clip_alerts": self.clip_alerts,
        }

    def state(self) -> dict[str, Any]:
        return {"recent": list(self._recent)}

    def set_state(self, state: dict[str, Any]) -> None:
        self._reset(list(state["recent"]))


THRESHOLDS: dict[str, type[Threshold]] = {
    cls.kind: cls
    for cls in (
        FixedThreshold,
        QuantileThreshold,
        GaussianThreshold,
        FBetaThreshold,
        SlidingPercentileThreshold,
    )
}


def make_threshold(kind: str, **params: Any) -> Threshold:
    """An unfitted threshold by kind name (``quantile``, ``gaussian``, ``fbeta``, ``sliding``)."""
    if kind not in THRESHOLDS or kind == "fixed":
        raise ValueError(f"unknown threshold kind {kind!r}; use one of quantile, gaussian, fbeta, sliding")
    return THRESHOLDS[kind](**params)


# Kinds whose cut is set by a target false-positive rate on normal validation scores.
FPR_KINDS = ("quantile", "gaussian")


def threshold_for(kind: str, fpr: float, params: dict[str, Any] | None = None) -> Threshold:
    """:func:`make_threshold` given the target ``fpr`` when ``kind`` takes one; ``params`` win."""
    params = dict(params or {})
    if kind in FPR_KINDS:
        params = {"fpr": fpr, **params}
    return make_threshold(kind, **params)


def threshold_from_dict(data: dict[str, Any]) -> Threshold:
    """Rebuild a fitted threshold from its stored form (see ``Threshold.to_dict``)."""
    kind = data.get("kind")
    if kind not in THRESHOLDS:
        raise ValueError(f"unknown threshold kind {kind!r}; known: {sorted(THRESHOLDS)}")
    params = {k: v for k, v in data.items() if k not in ("kind", "threshold", "state")}
    if "ratios" in params:
        params["ratios"] = tuple(params["ratios"])
    cls = THRESHOLDS[kind]
    obj: Threshold = cls(data["threshold"], **params) if cls is FixedThreshold else cls(**params)
    obj.threshold_ = float(data["threshold"])
    obj.set_state(data.get("state", {}))
    return obj


def judge_stream(threshold: Threshold, scores: np.ndarray, batch_size: int = 1) -> np.ndarray:
    """Flags of a scored stream, in order, judged the way a worker judges it: each batch of
    ``batch_size`` events is classified, then learnt. For offline evaluation; it moves a learning
    threshold (fit a fresh one, or rebuild it from ``to_dict()``, to judge another stream)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if not threshold.learns:
        return threshold.classify(scores)
    flags = np.zeros(scores.shape[0], dtype=bool)
    for start in range(0, scores.shape[0], batch_size):
        chunk = scores[start : start + batch_size]
        flags[start : start + batch_size] = threshold.classify(chunk)
        threshold.learn(chunk)
    return flags
