"""Feature encoders: raw stream records -> the float32 matrix a detector scores.

An encoder is fitted on training data only and stored with the model as plain JSON, so the
statistics a worker applies are exactly the ones the model was trained with.

- :class:`TableEncoder`: records of named columns (a ``kind = "records"`` dataset schema): numeric
  columns min-max scaled (some log-compressed first), categorical ones one-hot. It stores the dataset
  schema it was trained for, so a worker builds the stream's decoder from the model it loaded.
  KDD Cup 99 and NSL-KDD are records of their built-in schemas like any other; :func:`protocol_encoder`
  gives the encoder of an evaluation protocol (``full``, or the ``ffl`` report's 18 features).
- :class:`WindowEncoder`: fixed-length windows of one or several channels (ECG beats, sensor windows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Protocol, Self

import numpy as np
import pandas as pd

from stream.datasets.schema import DatasetSchema, builtin_schema

# The 18 continuous features of the Fast Forward Labs KDD experiment (protocol `ffl`).
FFL_FEATURES: tuple[str, ...] = (
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)
PROTOCOLS: tuple[str, ...] = ("full", "ffl")


@dataclass(frozen=True)
class RecordsRaw:
    """A batch of records before encoding: the numeric columns and the categorical ones (as text),
    each in the order its encoder names them."""

    numeric: np.ndarray  # (n, k) float64
    symbols: np.ndarray  # (n, m) object: text

    def __len__(self) -> int:
        return self.numeric.shape[0]

    def take(self, rows: np.ndarray | slice) -> Self:
        """The rows ``rows``, in that order."""
        return type(self)(self.numeric[rows], self.symbols[rows])

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, schema: DatasetSchema) -> Self:
        """The feature columns of a records schema, from a frame that holds them (a table's frame)."""
        numeric = frame[schema.features.numeric].to_numpy(dtype=np.float64)
        symbols = frame[schema.features.categorical].astype(str).to_numpy(dtype=object)
        return cls(numeric, symbols)


class FeatureEncoder(Protocol):
    kind: str
    feature_names_: list[str]

    def fit(self, raw: Any) -> FeatureEncoder: ...
    def transform(self, raw: Any) -> np.ndarray: ...
    def to_dict(self) -> dict[str, Any]: ...


class MinMaxScaler:
    """Min-max scaling with constant columns left at zero instead of dividing by zero."""

    def fit(self, X: np.ndarray) -> MinMaxScaler:
        self.min_ = X.min(axis=0)
        span = X.max(axis=0) - self.min_
        self.scale_ = np.where(span > 0, span, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.min_) / self.scale_).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"min": self.min_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> MinMaxScaler:
        scaler = cls()
        scaler.min_ = np.asarray(data["min"], dtype=np.float64)
        scaler.scale_ = np.asarray(data["scale"], dtype=np.float64)
        return scaler


