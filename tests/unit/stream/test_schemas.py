"""Message formats: the published JSON Schema files are current, decoding is strict, and the hot-path
codec and the JSON Schema agree on what is valid."""

from __future__ import annotations

import json

import jsonschema
import msgspec
import pytest

from stream.messages import (
    KDD_FEATURES,
    PUBLISHED,
    SCHEMA_DIR,
    Alert,
    FeatureContribution,
    ScoreRecord,
    SourceRef,
    decode_kdd_connection,
    encode,
    json_schema,
)
from tests.support import require_data


@pytest.mark.parametrize("stem", sorted(PUBLISHED))
def test_schema_files_in_the_repository_are_up_to_date(stem: str) -> None:
    """Subscribers read stream/schemas/*.json: a message change without re-export must fail here."""
    stored = json.loads((SCHEMA_DIR / f"{stem}.schema.json").read_text())
    assert stored == json_schema(PUBLISHED[stem]), "run: python -m stream.messages"
    jsonschema.Draft202012Validator.check_schema(stored)


def _valid_record() -> dict:
    from stream.datasets import find_kdd_file, read_kdd

    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "test"), limit=1)
    return json.loads(frame[list(KDD_FEATURES)].to_json(orient="records"))[0]


def _schema_accepts(stem: str, instance: object) -> bool:
    schema = json.loads((SCHEMA_DIR / f"{stem}.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return validator.is_valid(instance)


@pytest.mark.data
def test_a_real_kdd_record_decodes_and_matches_its_schema() -> None:
    record = _valid_record()
    decoded = decode_kdd_connection(json.dumps(record).encode())
    assert decoded.src_bytes == record["src_bytes"] and decoded.service == record["service"]
    assert _schema_accepts("kdd-connection", record)


@pytest.mark.data
@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("src_bytes", "105", "a numeric string is not a number (strict)"),
        ("serror_rate", 1.5, "rates lie in [0, 1]"),
        ("src_bytes", -1, "counts are non-negative"),
        ("land", 2, "binary flags are 0 or 1"),
        ("land", True, "a boolean is not a flag"),
        ("service", "", "symbols are non-empty"),
        ("duration", None, "no nulls"),
    ],
)
def test_invalid_values_are_rejected_by_the_decoder_and_the_schema(
    field: str, value: object, reason: str
) -> None:
    record = _valid_record() | {field: value}
    with pytest.raises(msgspec.ValidationError, match=field):
        decode_kdd_connection(json.dumps(record).encode())
    assert not _schema_accepts("kdd-connection", record), reason


@pytest.mark.data
def test_nan_infinity_and_missing_fields_are_rejected() -> None:
    record = _valid_record()
    text = json.dumps(record)
    for bad in ("NaN", "Infinity", "1e999"):
        mutated = text.replace('"dst_bytes": ' + str(record["dst_bytes"]), f'"dst_bytes": {bad}')
        with pytest.raises(msgspec.DecodeError):
            decode_kdd_connection(mutated.encode())
    del record["flag"]
    with pytest.raises(msgspec.ValidationError, match="flag"):
        decode_kdd_connection(json.dumps(record).encode())


@pytest.mark.data
def test_label_in_the_body_is_ignored_never_scored() -> None:
    record = _valid_record() | {"label": "smurf"}
    assert not hasattr(decode_kdd_connection(json.dumps(record).encode()), "label")


def test_encoded_outputs_validate_against_their_schemas() -> None:
    alert = Alert(
        "9f0c", "kdd", "corrected-0-1", SourceRef("kdd.connections", 3, 812, None), None,
        "2026-11-23T16:34:25.301+00:00", "ae", 1, 0.09, 0.002, "critical",
        [FeatureContribution("count", 0.02)], "smurf",
    )  # fmt: skip
    assert _schema_accepts("alert", json.loads(encode(alert)))
    record = ScoreRecord("kdd", "ae", 1, "kdd.connections", 0, [5], [0.1], [False], [None], [None])
    assert _schema_accepts("score-record", json.loads(encode(record)))
    assert not _schema_accepts("alert", json.loads(encode(alert)) | {"severity": "apocalyptic"})
