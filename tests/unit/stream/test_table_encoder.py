"""TableEncoder (records of any dataset schema) and multichannel WindowEncoder, on real rows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.features import (
    RecordsRaw,
    TableEncoder,
    WindowEncoder,
    encoder_from_dict,
    encoder_schema,
    protocol_encoder,
)
from stream.datasets import find_kdd_file, is_attack, read_kdd
from stream.datasets.schema import DatasetSchema, builtin_schema, load_schema
from stream.datasets.sensor import load_bearing
from stream.datasets.table import read_table
from stream.windows import sliding_windows
from tests.support import require_data

pytestmark = pytest.mark.data  # every test here reads the data folder


@pytest.fixture(scope="module")
def kdd_table():
    """The first 30,000 rows of the 10% file, read through the built-in kdd99 schema."""
    path = find_kdd_file(require_data("kdd99").parent, "train")
    return read_table(load_schema("kdd99"), path, limit=30_000)


def _raw(table) -> RecordsRaw:
    return RecordsRaw(table.numeric(), table.symbols())


# sha256 of the float32 matrices KddEncoder (the class KDD had before it went through its schema, last
# in commit c9b5abe) gave for the first 50,000 rows of corrected, fitted on their normal rows.
BEFORE_SCHEMAS = {
    "full": "705819d0ee7cdad1f245b79f815ace6a983a7fa7126dfcd8847da313883a64d2",
    "ffl": "297e9a639eae825b0e59fe305b32a24ce00868bb62caa5183e549e4d9b21050f",
}
# Encoders KddEncoder saved (kind "kdd"), fitted on the normal rows of the first 3,000 rows of
# corrected, with the sha256 of what they gave for those rows: a registry written then.
SAVED_BEFORE_SCHEMAS = Path(__file__).parents[1] / "models" / "data" / "kdd_encoders_before_schemas.json"


@pytest.fixture(scope="module")
def corrected() -> pd.DataFrame:
    return read_kdd(find_kdd_file(require_data("kdd99").parent, "test"), limit=50_000)


@pytest.mark.parametrize("protocol", ["full", "ffl"])
def test_kdd_encodes_bit_for_bit_as_before_it_went_through_its_schema(corrected, protocol: str) -> None:
    raw = RecordsRaw.from_frame(corrected, builtin_schema("kdd99"))
    normal = np.flatnonzero(~np.asarray(is_attack(corrected["label"])))
    encoder = protocol_encoder(builtin_schema("kdd99"), protocol).fit(raw.take(normal))
    X = encoder.transform(raw)
    assert X.dtype == np.float32 and hashlib.sha256(X.tobytes()).hexdigest() == BEFORE_SCHEMAS[protocol]


def test_the_kdd99_schema_table_encodes_as_its_frame(kdd_table) -> None:
    normal = np.flatnonzero(kdd_table.normal)
    table_encoder = TableEncoder.for_schema(kdd_table.schema).fit(_raw(kdd_table).take(normal))
    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "train"), limit=30_000)
    raw = RecordsRaw.from_frame(frame, builtin_schema("kdd99"))
    assert table_encoder.transform(_raw(kdd_table)).tobytes() == table_encoder.transform(raw).tobytes()


def test_unseen_categories_encode_as_zeros_in_their_group(kdd_table) -> None:
    normal = np.flatnonzero(kdd_table.normal)
    encoder = TableEncoder.for_schema(kdd_table.schema).fit(_raw(kdd_table).take(normal))
    raw = _raw(kdd_table).take(np.arange(3))
    raw.symbols[0, 1] = "never-seen-service"
    X = encoder.transform(raw)
    service = [i for i, name in enumerate(encoder.feature_names_) if name.startswith("service=")]
    protocol = [i for i, name in enumerate(encoder.feature_names_) if name.startswith("protocol_type=")]
    assert X[0, service].sum() == 0 and X[1, service].sum() == 1
    assert X[0, protocol].sum() == 1, "the other groups of the row still encode"


def test_log_columns_are_compressed_before_scaling_and_the_others_are_not(kdd_table) -> None:
    schema = DatasetSchema(
        name="conns",
        features={"numeric": ["src_bytes", "same_srv_rate"], "categorical": ["flag"], "log": ["src_bytes"]},
    )
    raw = RecordsRaw(kdd_table.frame[["src_bytes", "same_srv_rate"]].to_numpy(), kdd_table.symbols()[:, 2:])
    encoder = TableEncoder.for_schema(schema).fit(raw)
    X = encoder.transform(raw)
    logged = np.log1p(raw.numeric[:, 0])
    expected = (logged - logged.min()) / (logged.max() - logged.min())
    np.testing.assert_allclose(X[:, 0], expected, rtol=1e-6, atol=1e-7)
    rate = raw.numeric[:, 1]
    np.testing.assert_allclose(X[:, 1], (rate - rate.min()) / (rate.max() - rate.min()), atol=1e-7)
    flags = sorted(set(raw.symbols[:, 0]))
    assert encoder.feature_names_ == ["src_bytes", "same_srv_rate", *(f"flag={f}" for f in flags)]


def test_round_trip_through_json_keeps_the_transform_and_the_schema(kdd_table) -> None:
    encoder = TableEncoder.for_schema(kdd_table.schema).fit(_raw(kdd_table))
    restored = encoder_from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert isinstance(restored, TableEncoder) and restored.kind == "table"
    assert encoder_schema(restored) == kdd_table.schema
    raw = _raw(kdd_table)
    assert restored.transform(raw).tobytes() == encoder.transform(raw).tobytes()


@pytest.mark.parametrize("protocol", ["full", "ffl"])
def test_a_kdd_encoder_saved_before_schemas_loads_as_the_schema_encoder_and_scores_the_same(
    corrected, protocol: str
) -> None:
    saved = json.loads(SAVED_BEFORE_SCHEMAS.read_text())[protocol]
    assert saved["encoder"]["kind"] == "kdd" and "schema" not in saved["encoder"]
    restored = encoder_from_dict(saved["encoder"])
    assert isinstance(restored, TableEncoder) and encoder_schema(restored) == builtin_schema("kdd99")
    X = restored.transform(RecordsRaw.from_frame(corrected.head(3_000), builtin_schema("kdd99")))
    assert hashlib.sha256(X.tobytes()).hexdigest() == saved["sha256_of_first_3000_corrected_rows"]
    # Saved again, it is the schema's encoder: the next load needs no conversion.
    again = encoder_from_dict(json.loads(json.dumps(restored.to_dict())))
    assert again.to_dict() == restored.to_dict() and again.to_dict()["kind"] == "table"


def test_a_batch_with_another_number_of_columns_is_refused(kdd_table) -> None:
    encoder = TableEncoder.for_schema(kdd_table.schema).fit(_raw(kdd_table))
    with pytest.raises(ValueError, match="38 numeric columns"):
        encoder.transform(RecordsRaw(np.zeros((2, 5)), np.full((2, 3), "tcp", dtype=object)))
    with pytest.raises(ValueError, match="records"):
        TableEncoder.for_schema(load_schema("ecg5000"))


# -- windows ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bearing() -> np.ndarray:
    """The four bearing channels side by side, (rows, 4)."""
    series = load_bearing(require_data("bearing").parent)
    return np.column_stack([s.values for s in series])


def test_multichannel_windows_scale_each_channel_on_its_own(bearing: np.ndarray) -> None:
    length = 8
    windows = sliding_windows(bearing[:400], length)
    encoder = WindowEncoder(length, channels=4).fit(windows)
    X = encoder.transform(sliding_windows(bearing, length))
    assert X.shape[1] == length * 4 and X.dtype == np.float32
    fitted = encoder.transform(windows)
    for channel in range(4):
        columns = fitted[:, channel::4]  # row-major: every 4th value is this channel
        assert columns.min() == pytest.approx(0.0) and columns.max() == pytest.approx(1.0)
        alone = WindowEncoder(length).fit(sliding_windows(bearing[:400, channel], length))
        expected = alone.transform(sliding_windows(bearing[:, channel], length))
        assert X[:, channel::4].tobytes() == expected.tobytes(), "as one channel scaled alone"


def test_multichannel_windows_round_trip_with_their_schema_and_names(bearing: np.ndarray) -> None:
    schema = load_schema("bearing")
    spec = schema.series.model_copy(update={"multivariate": True})
    schema = schema.model_copy(update={"name": "bearings", "series": spec})
    windows = sliding_windows(bearing[:300], 4)
    for scaling in ("global", "window"):
        encoder = WindowEncoder(4, scaling, channels=4, schema=schema).fit(windows)
        assert encoder.feature_names_[:5] == [
            "Bearing 1@t000", "Bearing 2@t000", "Bearing 3@t000", "Bearing 4@t000", "Bearing 1@t001",
        ]  # fmt: skip
        restored = encoder_from_dict(json.loads(json.dumps(encoder.to_dict())))
        assert isinstance(restored, WindowEncoder) and restored.channels == 4 and restored.schema == schema
        assert restored.feature_names_ == encoder.feature_names_
        assert restored.transform(windows).tobytes() == encoder.transform(windows).tobytes()
    with pytest.raises(ValueError, match="16 values"):
        encoder.transform(windows[:, :8])


def test_one_channel_is_stored_as_before(bearing: np.ndarray) -> None:
    windows = sliding_windows(bearing[:, 0], 16)
    encoder = WindowEncoder(16).fit(windows)
    assert encoder.to_dict().keys() == {"kind", "length", "scaling", "low", "high"}
    assert encoder.feature_names_[:2] == ["t000", "t001"] and encoder.width == 16
