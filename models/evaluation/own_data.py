"""``anomstream evaluate --schema S --file F [--file F2 ...]``: detectors on labelled files of one's own.

One model per file (per series of a series file), trained on the file's first rows, as ``anomstream
train --schema S --training-rows N`` trains, and every later row scored as the worker scores it, in
file order (a detector that learns goes on learning). Training rows are normal rows only where the
file has labels: a series trains on the rows before its first anomaly when that comes sooner;
records train on the normal rows among the first ones (the schema's own cuts).

- ``series`` schemas run through :func:`models.evaluation.series.evaluate_items` (baselines beside);
- ``records`` and ``windows`` schemas: each file's later rows are encoded by the model's encoder and
  scored in batches, each judged and then learnt, as a worker does.

Writes ``DIR/metrics.json`` (per detector: ``mean`` over files, ``files``), ``DIR/scores/<stem>.csv``
(``timestamp,score,label,is_alert``) and ``DIR/report.md``.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.evaluation.ranges import mean_metrics, series_metrics
from models.evaluation.series import DEFAULT_BASELINES, Item, evaluate_items, report, stem
from models.features import RecordsRaw
from models.scoring import ScoringModel
from models.training.fit import fit_model
from models.training.recipes import resolve
from models.training.schema_data import schema_training_data
from stream.datasets.files import DatasetFormatError
from stream.datasets.schema import DatasetSchema
from stream.datasets.sensor import table_series
from stream.datasets.table import read_table
from stream.errors import ConfigurationError

DEFAULT_SHARE = 0.3
BATCH = 256


def training_count(n_rows: int, training_rows: int | None, training_share: float | None) -> int:
    """Rows that train the model: ``training_rows``, else ``training_share`` of the file (default 30%).

    >>> training_count(1000, None, None), training_count(1000, 200, None), training_count(1000, None, 0.5)
    (300, 200, 500)
    """
    if training_rows is not None and training_share is not None:
        raise ConfigurationError("give --training-rows or --training-share, not both")
    if training_share is not None and not 0 < training_share < 1:
        raise ConfigurationError(f"--training-share must lie between 0 and 1, got {training_share}")
    if training_rows is not None:
        return min(training_rows, n_rows)
    return int(n_rows * (training_share if training_share is not None else DEFAULT_SHARE))


def evaluate_files(
    schema: DatasetSchema,
    files: Sequence[Path],
    detectors: Sequence[str],
    out: Path,
    training_rows: int | None = None,
    training_share: float | None = None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    seed: int = 0,
    fpr: float = 0.01,
    params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    if not files:
        raise ConfigurationError("name the labelled files to evaluate on: --file F [--file F2 ...]")
    if schema.label is None:
        raise ConfigurationError(
            f"schema {schema.name!r} has no [label]: evaluation compares scores with labels; add one"
        )
    training_count(1, training_rows, training_share)  # refuses bad options before any reading
    if schema.kind == "series":
        assert schema.series is not None
        items = []
        for path in files:
            for series in table_series(read_table(schema, path)):
                n = training_count(len(series), training_rows, training_share)
                assert series.anomaly_rows is not None
                if series.anomaly_rows[:n].any():  # train on normal rows only: the prefix before it
                    n = int(np.argmax(series.anomaly_rows))
                items.append(Item(series.name, series, n))
        summary = evaluate_items(items, detectors, out, baselines, schema.series.window, seed, fpr, params,
                                 progress)  # fmt: skip
        return {"schema": schema.name, "kind": schema.kind, **summary}
    return _tabular(schema, files, detectors, out, training_rows, training_share, seed, fpr, params, progress)


def _tabular(
    schema: DatasetSchema,
    files: Sequence[Path],
    detectors: Sequence[str],
    out: Path,
    training_rows: int | None,
    training_share: float | None,
    seed: int,
    fpr: float,
    params: dict[str, dict[str, Any]] | None,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    stream = "kdd" if schema.kind == "records" else "ecg"
    per_file: dict[str, dict[str, dict[str, float]]] = {d: {} for d in detectors}
    training: dict[str, int] = {}
    for path in files:
        table = read_table(schema, path)
        n = training_count(len(table), training_rows, training_share)
        if n >= len(table):
            raise DatasetFormatError(f"{path}: all {len(table):,} rows would train: leave rows to score")
        training[str(path)] = n
        data = schema_training_data(schema, path, n, seed)
        later = table.take(slice(n, None))
        raw = RecordsRaw(later.numeric(), later.symbols()) if schema.kind == "records" else later.numeric()
        X = data.encoder.transform(raw)
        assert later.normal is not None
        labels = ~later.normal
        results = {}
        for detector in detectors:
            if progress is not None:
                progress(f"{detector}: {path}")
            begun = time.perf_counter()
            recipe = resolve(stream, detector, "*", dict((params or {}).get(detector) or {}), seed,
                             n_fit=len(data.fit))  # fmt: skip
            fitted = fit_model(data, recipe, fpr=fpr)
            model = ScoringModel(schema.name, detector, 0, fitted.encoder, fitted.detector, fitted.threshold)
            scores, alerts = np.zeros(len(X)), np.zeros(len(X), bool)
            for start in range(0, len(X), BATCH):
                scored = model.score_encoded(X[start : start + BATCH])
                model.learn(scored)
                scores[start : start + len(scored.scores)] = scored.scores
                alerts[start : start + len(scored.scores)] = scored.is_alert
            results[detector] = (scores, alerts)
            per_file[detector][str(path)] = {
                **series_metrics(scores, labels, alerts),
                "threshold": float(fitted.threshold.threshold_),
                "seconds": round(time.perf_counter() - begun, 2),
            }
        _write(out / "scores", Path(path), later.timestamps, n, labels, results)
    summary = {
        "schema": schema.name,
        "kind": schema.kind,
        "window": None,
        "fpr": fpr,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "training": training,
        "detectors": {
            d: {"mean": mean_metrics(per_file[d]), "files": per_file[d], "baseline": False} for d in detectors
        },  # fmt: skip
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=_plain))
    (out / "report.md").write_text(report(summary))
    return summary


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and not np.isfinite(value) else float(value)


def _write(
    directory: Path,
    path: Path,
    times: np.ndarray | None,
    n_train: int,
    labels: np.ndarray,
    results: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    names = list(results)
    with (directory / f"{stem(path.name)}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        extra = [f"{kind}_{m}" for m in names[1:] for kind in ("score", "is_alert")]
        writer.writerow(["timestamp", "score", "label", "is_alert", *extra])
        for r in range(len(labels)):
            when = str(times[r]) if times is not None else str(n_train + r)
            row = [when, f"{results[names[0]][0][r]:.6g}", int(labels[r]), int(results[names[0]][1][r])]
            for m in names[1:]:
                row += [f"{results[m][0][r]:.6g}", int(results[m][1][r])]
            writer.writerow(row)
