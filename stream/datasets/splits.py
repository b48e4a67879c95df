"""Seeded splits of dataset rows, shared by training (what a model learns from) and replay (which rows a
live stream may show without showing the model its own training data)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.datasets.ecg import ECG_NORMAL


@dataclass(frozen=True)
class NormalSplit:
    """Normal training rows cut three ways: fit, early stopping, threshold calibration."""

    train: np.ndarray
    val: np.ndarray
    calib: np.ndarray


def split_normal(n: int, seed: int = 0, val: float = 0.1, calib: float = 0.1) -> NormalSplit:
    """A seeded permutation of ``range(n)`` cut into fit / early-stopping / calibration rows.

    >>> s = split_normal(10, val=0.2, calib=0.1)
    >>> len(s.train), len(s.val), len(s.calib)
    (7, 2, 1)
    """
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_calib = int(n * val), int(n * calib)
    return NormalSplit(order[n_val + n_calib :], order[:n_val], order[n_val : n_val + n_calib])


@dataclass(frozen=True)
class EcgSplit:
    """Row indices into the ECG5000 file, each row in exactly one part."""

    fit: np.ndarray
    early_stop: np.ndarray
    calibration: np.ndarray
    anomaly_validation: np.ndarray
    test: np.ndarray


def ecg_split(
    labels: np.ndarray, seed: int = 0, test_normal: float = 0.3, anomaly_validation: float = 0.1
) -> EcgSplit:
    """ECG5000's :func:`holdout_split`: class 1 beats are normal.

    >>> s = ecg_split(np.array([1] * 100 + [0] * 50))
    >>> [len(p) for p in (s.fit, s.early_stop, s.calibration, s.anomaly_validation, s.test)]
    [49, 7, 14, 5, 75]
    """
    return holdout_split(labels == ECG_NORMAL, seed, test_normal, anomaly_validation)


def holdout_split(
    normal_rows: np.ndarray, seed: int = 0, test_normal: float = 0.3, anomaly_validation: float = 0.1
) -> EcgSplit:
    """Seeded split of labelled rows (``normal_rows``: bool per row) with held-out test rows: 30% of
    normal rows and 90% of the others are test rows; the other normal rows are cut 70/10/20 into fit,
    early stopping and calibration (a larger calibration share than KDD's, since ECG5000 is small and a
    1% quantile needs a few hundred rows); the remaining 10% of anomalous rows join the calibration rows
    in the labelled validation split (``fbeta``).
    """
    rng = np.random.default_rng(seed)
    normal = rng.permutation(np.flatnonzero(normal_rows))
    abnormal = rng.permutation(np.flatnonzero(~normal_rows))
    n_test = int(round(len(normal) * test_normal))
    train_normal = normal[n_test:]
    cut = split_normal(len(train_normal), seed, val=0.1, calib=0.2)
    n_val = int(round(len(abnormal) * anomaly_validation))
    return EcgSplit(
        fit=np.sort(train_normal[cut.train]),
        early_stop=np.sort(train_normal[cut.val]),
        calibration=np.sort(train_normal[cut.calib]),
        anomaly_validation=np.sort(abnormal[:n_val]),
        test=np.sort(np.r_[normal[:n_test], abnormal[n_val:]]),
    )
