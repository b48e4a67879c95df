"""``anomstream train``: a stream's training data -> a fitted model -> a new registry version.

A built-in stream (``--stream kdd/ecg/sensor``) trains on its dataset; a dataset schema's stream
(``--schema S``) on the file the schema describes, saved under the schema's name. A schema's stream
takes the recipes and default detector of the built-in stream of its kind: records like KDD, windows
like ECG, series like the sensor stream (``KIND_STREAM``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.features import FFL_FEATURES, PROTOCOLS
from models.registry import ModelRef, Registry
from models.training.data import TrainingData, load_kdd_training
from models.training.fit import FittedModel, check_params, fit_model
from models.training.recipes import KIND_STREAM, resolve
from models.training.schema_data import schema_training_data, table_training_data
from stream.datasets import find_ecg_file
from stream.datasets.schema import DatasetSchema, builtin_schema, stream_schema
from stream.datasets.sensor import sensor_source
from stream.datasets.table import Table, read_table
from stream.errors import ConfigurationError
from stream.settings import STREAMS

log = logging.getLogger(__name__)

DEFAULT_DETECTOR = {"kdd": "ae", "ecg": "ae", "sensor": "seq_ae"}
DEFAULT_WINDOW = 16
# Detectors that read a window as ONE channel of samples (a convolution along it; "the last value is
# the new one"): they cannot score a multivariate window, whose channels interleave.
SINGLE_CHANNEL = ("seq_ae", "context")
MULTICHANNEL_DEFAULT = "ae"


@dataclass(frozen=True)
class TrainingRequest:
    """What to train: the stream and its data, the detector and its threshold."""

    stream: str = "kdd"
    detector: str | None = None  # default: DEFAULT_DETECTOR[stream]
    protocol: str = "full"  # records' feature protocol: full, or ffl (the FFL report's 18 KDD features)
    series: str | None = None  # sensor: a NAB series
    bearing: bool = False  # sensor: the NASA bearing file instead
    window: int = DEFAULT_WINDOW  # sensor: window length
    training_rows: int | None = None  # sensor, schema: train on the first rows (sensor default: probation)
    threshold: str = "quantile"
    fpr: float = 0.01
    threshold_params: dict[str, Any] = field(default_factory=dict)
    detector_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    allow_synthetic: bool = False  # KDD: synthetic data when the training file is missing
    schema: DatasetSchema | None = None  # a dataset schema's stream (``stream`` is its name)
    file: str | None = None  # with ``schema``: the file to read (default: the schema's source.path)

    @classmethod
    def for_schema(cls, schema: DatasetSchema, **values: Any) -> TrainingRequest:
        """A request for ``schema``'s stream; a series' window is the schema's unless given."""
        if schema.series is not None:
            values.setdefault("window", schema.series.window)
        return cls(stream=schema.name, schema=schema, **values)

    @property
    def recipe_stream(self) -> str:
        """Whose recipes apply: the stream's own, or for a schema's stream the built-in of its kind."""
        return self.stream if self.schema is None else KIND_STREAM[self.schema.kind]

    @property
    def channels(self) -> int:
        """Channels of each window: several for a multivariate series schema, else one."""
        spec = self.schema.series if self.schema is not None else None
        return len(spec.values) if spec is not None and spec.multivariate else 1

    @property
    def detector_name(self) -> str:
        if self.detector:
            return self.detector
        return MULTICHANNEL_DEFAULT if self.channels > 1 else DEFAULT_DETECTOR[self.recipe_stream]


