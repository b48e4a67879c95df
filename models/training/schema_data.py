"""Training data of a dataset schema's stream (``anomstream train --schema S``), cut by the schema's kind.

The file is read through its schema (:func:`stream.datasets.table.read_table`); with
``training_rows`` only its first rows are read, so a model learns the past and the rest of the file
can be replayed as its future.

- ``records``: the rows whose label is normal (every row when the schema has no label) are cut as
  KDD's are (:func:`stream.datasets.splits.split_normal`: seeded fit / early-stopping / calibration
  rows); a :class:`~models.features.TableEncoder` is fitted on the fit rows. With labels, the
  calibration rows plus the same share of the anomalous rows (seeded) form the labelled validation
  split that ``--threshold fbeta`` needs.
- ``windows``: the same, one row being one window of samples, with ECG's larger calibration share;
  under protocol ``holdout`` (the built-in ECG5000 stream's) test rows are held out first
  (:func:`stream.datasets.splits.holdout_split`).
- ``series``: sliding windows of the schema's window length over each series' training rows, cut in
  time order as a sensor series is (:func:`models.training.data.sensor_training_data`): the first
  ``training_rows`` rows, else the rows before its first anomaly-labelled row, else (no label) NAB's
  probationary period.

Every encoder carries the schema, so the worker decodes the stream's messages the way the model was
trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.features import RecordsRaw, WindowEncoder, protocol_encoder
from models.training.data import TrainingData, sensor_training_data
from stream.datasets.files import DatasetFormatError
from stream.datasets.schema import DatasetSchema
from stream.datasets.sensor import table_series
from stream.datasets.splits import holdout_split, split_normal
from stream.datasets.table import Table, read_table

# Normal rows needed to cut fit, early-stopping and calibration rows (10 calibration rows at least).
MIN_NORMAL_ROWS = 100
RECORDS_SPLIT = (0.1, 0.1)  # early stop, calibration: KDD's shares
WINDOWS_SPLIT = (0.1, 0.2)  # ECG's: a small file needs more calibration rows for a 1% quantile


def schema_training_data(
    schema: DatasetSchema,
    path: str | Path | None = None,
    training_rows: int | None = None,
    seed: int = 0,
    window: int | None = None,
    protocol: str = "full",
) -> TrainingData:
    """The training data of ``schema``'s stream from ``path`` (default: the schema's ``source.path``).

    ``window``: a series' window length (default: the schema's); ``protocol``: the records' encoder
    (:func:`~models.features.protocol_encoder`). Raises DatasetMissingError or DatasetFormatError, one
    line each (no normal rows, too few rows for the cuts).
    """
    try:
        table = read_table(schema, path, limit=training_rows)
    except DatasetFormatError as exc:
        if training_rows is None:
            raise
        raise DatasetFormatError(
            f"{exc} (only its first {training_rows:,} rows were read: --training-rows)"
        ) from None
    return table_training_data(table, training_rows, seed, window, protocol)


def table_training_data(
    table: Table,
    training_rows: int | None = None,
    seed: int = 0,
    window: int | None = None,
    protocol: str = "full",
) -> TrainingData:
    """The training data of a table read through its schema (``training_rows``: how many rows were
    read, when not the whole file), cut by the schema's kind."""
    schema = table.schema
    if schema.kind == "series":
        return _series(table, training_rows, window)
    normal = table.normal if table.normal is not None else np.ones(len(table), dtype=bool)
    if schema.kind == "records":
        raw = RecordsRaw(table.numeric(), table.symbols())
        data = _tabular(
            table, raw, protocol_encoder(schema, protocol), normal, seed, RECORDS_SPLIT, training_rows
        )
        data.description["protocol"] = protocol
        return data
    samples = table.numeric()
    encoder = WindowEncoder(samples.shape[1], schema=schema)
    if protocol == "holdout":
        return _holdout(table, samples, encoder, seed)
    return _tabular(table, samples, encoder, normal, seed, WINDOWS_SPLIT, training_rows)


