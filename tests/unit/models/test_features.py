"""Feature encoding: fitted on training data only, stable round trips, unknown symbols tolerated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.features import FFL_FEATURES, RecordsRaw, WindowEncoder, encoder_from_dict, protocol_encoder
from stream.datasets import find_kdd_file, is_attack, read_kdd
from stream.datasets.schema import builtin_schema
from stream.datasets.synthetic import synthetic_kdd
from stream.messages import KDD_NUMERIC
from tests.support import require_data

KDD99 = builtin_schema("kdd99")


@pytest.fixture(scope="module")
def kdd_frames():
    data = require_data("kdd99").parent
    train = read_kdd(find_kdd_file(data, "train"), limit=60_000)
    test = read_kdd(find_kdd_file(data, "test"), limit=20_000)
    return train[~is_attack(train.label)], test


@pytest.mark.data
def test_full_encoder_scales_training_data_into_unit_range(kdd_frames) -> None:
    train, _ = kdd_frames
    encoder = protocol_encoder(KDD99).fit(RecordsRaw.from_frame(train, KDD99))
    X = encoder.transform(RecordsRaw.from_frame(train, KDD99))
    assert X.dtype == np.float32 and X.shape == (len(train), len(encoder.feature_names_))
    assert X.min() >= 0.0 and X.max() <= 1.0 + 1e-6
    assert encoder.feature_names_[: len(KDD_NUMERIC)] == list(KDD_NUMERIC)
    assert "service=http" in encoder.feature_names_ and "protocol_type=tcp" in encoder.feature_names_
    # One-hot: exactly one symbol per categorical group for rows seen in training.
    onehot = X[:, len(KDD_NUMERIC) :]
    assert np.all(onehot.sum(axis=1) == 3)


@pytest.mark.data
def test_unknown_symbols_encode_as_zeros_and_numeric_part_still_counts(kdd_frames) -> None:
    train, test = kdd_frames
    encoder = protocol_encoder(KDD99).fit(RecordsRaw.from_frame(train, KDD99))
    raw = RecordsRaw.from_frame(test.head(3), KDD99)
    raw.symbols[0, 1] = "never-seen-service"
    X = encoder.transform(raw)
    service_block = [i for i, n in enumerate(encoder.feature_names_) if n.startswith("service=")]
    assert X[0, service_block].sum() == 0 and X[1, service_block].sum() == 1


@pytest.mark.data
def test_ffl_protocol_uses_the_18_continuous_features(kdd_frames) -> None:
    train, test = kdd_frames
    encoder = protocol_encoder(KDD99, "ffl").fit(RecordsRaw.from_frame(train, KDD99))
    assert encoder.feature_names_ == list(FFL_FEATURES) and len(FFL_FEATURES) == 18
    assert encoder.transform(RecordsRaw.from_frame(test, KDD99)).shape == (len(test), 18)


@pytest.mark.data
@pytest.mark.parametrize("protocol", ["full", "ffl"])
def test_encoder_round_trips_through_json(kdd_frames, protocol: str) -> None:
    train, test = kdd_frames
    encoder = protocol_encoder(KDD99, protocol).fit(RecordsRaw.from_frame(train, KDD99))
    restored = encoder_from_dict(json.loads(json.dumps(encoder.to_dict())))
    raw = RecordsRaw.from_frame(test, KDD99)
    np.testing.assert_array_equal(encoder.transform(raw), restored.transform(raw))


def test_synthetic_fallback_has_the_kdd_shape() -> None:
    frame = synthetic_kdd(2000, attack_fraction=0.3, seed=3)
    encoder = protocol_encoder(KDD99).fit(RecordsRaw.from_frame(frame[frame.label == "normal"], KDD99))
    X = encoder.transform(RecordsRaw.from_frame(frame, KDD99))
    assert X.shape[0] == 2000 and np.isfinite(X).all()
    assert (frame.label != "normal").sum() == 600


def test_window_encoder_checks_length_and_round_trips() -> None:
    windows = np.random.default_rng(0).normal(size=(50, 16))
    encoder = WindowEncoder(16).fit(windows)
    restored = encoder_from_dict(encoder.to_dict())
    np.testing.assert_array_equal(encoder.transform(windows), restored.transform(windows))
    with pytest.raises(ValueError, match="16"):
        encoder.transform(windows[:, :10])
