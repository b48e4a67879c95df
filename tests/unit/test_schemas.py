"""Message schemas: the published JSON Schema files are current, and validation is strict."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from stream.schemas import (
    KDD_FEATURES,
    KDD_VALIDATOR,
    SCHEMA_DIR,
    Alert,
    KddConnection,
    ScoreRecord,
)
from tests.conftest import require_data


def test_schema_files_in_the_repository_are_up_to_date() -> None:
    """Subscribers read stream/schemas/*.json: a model change without re-export must fail here."""
    for name, model in (("alert", Alert), ("score-record", ScoreRecord), ("kdd-connection", KddConnection)):
        stored = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
        assert stored == model.model_json_schema(), (
            "run: python -c 'from stream.schemas import *; write_json_schemas()'"
        )


def test_hot_path_validator_has_the_same_schema_as_the_model() -> None:
    fast, model = KDD_VALIDATOR.json_schema(), KddConnection.model_json_schema()
    assert fast["properties"] == model["properties"]
    assert fast["required"] == model["required"] == list(KDD_FEATURES)


def _valid_record() -> dict:
    from stream.datasets import find_kdd_file, read_kdd

    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "test"), limit=1)
    return json.loads(frame[list(KDD_FEATURES)].to_json(orient="records"))[0]


def test_a_real_kdd_record_validates_with_both_validators() -> None:
    record = _valid_record()
    raw = json.dumps(record).encode()
    assert KddConnection.model_validate_json(raw).src_bytes == record["src_bytes"]
    assert KDD_VALIDATOR.validate_json(raw)["service"] == record["service"]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("src_bytes", "105", "a numeric string is not a number (strict)"),
        ("serror_rate", 1.5, "rates lie in [0, 1]"),
        ("src_bytes", -1, "counts are non-negative"),
        ("land", 2, "binary flags are 0 or 1"),
        ("service", "", "symbols are non-empty"),
        ("duration", None, "no nulls"),
    ],
)
def test_invalid_values_are_rejected(field: str, value: object, reason: str) -> None:
    record = _valid_record() | {field: value}
    with pytest.raises(ValidationError):
        KDD_VALIDATOR.validate_json(json.dumps(record))
    with pytest.raises(ValidationError):
        KddConnection.model_validate_json(json.dumps(record))


def test_nan_and_missing_fields_are_rejected() -> None:
    record = _valid_record()
    text = json.dumps(record).replace('"dst_bytes": ' + str(record["dst_bytes"]), '"dst_bytes": NaN')
    with pytest.raises(ValidationError):
        KDD_VALIDATOR.validate_json(text)
    del record["flag"]
    with pytest.raises(ValidationError, match="flag"):
        KDD_VALIDATOR.validate_json(json.dumps(record))


def test_label_in_the_body_is_ignored_never_scored() -> None:
    record = _valid_record() | {"label": "smurf"}
    assert "label" not in KDD_VALIDATOR.validate_json(json.dumps(record))
