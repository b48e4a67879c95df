"""Training data of each stream, encoded and cut for fitting, early stopping and thresholds.

Every cut is seeded, and everything a detector or threshold learns from comes from training data:

- KDD: the 10% file, read through its built-in schema, is cut as any records schema's file is
  (:mod:`models.training.schema_data`): normal connections into fit / early-stopping / calibration
  rows; a seeded slice of its attack rows, with the calibration rows, forms the labelled validation
  split that ``--threshold fbeta`` needs. The test file (``corrected``) is never read here.
- ECG5000: read through its built-in schema and cut as a windows schema's table under protocol
  ``holdout`` (:mod:`models.training.schema_data`): normal beats into fit / early-stopping /
  calibration / test rows, abnormal beats into a labelled-validation slice and test rows.
- Sensor series: the complete windows of the training part of a series (NAB's probationary period:
  its first 15%, at most 750 rows), cut in time order, never shuffled across the cuts, so the
  early-stopping and calibration windows come after the windows the model learns from::

      probation windows:  |---------- fit (70%) ----------|-- early stop (15%) --|-- calib (15%) --|

A dataset schema's stream (``anomstream train --schema S``) is cut the same ways, by the schema's
kind: :mod:`models.training.schema_data`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.features import FeatureEncoder, WindowEncoder
from stream.datasets import (
    DatasetFormatError,
    DatasetMissingError,
    find_kdd_file,
    is_attack,
)
from stream.datasets.kdd import kdd_schema_name
from stream.datasets.schema import DatasetSchema, builtin_schema
from stream.datasets.sensor import SensorSeries
from stream.datasets.synthetic import synthetic_kdd
from stream.datasets.table import Table, read_table
from stream.windows import sliding_windows, window_end_rows

log = logging.getLogger(__name__)

SENSOR_CUTS = (0.70, 0.85)  # fit | early stop | calibration, as fractions of the probation windows
MIN_WINDOWS = 40


@dataclass(frozen=True)
class TrainingData:
    """Encoded training data of one stream, cut for fitting, early stopping and thresholds."""

    stream: str
    encoder: FeatureEncoder
    fit: np.ndarray  # normal rows the detector learns from
    early_stop: np.ndarray  # normal rows that stop training (never fitted)
    calibration: np.ndarray  # held-out normal rows: the threshold's validation scores
    # Labelled validation split (calibration rows + held-out anomalies), where the data has labels.
    labelled: np.ndarray | None = None
    labelled_anomaly: np.ndarray | None = None  # bool per labelled row
    description: dict[str, Any] = field(default_factory=dict)  # source, protocol, row counts


# -- KDD ------------------------------------------------------------------------------------------
def load_kdd_training(data_dir: Path, allow_synthetic: bool = False) -> Table:
    """The whole 10% training file read through its built-in schema (kdd99, or nslkdd for an NSL-KDD
    file), or synthetic KDD-like records when allowed and missing (as the kdd99 schema reads them)."""
    try:
        path = find_kdd_file(data_dir, "train")
        return read_table(builtin_schema(kdd_schema_name(path)), path)
    except DatasetMissingError:
        if not allow_synthetic:
            raise
        log.warning("KDD training file missing: training on SYNTHETIC KDD-like data")
        frame = synthetic_kdd(120_000, attack_fraction=0.2, seed=1)
        schema = builtin_schema("kdd99")
        labels = frame["label"].to_numpy(dtype=object)
        return Table(schema, "synthetic", frame[schema.scored_columns()], labels=labels,
                     normal=~np.asarray(is_attack(frame["label"])))  # fmt: skip


# -- sensor windows -------------------------------------------------------------------------------
def fit_window_count(rows: int, window: int) -> int:
    """How many of the first windows of ``rows`` training rows the detector is fitted on."""
    return int(len(window_end_rows(rows, window)) * SENSOR_CUTS[0])


def sensor_training_data(
    series: Sequence[SensorSeries],
    window: int,
    scaling: str = "global",
    rows: int | Sequence[int] | None = None,
    stream: str = "sensor",
    schema: DatasetSchema | None = None,
) -> TrainingData:
    """Windows inside the first ``rows`` rows (one count for all series, or one per series; default:
    each series' probation) of every series, cut in time order; a :class:`WindowEncoder` (one min-max
    range per channel) fitted on the fit windows. Multivariate series give windows of all their
    channels (:func:`~stream.windows.sliding_windows`); every series must have as many."""
    channels = {item.channels for item in series}
    if len(channels) != 1:
        raise DatasetFormatError(f"series of {sorted(channels)} channels cannot share one model")
    limits = [
        item.probation if rows is None else min(rows if isinstance(rows, int) else rows[i], len(item))
        for i, item in enumerate(series)
    ]
    parts: list[list[np.ndarray]] = [[], [], []]
    for item, limit in zip(series, limits, strict=True):
        windows = sliding_windows(item.values[:limit], window)
        if len(windows) < MIN_WINDOWS:
            raise DatasetFormatError(
                f"{item.name}: only {len(windows)} windows of {window} rows in its first {limit} rows "
                f"(at least {MIN_WINDOWS} needed): use a shorter window (--window, or a schema's [series] "
                "window), or train on more rows"
            )
        cut1, cut2 = (int(len(windows) * c) for c in SENSOR_CUTS)
        for part, block in zip(parts, (windows[:cut1], windows[cut1:cut2], windows[cut2:]), strict=True):
            part.append(block)
    fit, early_stop, calibration = (np.concatenate(p) for p in parts)
    encoder = WindowEncoder(window, scaling, channels.pop(), schema).fit(fit)
    description = {
        "data": [item.name for item in series],
        "window": window,
        "scaling": scaling,
        **({"channels": encoder.channels} if encoder.channels > 1 else {}),
        "rows": {
            "training_rows": {item.name: limit for item, limit in zip(series, limits, strict=True)},
            "fit": len(fit),
            "early_stop": len(early_stop),
            "calibration": len(calibration),
        },
    }
    return TrainingData(
        stream,
        encoder,
        encoder.transform(fit),
        encoder.transform(early_stop),
        encoder.transform(calibration),
        description=description,
    )
