"""Training entry points: data -> encoder + detector + threshold -> a new registry version."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.features import KddEncoder, KddRaw
from models.registry import ModelRef, Registry
from models.thresholds import QuantileThreshold
from models.zoo import detector_class
from stream.datasets import DatasetMissingError, find_kdd_file, is_attack, read_kdd
from stream.datasets.synthetic import synthetic_kdd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NormalSplit:
    """Normal training rows cut three ways: fit, early stopping, threshold calibration."""

    train: np.ndarray
    val: np.ndarray
    calib: np.ndarray


def split_normal(n: int, seed: int = 0, val: float = 0.1, calib: float = 0.1) -> NormalSplit:
    order = np.random.default_rng(seed).permutation(n)
    n_val, n_calib = int(n * val), int(n * calib)
    return NormalSplit(order[n_val + n_calib :], order[:n_val], order[n_val : n_val + n_calib])


def load_kdd_training(data_dir: Path, allow_synthetic: bool = False) -> tuple[pd.DataFrame, str]:
    """The normal connections of the 10% training file (or synthetic ones when allowed and missing)."""
    try:
        path = find_kdd_file(data_dir, "train")
        frame = read_kdd(path)
        source = path.name
    except DatasetMissingError:
        if not allow_synthetic:
            raise
        log.warning("KDD training file missing: training on SYNTHETIC KDD-like data")
        frame, source = synthetic_kdd(100_000, attack_fraction=0.0, seed=1), "synthetic"
    return frame[~is_attack(frame["label"])].reset_index(drop=True), source


def train_kdd(
    registry: Registry,
    data_dir: Path,
    detector: str = "ae",
    protocol: str = "full",
    fpr: float = 0.01,
    seed: int = 0,
    detector_params: dict[str, Any] | None = None,
    allow_synthetic: bool = False,
    promote: bool | None = None,
) -> ModelRef:
    """Train ``detector`` on normal KDD traffic and save it with its encoder and threshold."""
    normal, source = load_kdd_training(data_dir, allow_synthetic)
    split = split_normal(len(normal), seed)
    raw = KddRaw.from_frame(normal)
    encoder = KddEncoder(protocol).fit(_take(raw, split.train))
    X = encoder.transform(raw)
    model = detector_class(detector)(**{"seed": seed, **(detector_params or {})})
    started = time.perf_counter()
    model.fit(X[split.train], X[split.val])
    fit_seconds = time.perf_counter() - started
    calib_scores = model.score(X[split.calib])
    threshold = QuantileThreshold(fpr=fpr).fit(calib_scores)
    training = {
        "data": source,
        "protocol": protocol,
        "rows": {"train": len(split.train), "validation": len(split.val), "calibration": len(split.calib)},
        "seed": seed,
        "fit_seconds": round(fit_seconds, 2),
        "params": model.get_params() if hasattr(model, "get_params") else {},
    }
    metrics = {"calibration_fpr": float(np.mean(calib_scores >= threshold.threshold_))}
    ref = registry.save("kdd", model, encoder, threshold, training, metrics, promote=promote)
    log.info(
        "trained kdd/%s v%d in %.1fs, threshold %.5g",
        detector,
        ref.version,
        fit_seconds,
        threshold.threshold_,
    )
    return ref


def _take(raw: KddRaw, rows: np.ndarray) -> KddRaw:
    return KddRaw(raw.numeric[rows], raw.symbols[rows])
