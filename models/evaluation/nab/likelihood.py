"""Raw detector scores -> NAB anomaly scores in [0, 1] that one corpus-wide threshold can cut.

NAB tunes ONE threshold per profile for all 58 series, but a reconstruction error of 0.01 means
"normal" on one series and "broken" on another, and a model fitted on the first 15% of a series
sees its slow drift as ever larger errors. The mapping used is Numenta's anomaly likelihood (nupic
``anomaly_likelihood.py``, as NAB's HTM detector applies it to its raw scores):

* the mean of the last 10 scores is compared with a Gaussian fitted to such means over the series'
  own recent history (re-estimated every 100 rows, at most 8640 rows back), so the score says how
  unusual the present is *for this series now*, whatever the scale of the raw score;
* a red alarm (tail probability below 1e-5) right after a red alarm is damped to yellow (1e-3): a long
  excursion fires once instead of on every row, and NAB charges every false-positive row;
* the likelihood ``L`` is reported on NAB's log scale ``log(1 - L) / log(1e-10)`` (0.5 -> 0.03,
  0.999 -> 0.3, 0.99999 -> 0.5), so one threshold means the same tail probability on every series.

It is causal: each row's score depends only on earlier raw scores, so a consumer of the ``scores``
topic computes exactly what the offline benchmark computes.

>>> import numpy as np
>>> quiet = np.abs(np.random.default_rng(0).normal(0.1, 0.01, 400))
>>> scores = likelihood_scores(np.r_[quiet, [1.0, 1.0, 1.0]], estimation=100)
>>> bool(scores[:400].max() < 0.5 <= scores[400]), bool(scores[401] < 0.5)   # fires once
(True, True)
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

RED, YELLOW = 1e-5, 1e-3  # tail probabilities: nupic's red (0.99999) and yellow (0.999) levels
_LOG_FLOOR = math.log(1e-10)


class AnomalyLikelihood:
    """Streaming anomaly likelihood over scores in [0, 1] (one ``update`` per row, in row order).

    ``skip`` leading scores are kept out of the first estimate (scores of windows the model was fitted
    on, lower than any later score would be); no likelihood is reported (0.5) before ``skip +
    estimation`` rows. The normal fit of the moving averages is floored at ``min_std``.

    >>> al = AnomalyLikelihood(skip=0, estimation=50)
    >>> [round(al.update(0.1), 2) for _ in range(60)][-1]
    0.5
    >>> round(al.update(1.0), 3), round(al.update(1.0), 3)   # a jump: red once, then damped to yellow
    (1.0, 0.999)
    """

    def __init__(
        self,
        skip: int = 0,
        estimation: int = 100,
        average: int = 10,
        history: int = 8640,
        reestimate: int = 100,
        min_std: float = 0.01,
    ) -> None:
        self.skip = skip
        self.estimation = estimation
        self.average = average
        self.reestimate = reestimate
        self.min_std = min_std
        self._recent: deque[float] = deque(maxlen=average)
        self._averages: deque[float] = deque(maxlen=history)
        self._rows = 0
        self._mean: float | None = None
        self._std = 1.0
        self._previous_red = False

    def _estimate(self) -> None:
        # While the first rows are still in the history, leave the skipped ones out of the fit.
        shifted_out = max(0, self._rows - (self._averages.maxlen or 0))
        skip = max(0, self.skip - shifted_out)
        values = np.fromiter(self._averages, np.float64)[skip:]
        if len(values):
            self._mean = float(values.mean())
            self._std = max(float(values.std()), self.min_std)

    def update(self, score: float) -> float:
        """Add one score; return the likelihood that the recent scores are not normal, in [0, 1]."""
        self._recent.append(float(score))
        moving = sum(self._recent) / len(self._recent)
        likelihood = 0.5
        if self._rows >= self.skip + self.estimation:
            if self._mean is None or self._rows % self.reestimate == 0:
                self._estimate()
            assert self._mean is not None
            # nupic folds the lower tail onto the upper one: an unusually *low* average counts too.
            z = abs(moving - self._mean) / self._std
            tail = 0.5 * math.erfc(z / math.sqrt(2.0))
            red = tail <= RED
            if red and self._previous_red:
                tail = YELLOW
            self._previous_red = red
            likelihood = 1.0 - tail
        self._averages.append(moving)
        self._rows += 1
        return likelihood


def log_likelihood(likelihood: np.ndarray | float) -> np.ndarray:
    """NAB's log scale for likelihoods: 0.5 -> 0.03, 0.999 -> 0.3, 0.99999 -> 0.5, 1 - 1e-10 -> 1."""
    values = np.asarray(likelihood, dtype=np.float64)
    return np.log(1.0000000001 - values) / _LOG_FLOOR


def likelihood_scores(calibrated: np.ndarray, skip: int = 0, **params: int | float) -> np.ndarray:
    """:class:`AnomalyLikelihood` over a series' calibrated scores (NaN rows get 0), on NAB's log scale."""
    tracker = AnomalyLikelihood(skip=skip, **params)  # type: ignore[arg-type]
    values = np.nan_to_num(np.asarray(calibrated, dtype=np.float64), nan=0.0)
    return log_likelihood(np.fromiter((tracker.update(v) for v in values.tolist()), np.float64, len(values)))
