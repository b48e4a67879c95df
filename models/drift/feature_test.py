"""A windowed two-sample test on encoded input features: drift the score alone can miss.

A model's score summarises its input; a change that moves features along directions the model
barely weighs (a new service, a shifted byte count within the normal range) can leave the score
distribution as it was. :class:`FeatureDrift` compares a window of encoded normal inputs with a
reference window, feature by feature, with a two-sample Kolmogorov-Smirnov test, and combines the
features with a Bonferroni correction: drift when the smallest p-value times the number of tested
features is at most ``alpha``. Under no drift a window raises a false alarm with probability at most
``alpha`` whatever the features' correlation (Bonferroni holds under any dependence; ties make KS
conservative), so the expected run time between false alarms is at least ``events_per_window /
alpha``: :func:`feature_alpha` sets alpha from the same target as the score detectors.

>>> rng = np.random.default_rng(0)
>>> reference = rng.normal(size=(2000, 5))
>>> test = FeatureDrift(reference, alpha=1e-4, names=list("abcde"))
>>> test.test(rng.normal(size=(2000, 5))).drift
False
>>> moved = rng.normal(size=(2000, 5)); moved[:, 3] += 0.3
>>> result = test.test(moved)
>>> result.drift, result.features[0][0]
(True, 'd')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sp_stats


def feature_alpha(target_ert: int, window: int, sample_every: int) -> float:
    """Per-window false-alarm probability for at most one false alarm per ``target_ert`` events,
    when a window holds ``window`` inputs sampled one in ``sample_every``.

    >>> round(feature_alpha(19_495_725, 2000, 10), 6)
    0.001026
    """
    return min(window * sample_every / target_ert, 0.5)


@dataclass(frozen=True)
class FeatureTestResult:
    drift: bool
    statistic: float  # -log10 of the Bonferroni-adjusted smallest p-value
    threshold: float  # -log10(alpha)
    features: list[tuple[str, float, float]]  # (name, KS statistic, adjusted p) of drifted ones, worst first


class FeatureDrift:
    """Per-feature KS tests of a window against ``reference`` (rows: inputs, columns: features)."""

    def __init__(self, reference: np.ndarray, alpha: float, names: list[str] | None = None) -> None:
        self.reference = np.asarray(reference, dtype=np.float64)
        self.alpha = alpha
        self.names = names or [f"f{i}" for i in range(self.reference.shape[1])]
        # A feature constant in the reference cannot be tested by ranks (any new value is "drift"
        # with a p-value that only reflects the window size): such columns are left out.
        self.tested = np.flatnonzero(np.ptp(self.reference, axis=0) > 0)

    def test(self, window: np.ndarray) -> FeatureTestResult:
        window = np.asarray(window, dtype=np.float64)
        if not len(self.tested):
            return FeatureTestResult(False, 0.0, -np.log10(self.alpha), [])
        reference, window = self.reference[:, self.tested], window[:, self.tested]
        result = sp_stats.ks_2samp(reference, window, axis=0, method="asymp")
        adjusted = np.minimum(np.asarray(result.pvalue) * len(self.tested), 1.0)
        statistic = float(-np.log10(max(float(adjusted.min()), 1e-300)))
        order = np.argsort(adjusted)
        drifted = [(self.names[self.tested[i]], float(result.statistic[i]), float(adjusted[i]))
                   for i in order if adjusted[i] <= self.alpha]  # fmt: skip
        return FeatureTestResult(bool(drifted), statistic, float(-np.log10(self.alpha)), drifted)