def check_request(request: TrainingRequest) -> None:
    """Refuse a request that cannot train a usable model, before any data is read (ConfigurationError,
    one line: what is wrong and what to use instead)."""
    if request.schema is not None:
        _check_schema_request(request, request.schema)
    elif request.stream not in STREAMS:
        raise ConfigurationError(f"unknown stream {request.stream!r}: use one of {', '.join(STREAMS)}")
    if request.protocol not in (*PROTOCOLS, "holdout"):
        raise ConfigurationError(f"unknown protocol {request.protocol!r}: use {' or '.join(PROTOCOLS)}")
    if not 0.0 < request.fpr < 1.0:
        raise ConfigurationError(f"--fpr must lie between 0 and 1 (exclusive), got {request.fpr}")
    schema = request.schema or stream_schema(request.stream)
    if schema is not None and schema.kind == "series" and request.window < 2:
        raise ConfigurationError(f"--window must be at least 2 rows, got {request.window}")
    if request.training_rows is not None and request.training_rows < 1:
        raise ConfigurationError(f"training rows must be at least 1, got {request.training_rows}")
    check_params(request.detector_name, request.detector_params)


def _check_schema_request(request: TrainingRequest, schema: DatasetSchema) -> None:
    if request.stream != schema.name:
        raise ConfigurationError(
            f"stream {request.stream!r} and schema {schema.name!r} disagree: a schema's stream is its name"
        )
    if schema.series is not None and request.window != schema.series.window:
        raise ConfigurationError(
            f"--window {request.window}, but schema {schema.name!r} replays windows of "
            f"{schema.series.window} rows: set [series] window in the schema instead"
        )
    missing = sorted(set(FFL_FEATURES) - set(schema.features.numeric))
    if request.protocol == "ffl" and (schema.kind != "records" or missing):
        raise ConfigurationError(
            f"--protocol ffl scores the 18 continuous KDD features; schema {schema.name!r} lacks "
            f"{len(missing)} of them: use --protocol full"
        )
    if request.channels > 1 and request.detector_name in SINGLE_CHANNEL:
        raise ConfigurationError(
            f"{request.detector_name} reads a window as one channel; schema {schema.name!r} has "
            f"{request.channels} (multivariate = true): use ae, vae, pca, iforest, ocsvm or hst"
        )


def _kdd_table(data_dir: Path, request: TrainingRequest) -> tuple[Table, str]:
    return load_kdd_training(data_dir, request.allow_synthetic), request.protocol


def _ecg_table(data_dir: Path, request: TrainingRequest) -> tuple[Table, str]:
    # ECG5000's test beats are held out, for the evaluation protocol that scores them.
    return read_table(builtin_schema("ecg5000"), find_ecg_file(data_dir, "csv")), "holdout"


def _sensor_table(data_dir: Path, request: TrainingRequest) -> tuple[Table, str]:
    if (request.series is None) == (not request.bearing):
        raise ConfigurationError("sensor training needs exactly one of --series NAME or --bearing")
    schema, path = sensor_source(data_dir, request.series, request.bearing)
    return read_table(schema, path, limit=request.training_rows), request.protocol


# Where each built-in stream's training data lies: its file, read through its built-in schema, and the
# protocol it is cut by. From there it is cut as any schema's table is.
BUILTIN_TABLES: dict[str, Callable[[Path, TrainingRequest], tuple[Table, str]]] = {
    "kdd": _kdd_table,
    "ecg": _ecg_table,
    "sensor": _sensor_table,
}


def training_data(data_dir: Path, request: TrainingRequest) -> TrainingData:
    """The stream's training data as the request describes it: a schema's file, or a built-in stream's
    (:data:`BUILTIN_TABLES`), read through its schema and cut by
    :func:`~models.training.schema_data.table_training_data`."""
    if request.schema is not None:
        return schema_training_data(request.schema, request.file, request.training_rows, request.seed,
                                    request.window, request.protocol)  # fmt: skip
    if request.stream not in BUILTIN_TABLES:
        raise ConfigurationError(f"unknown stream {request.stream!r}: use one of {', '.join(STREAMS)}")
    table, protocol = BUILTIN_TABLES[request.stream](data_dir, request)
    return table_training_data(table, request.training_rows, request.seed, request.window, protocol)