class TableEncoder:
    """Records of named columns -> scaled matrix: numeric columns (those in ``log`` compressed with
    log(1 + x) first, negatives read as 0) min-max scaled on the fit rows, categorical columns one-hot
    (a category never seen in training encodes as zeros in its group). Feature names are the columns'
    and ``column=category`` for the one-hot ones.

    ``columns``: the numeric columns of the raw batches, when they hold more than the encoder scores
    (KDD's ``ffl`` protocol scores 18 of the 38). ``schema``: the dataset schema the encoder was made
    for, stored with it (:meth:`for_schema`).

    For example::

        encoder = TableEncoder.for_schema(schema).fit(table_raw(table))
        encoder.feature_names_[-2:]
        # -> ['weather=sun', 'weather=snow']
    """

    kind = "table"

    def __init__(
        self,
        numeric: Sequence[str],
        categorical: Sequence[str] = (),
        log: Sequence[str] = (),
        columns: Sequence[str] | None = None,
        schema: DatasetSchema | None = None,
    ) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.log = list(log)
        self.columns = list(columns) if columns is not None else list(numeric)
        self.schema = schema
        unknown = sorted((set(self.numeric) - set(self.columns)) | (set(self.log) - set(self.numeric)))
        if unknown:
            raise ValueError(f"columns {unknown} are scored or log-compressed but not numeric inputs")
        self._select = None if self.columns == self.numeric else [self.columns.index(c) for c in self.numeric]
        self._log = [self.numeric.index(c) for c in self.numeric if c in set(self.log)]

    @classmethod
    def for_schema(cls, schema: DatasetSchema) -> TableEncoder:
        """The encoder of a ``kind = "records"`` schema's features."""
        if schema.kind != "records":
            raise ValueError(
                f"schema {schema.name!r} is of kind {schema.kind!r}: a TableEncoder encodes records"
            )
        features = schema.features
        return cls(features.numeric, features.categorical, features.log, schema=schema)

    def _numeric_block(self, raw: RecordsRaw) -> np.ndarray:
        if raw.numeric.ndim != 2 or raw.numeric.shape[1] != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} numeric columns, got shape {raw.numeric.shape}")
        if self._select is not None:
            block = raw.numeric[:, self._select]  # a copy
        else:
            block = raw.numeric.copy() if self._log else raw.numeric
        if self._log:
            block[:, self._log] = np.log1p(np.maximum(block[:, self._log], 0.0))
        return block

    def _one_hot(self, raw: RecordsRaw) -> np.ndarray:
        # Symbols never seen in training encode as all zeros in their group: the other features
        # still score the record.
        blocks = []
        n = len(raw)
        for col, index in enumerate(self._index):
            codes = np.fromiter(map(index.get, raw.symbols[:, col], repeat(-1)), np.int64, n)
            block = np.zeros((n, len(index)), dtype=np.float32)
            known = codes >= 0
            block[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(block)
        return np.hstack(blocks) if blocks else np.zeros((n, 0), np.float32)

    def _set_categories(self, categories: list[list[str]]) -> None:
        self.categories_ = categories
        self._index = [{symbol: i for i, symbol in enumerate(c)} for c in categories]

    def fit(self, raw: RecordsRaw) -> Self:
        self.scaler_ = MinMaxScaler().fit(self._numeric_block(raw))
        self._set_categories([sorted(set(raw.symbols[:, c])) for c in range(len(self.categorical))])
        onehot_names = [
            f"{name}={symbol}"
            for name, cats in zip(self.categorical, self.categories_, strict=True)
            for symbol in cats
        ]
        self.feature_names_ = [*self.numeric, *onehot_names]
        return self

    def transform(self, raw: RecordsRaw) -> np.ndarray:
        scaled = self.scaler_.transform(self._numeric_block(raw))
        if not self.categorical:
            return scaled
        return np.hstack([scaled, self._one_hot(raw)]).astype(np.float32, copy=False)

    def _fitted(self) -> dict[str, Any]:
        return {
            "scaler": self.scaler_.to_dict(),
            "categories": self.categories_,
            "feature_names": self.feature_names_,
        }

    def _restore(self, data: dict[str, Any]) -> None:
        self.scaler_ = MinMaxScaler.from_dict(data["scaler"])
        self._set_categories([[str(s) for s in c] for c in data["categories"]])
        self.feature_names_ = list(data["feature_names"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "numeric": self.numeric,
            "categorical": self.categorical,
            "log": self.log,
            "columns": self.columns,
            **self._fitted(),
            "schema": self.schema.to_dict() if self.schema is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableEncoder:
        schema = data.get("schema")
        encoder = cls(
            data["numeric"], data["categorical"], data["log"], data.get("columns"),
            DatasetSchema.from_dict(schema, "the encoder's dataset schema") if schema else None,
        )  # fmt: skip
        encoder._restore(data)
        return encoder


def protocol_encoder(schema: DatasetSchema, protocol: str = "full") -> TableEncoder:
    """The encoder of a records schema under an evaluation protocol: ``full`` scores every feature
    the schema names (:meth:`TableEncoder.for_schema`); ``ffl``, the protocol of the Fast Forward Labs
    report on KDD Cup 99, only its 18 continuous features, neither log-compressed nor one-hot.

    >>> protocol_encoder(builtin_schema("kdd99"), "ffl").numeric == list(FFL_FEATURES)
    True
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: use {' or '.join(PROTOCOLS)}")
    if protocol == "ffl":
        return TableEncoder(FFL_FEATURES, columns=schema.features.numeric, schema=schema)
    return TableEncoder.for_schema(schema)


def _from_kdd_encoder(data: dict[str, Any]) -> TableEncoder:
    """A KDD encoder as registries saved it before KDD went through its schema (kind ``kdd``, a
    protocol, no schema): the built-in schema's encoder with the same fitted statistics, so a model
    saved then scores as it did."""
    encoder = protocol_encoder(builtin_schema("kdd99"), data["protocol"])
    encoder._restore(data)
    return encoder


class WindowEncoder:
    """Fixed-length windows (ECG beats, sensor windows) -> scaled matrix.

    A window is ``length`` rows of ``channels`` values each, row after row (all channels of the first
    row first: :func:`stream.windows.sliding_windows`). ``scaling="global"`` applies one min-max range
    per channel learnt on training windows (keeps amplitude, which distinguishes abnormal beats);
    ``"window"`` rescales each window's channels to [0, 1] (shape only). One channel is named
    ``t000``, ``t001``, ...; several are named by the schema's value columns (``temp@t003``).
    """

    kind = "window"

    def __init__(
        self, length: int, scaling: str = "global", channels: int = 1, schema: DatasetSchema | None = None
    ) -> None:
        if scaling not in ("global", "window"):
            raise ValueError(f"unknown scaling {scaling!r}: use 'global' or 'window'")
        if channels < 1:
            raise ValueError(f"a window has at least one channel, got {channels}")
        self.length = length
        self.scaling = scaling
        self.channels = channels
        self.schema = schema

    @property
    def width(self) -> int:
        """Values per window: rows times channels."""
        return self.length * self.channels

    def _names(self) -> list[str]:
        if self.channels == 1:
            return [f"t{i:03d}" for i in range(self.length)]
        values = self.schema.series.values if self.schema is not None and self.schema.series else []
        names = values if len(values) == self.channels else [f"c{j}" for j in range(self.channels)]
        return [f"{name}@t{i:03d}" for i in range(self.length) for name in names]

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.width:
            raise ValueError(f"expected windows of {self.width} values, got shape {X.shape}")
        return X

    def _by_channel(self, X: np.ndarray) -> np.ndarray:
        return X.reshape(len(X), self.length, self.channels)

    def fit(self, X: np.ndarray) -> WindowEncoder:
        X = self._check(X)
        # One channel: two floats (as every stored window encoder has them); several: one per channel.
        self.low_: Any
        self.high_: Any
        if self.channels == 1:
            self.low_, self.high_ = float(X.min()), float(X.max())
        else:
            rows = self._by_channel(X)
            self.low_, self.high_ = rows.min(axis=(0, 1)), rows.max(axis=(0, 1))
        self.feature_names_ = self._names()
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        if self.scaling == "window":
            rows = self._by_channel(X)
            low = rows.min(axis=1, keepdims=True)
            span = rows.max(axis=1, keepdims=True) - low
            return ((rows - low) / np.where(span > 0, span, 1.0)).reshape(X.shape).astype(np.float32)
        if self.channels == 1:
            span = self.high_ - self.low_ or 1.0
            return ((X - self.low_) / span).astype(np.float32)
        spans = np.asarray(self.high_) - np.asarray(self.low_)
        low, span = np.tile(self.low_, self.length), np.tile(np.where(spans > 0, spans, 1.0), self.length)
        return ((X - low) / span).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "length": self.length, "scaling": self.scaling}
        if self.channels == 1:
            data.update(low=self.low_, high=self.high_)
        else:
            data.update(channels=self.channels, low=np.asarray(self.low_).tolist(),
                        high=np.asarray(self.high_).tolist())  # fmt: skip
        if self.schema is not None:
            data["schema"] = self.schema.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowEncoder:
        schema = data.get("schema")
        encoder = cls(
            int(data["length"]), data["scaling"], int(data.get("channels", 1)),
            DatasetSchema.from_dict(schema, "the encoder's dataset schema") if schema else None,
        )  # fmt: skip
        if encoder.channels == 1:
            encoder.low_, encoder.high_ = float(data["low"]), float(data["high"])
        else:
            encoder.low_ = np.asarray(data["low"], dtype=np.float64)
            encoder.high_ = np.asarray(data["high"], dtype=np.float64)
        encoder.feature_names_ = encoder._names()
        return encoder


def encoder_schema(encoder: Any) -> DatasetSchema | None:
    """The dataset schema an encoder was trained for (None: a built-in stream's encoder)."""
    schema = getattr(encoder, "schema", None)
    return schema if isinstance(schema, DatasetSchema) else None


def encoder_from_dict(data: dict[str, Any]) -> TableEncoder | WindowEncoder:
    kinds: dict[str, Any] = {"table": TableEncoder.from_dict, "window": WindowEncoder.from_dict,
                             "kdd": _from_kdd_encoder}  # fmt: skip
    if data.get("kind") not in kinds:
        raise ValueError(f"unknown encoder kind {data.get('kind')!r}")
    reader: Any = kinds[data["kind"]]
    return reader(data)