def _tabular(
    table: Table,
    raw: RecordsRaw | np.ndarray,
    encoder: Any,  # a TableEncoder of records, or a WindowEncoder of windows
    normal: np.ndarray,
    seed: int,
    shares: tuple[float, float],
    training_rows: int | None,
) -> TrainingData:
    """Rows (records, or windows) cut as KDD's: normal rows into fit / early stop / calibration, and the
    same share of the anomalous rows beside the calibration rows for the labelled validation split."""
    normal_rows, anomaly_rows = np.flatnonzero(normal), np.flatnonzero(~normal)
    read = f"the first {len(table):,} rows of {table.source}" if training_rows else table.source
    if len(normal_rows) < MIN_NORMAL_ROWS:
        raise DatasetFormatError(
            f"{read}: {len(normal_rows):,} normal rows, at least {MIN_NORMAL_ROWS} needed to cut fit, "
            "early-stopping and calibration rows: train on more rows (--training-rows, or a longer file)"
        )
    split = split_normal(len(normal_rows), seed, *shares)
    calib_fraction = len(split.calib) / len(normal_rows)
    rng = np.random.default_rng(seed + 1)
    n_anomalies = int(round(len(anomaly_rows) * calib_fraction))
    held = np.sort(rng.choice(anomaly_rows, n_anomalies, replace=False))
    encoder.fit(_pick(raw, normal_rows[split.train]))

    def encode(rows: np.ndarray) -> np.ndarray:
        return encoder.transform(_pick(raw, rows))

    calibration = encode(normal_rows[split.calib])
    labelled = labelled_anomaly = None
    if table.labels is not None:
        labelled = np.vstack([calibration, encode(held)])
        labelled_anomaly = np.r_[np.zeros(len(calibration), bool), np.ones(n_anomalies, bool)]
    schema = table.schema
    description = {
        "data": table.source,
        "schema": schema.name,
        "kind": schema.kind,
        "training_rows": training_rows,
        "dropped_rows": table.dropped,  # missing = "drop": unusable rows left out
        "normal_rows": int(len(normal_rows)),
        "anomaly_rows": int(len(anomaly_rows)),
        "rows": {
            "fit": int(len(split.train)),
            "early_stop": int(len(split.val)),
            "calibration": int(len(split.calib)),
            **({"labelled_validation": {"normal": int(len(split.calib)), "anomaly": n_anomalies}}
               if labelled is not None else {}),
        },
        "features": len(encoder.feature_names_),
        "seed": seed,
    }  # fmt: skip
    return TrainingData(
        schema.name,
        encoder,
        encode(normal_rows[split.train]),
        encode(normal_rows[split.val]),
        calibration,
        labelled,
        labelled_anomaly,
        description,
    )


def _holdout(table: Table, samples: np.ndarray, encoder: WindowEncoder, seed: int) -> TrainingData:
    """Windows cut by :func:`~stream.datasets.splits.holdout_split`: test rows held out (the ECG5000
    evaluation protocol ``holdout`` scores them), the rest cut for fitting, early stopping, calibration
    and the labelled validation split."""
    if table.normal is None:
        raise DatasetFormatError(f"{table.source}: the holdout protocol needs labels; the schema names none")
    split = holdout_split(table.normal, seed)
    encoder.fit(samples[split.fit])
    calibration = encoder.transform(samples[split.calibration])
    labelled = np.vstack([calibration, encoder.transform(samples[split.anomaly_validation])])
    labelled_anomaly = np.r_[
        np.zeros(len(split.calibration), bool), np.ones(len(split.anomaly_validation), bool)
    ]
    description = {
        "data": table.source,
        "schema": table.schema.name,
        "kind": table.schema.kind,
        "protocol": "holdout",
        "beats": len(table),
        "normal_beats": int(table.normal.sum()),
        "rows": {
            "fit": int(len(split.fit)),
            "early_stop": int(len(split.early_stop)),
            "calibration": int(len(split.calibration)),
            "labelled_validation": {"normal": int(len(split.calibration)),
                                    "abnormal": int(len(split.anomaly_validation))},
            "held_out_test": int(len(split.test)),
        },
        "scaling": encoder.scaling,
        "seed": seed,
    }  # fmt: skip
    return TrainingData(
        table.schema.name,
        encoder,
        encoder.transform(samples[split.fit]),
        encoder.transform(samples[split.early_stop]),
        calibration,
        labelled,
        labelled_anomaly,
        description,
    )


def _pick(raw: RecordsRaw | np.ndarray, rows: np.ndarray) -> RecordsRaw | np.ndarray:
    return raw.take(rows) if isinstance(raw, RecordsRaw) else raw[rows]


def _series(table: Table, training_rows: int | None, window: int | None) -> TrainingData:
    schema = table.schema
    assert schema.series is not None
    series = table_series(table)
    if training_rows is not None:
        rows: list[int] | None = [len(item) for item in series]  # the table holds only those rows
    elif table.normal is not None:
        rows = []
        for item in series:
            assert item.anomaly_rows is not None
            first = int(np.argmax(item.anomaly_rows)) if item.anomaly_rows.any() else len(item)
            if first == 0:
                raise DatasetFormatError(
                    f"{item.name} starts with an anomaly-labelled row: no normal prefix to train on; "
                    "give --training-rows N"
                )
            rows.append(first)
    else:
        rows = None  # each series' probationary period, as NAB trains
    data = sensor_training_data(series, window or schema.series.window, rows=rows, stream=schema.name,
                                schema=schema)  # fmt: skip
    data.description.update(schema=schema.name, kind=schema.kind, training_rows=training_rows,
                            dropped_rows=table.dropped)  # fmt: skip
    return data