def fit_request(data: TrainingData, request: TrainingRequest) -> FittedModel:
    # Networks sized by the window are sized by its values: rows times channels.
    window = getattr(data.encoder, "width", request.window)
    recipe = resolve(
        request.recipe_stream, request.detector_name, request.protocol, request.detector_params, request.seed,
        window=window, n_fit=len(data.fit),
    )  # fmt: skip
    return fit_model(data, recipe, request.threshold, request.fpr, request.threshold_params)


def train(
    registry: Registry, data_dir: Path, request: TrainingRequest, promote: bool | None = None
) -> ModelRef:
    """Train what ``request`` describes and save it as a new version of its stream's model.

    The first version of a stream becomes production unless ``promote=False``.
    """
    check_request(request)
    fitted = fit_request(training_data(data_dir, request), request)
    return save(registry, fitted, promote)


def save(registry: Registry, fitted: FittedModel, promote: bool | None = None) -> ModelRef:
    """Store a fitted model (with its calibration scores, which the NAB mapping and the drift
    monitor's calibration read back) as a new registry version."""
    cut = fitted.threshold.threshold_
    metrics = {"calibration_fpr": float(np.mean(fitted.calibration_scores >= cut))}
    ref = registry.save(
        fitted.stream, fitted.detector, fitted.encoder, fitted.threshold, fitted.description, metrics,
        promote, fitted.calibration_scores,
    )  # fmt: skip
    log.info(
        "trained %s/%s v%d in %.1fs, %s threshold %.5g",
        ref.stream,
        ref.detector,
        ref.version,
        fitted.fit_seconds,
        fitted.threshold.kind,
        cut,
    )
    return ref


def training_summary(description: dict[str, Any]) -> str:
    """One line: the rows a model was trained on, as its manifest records them.

    >>> training_summary({"data": "a.csv", "normal_rows": 900, "anomaly_rows": 100, "rows": {"fit": 720,
    ...     "early_stop": 90, "calibration": 90, "labelled_validation": {"anomaly": 10}}}).split("; ")[1]
    '100 anomalous rows, 10 kept for validation (none is trained on)'
    """
    rows = description.get("rows", {})
    split = (f"fit {rows.get('fit', 0):,}, early stop {rows.get('early_stop', 0):,}, "
             f"calibration {rows.get('calibration', 0):,}")  # fmt: skip
    data = description.get("data")
    source = ", ".join(data) if isinstance(data, list) else str(data)
    if "normal_rows" in description:
        line = f"trained on {description['normal_rows']:,} normal rows of {source}: {split}"
    elif "window" in description:
        line = f"trained on windows of {description['window']} rows of {source}: {split}"
    else:
        line = f"trained on {source}: {split}"
    anomalous = description.get("anomaly_rows", description.get("attack_rows"))
    if anomalous is not None:
        held = rows.get("labelled_validation", {})
        kept = held.get("anomaly", held.get("attack", 0))
        line += f"; {anomalous:,} anomalous rows, {kept:,} kept for validation (none is trained on)"
    if description.get("dropped_rows"):
        line += f'; {description["dropped_rows"]:,} unusable rows left out (missing = "drop")'
    return line


def training_report(registry: Registry, ref: ModelRef) -> list[str]:
    """What ``anomstream train`` prints after saving: the rows used, and the promotion status."""
    training = registry.manifest(ref.stream, ref.detector, ref.version).get("training", {})
    return [training_summary(dict(training)), promotion_status(registry, ref)]


def promotion_status(registry: Registry, ref: ModelRef) -> str:
    """Whether ``ref`` is its stream's production model, and if not, the command that makes it so."""
    production = registry.production(ref.stream)
    if production is not None and production.model == (ref.detector, ref.version):
        return f"{ref.stream}/{ref.detector} v{ref.version} is in production: workers load it"
    current = f"production is {production.model}" if production is not None else "no production model"
    return (
        f"{ref.stream}/{ref.detector} v{ref.version} is NOT in production ({current}); promote it with: "
        f"anomstream models promote {ref.stream} {ref.detector} {ref.version}"
    )
