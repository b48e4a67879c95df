"""Feature encoders: raw stream records -> the float32 matrix a detector scores.

An encoder is fitted on training data only and stored with the model as plain JSON, so the
statistics a worker applies are exactly the ones the model was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from stream.messages import KDD_BINARY, KDD_CATEGORICAL, KDD_NUMERIC, KDD_RATES

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
# Byte counts and durations span 9 orders of magnitude; min-max on raw values would squash every
# ordinary connection into the first bucket, so these are log-compressed first.
KDD_HEAVY_TAILED: tuple[str, ...] = tuple(
    f for f in KDD_NUMERIC if f not in KDD_RATES and f not in KDD_BINARY
)


@dataclass(frozen=True)
class KddRaw:
    """A batch of KDD records before encoding: numeric columns (KDD_NUMERIC order) and symbols."""

    numeric: np.ndarray  # (n, 38) float64
    symbols: np.ndarray  # (n, 3) object: protocol_type, service, flag

    def __len__(self) -> int:
        return self.numeric.shape[0]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> KddRaw:
        numeric = frame[list(KDD_NUMERIC)].to_numpy(dtype=np.float64)
        symbols = frame[list(KDD_CATEGORICAL)].astype(str).to_numpy(dtype=object)
        return cls(numeric, symbols)

    @classmethod
    def from_rows(
        cls, numeric_rows: Sequence[Sequence[float]], symbol_rows: Sequence[Sequence[str]]
    ) -> KddRaw:
        return cls(
            np.asarray(numeric_rows, dtype=np.float64).reshape(-1, len(KDD_NUMERIC)),
            np.asarray(symbol_rows, dtype=object).reshape(-1, len(KDD_CATEGORICAL)),
        )


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


class KddEncoder:
    """KDD records -> scaled matrix, under protocol ``full`` (41 features, one-hot) or ``ffl`` (18).

    For example::

        import pandas as pd
        from stream.datasets import read_kdd
        enc = KddEncoder("full").fit(KddRaw.from_frame(train_frame))
        enc.transform(KddRaw.from_frame(test_frame)).shape
        # -> (311029, 75)
    """

    kind = "kdd"

    def __init__(self, protocol: str = "full") -> None:
        if protocol not in ("full", "ffl"):
            raise ValueError(f"unknown KDD protocol {protocol!r}: use 'full' or 'ffl'")
        self.protocol = protocol

    def _numeric_block(self, raw: KddRaw) -> np.ndarray:
        if self.protocol == "ffl":
            return raw.numeric[:, [KDD_NUMERIC.index(f) for f in FFL_FEATURES]]
        block = raw.numeric.copy()
        heavy = [KDD_NUMERIC.index(f) for f in KDD_HEAVY_TAILED]
        block[:, heavy] = np.log1p(np.maximum(block[:, heavy], 0.0))
        return block

    def _one_hot(self, raw: KddRaw) -> np.ndarray:
        # Symbols never seen in training encode as all zeros in their group: the reconstruction
        # error of the other features still scores the record.
        blocks = []
        for col, categories in enumerate(self.categories_):
            index = {symbol: i for i, symbol in enumerate(categories)}
            codes = np.fromiter((index.get(s, -1) for s in raw.symbols[:, col]), np.int64, len(raw))
            block = np.zeros((len(raw), len(categories)), dtype=np.float32)
            known = codes >= 0
            block[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(block)
        return np.hstack(blocks) if blocks else np.zeros((len(raw), 0), np.float32)

    def fit(self, raw: KddRaw) -> KddEncoder:
        self.scaler_ = MinMaxScaler().fit(self._numeric_block(raw))
        if self.protocol == "full":
            self.categories_ = [sorted(set(raw.symbols[:, c])) for c in range(len(KDD_CATEGORICAL))]
            onehot_names = [
                f"{name}={symbol}"
                for name, cats in zip(KDD_CATEGORICAL, self.categories_, strict=True)
                for symbol in cats
            ]
            self.feature_names_ = [*KDD_NUMERIC, *onehot_names]
        else:
            self.categories_ = []
            self.feature_names_ = list(FFL_FEATURES)
        return self

    def transform(self, raw: KddRaw) -> np.ndarray:
        scaled = self.scaler_.transform(self._numeric_block(raw))
        if self.protocol == "ffl":
            return scaled
        return np.hstack([scaled, self._one_hot(raw)]).astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "protocol": self.protocol,
            "scaler": self.scaler_.to_dict(),
            "categories": self.categories_,
            "feature_names": self.feature_names_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KddEncoder:
        encoder = cls(data["protocol"])
        encoder.scaler_ = MinMaxScaler.from_dict(data["scaler"])
        encoder.categories_ = [list(c) for c in data["categories"]]
        encoder.feature_names_ = list(data["feature_names"])
        return encoder


class WindowEncoder:
    """Fixed-length windows (ECG beats, sensor windows) -> scaled matrix.

    ``scaling="global"`` applies one min-max range learnt on training windows (keeps amplitude,
    which distinguishes abnormal beats); ``"window"`` rescales each window to [0, 1] (shape only).
    """

    kind = "window"

    def __init__(self, length: int, scaling: str = "global") -> None:
        if scaling not in ("global", "window"):
            raise ValueError(f"unknown scaling {scaling!r}: use 'global' or 'window'")
        self.length = length
        self.scaling = scaling

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.length:
            raise ValueError(f"expected windows of {self.length} values, got shape {X.shape}")
        return X

    def fit(self, X: np.ndarray) -> WindowEncoder:
        X = self._check(X)
        self.low_, self.high_ = float(X.min()), float(X.max())
        self.feature_names_ = [f"t{i:03d}" for i in range(self.length)]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = self._check(X)
        if self.scaling == "window":
            low = X.min(axis=1, keepdims=True)
            span = X.max(axis=1, keepdims=True) - low
            return ((X - low) / np.where(span > 0, span, 1.0)).astype(np.float32)
        span = self.high_ - self.low_ or 1.0
        return ((X - self.low_) / span).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "length": self.length,
            "scaling": self.scaling,
            "low": self.low_,
            "high": self.high_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowEncoder:
        encoder = cls(int(data["length"]), data["scaling"])
        encoder.low_, encoder.high_ = float(data["low"]), float(data["high"])
        encoder.feature_names_ = [f"t{i:03d}" for i in range(encoder.length)]
        return encoder


def encoder_from_dict(data: dict[str, Any]) -> KddEncoder | WindowEncoder:
    kinds: dict[str, Any] = {"kdd": KddEncoder, "window": WindowEncoder}
    if data.get("kind") not in kinds:
        raise ValueError(f"unknown encoder kind {data.get('kind')!r}")
    return kinds[data["kind"]].from_dict(data)
