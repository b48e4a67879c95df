"""Decoding without a broker: real ``confluent_kafka.Message`` objects in, validated batches and
rejects out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from confluent_kafka import Message

from consumers.decoding import decode_ecg, decode_sensor, decoder_for
from stream.datasets import find_kdd_file, read_kdd
from stream.messages import KDD_FEATURES, KDD_NUMERIC
from tests.support import require_data


def _message(value: bytes | None, offset: int, topic: str = "kdd.connections") -> Message:
    return Message(topic=topic, partition=0, offset=offset, key=f"k{offset}".encode(), value=value)


def decode_kdd(messages: list[Message]):  # noqa: ANN201
    """The kdd stream's decoder, as a worker gets it for a model saved without a schema (old registries)."""
    return decoder_for("kdd", None)(messages)


def _kdd_rows(n: int) -> list[dict]:
    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "test"), limit=n)
    return json.loads(frame[list(KDD_FEATURES)].to_json(orient="records"))


@pytest.mark.data
def test_a_mixed_batch_keeps_every_good_message_in_order_and_rejects_each_bad_one() -> None:
    rows = _kdd_rows(3)
    values: list[bytes | None] = [
        json.dumps(rows[0]).encode(),
        b"{not json",
        json.dumps(rows[1] | {"src_bytes": "105"}).encode(),
        None,
        json.dumps(rows[2]).encode(),
    ]
    batch = decode_kdd([_message(v, i) for i, v in enumerate(values)])
    assert [m.offset() for m in batch.messages] == [0, 4]
    assert batch.raw.numeric.shape == (2, len(KDD_NUMERIC))
    assert batch.raw.numeric[1, KDD_NUMERIC.index("src_bytes")] == rows[2]["src_bytes"]
    assert batch.raw.symbols[0].tolist() == [rows[0]["protocol_type"], rows[0]["service"], rows[0]["flag"]]
    kinds = {r.message.offset(): r.error_type for r in batch.rejected}
    assert kinds == {1: "InvalidJSON", 2: "ValidationError", 3: "EmptyMessage"}
    why = {r.message.offset(): r.error for r in batch.rejected}
    assert "src_bytes" in why[2], "the error names the field"


@pytest.mark.data
@pytest.mark.parametrize(("field", "value"), [("serror_rate", 1.5), ("src_bytes", -1), ("land", 2)])
def test_a_kdd_value_outside_the_kdd99_schemas_range_is_rejected(field: str, value: float) -> None:
    row = _kdd_rows(1)[0]
    batch = decode_kdd(
        [_message(json.dumps(row).encode(), 0), _message(json.dumps(row | {field: value}).encode(), 1)]
    )
    assert [m.offset() for m in batch.messages] == [0]
    assert [(r.error_type, field in r.error) for r in batch.rejected] == [("ValidationError", True)]


def test_windows_of_the_wrong_length_are_rejected_alone() -> None:
    beats = [
        json.dumps({"record": "a", "values": [0.5] * 140}).encode(),
        json.dumps({"record": "b", "values": [0.5] * 96}).encode(),
        json.dumps({"record": "c", "values": [0.1] * 140}).encode(),
    ]
    batch = decode_ecg([_message(v, i, "ecg.beats") for i, v in enumerate(beats)], 140)
    assert batch.raw.shape == (2, 140) and np.allclose(batch.raw[1], 0.1)
    assert [(r.message.offset(), r.error_type) for r in batch.rejected] == [(1, "ValidationError")]
    assert "140" in batch.rejected[0].error


def test_sensor_windows_carry_their_own_event_time() -> None:
    window = {
        "sensor_id": "s",
        "start": "2014-01-01T00:00:00Z",
        "end": "2014-01-01T00:15:00Z",
        "values": [1.0, 2.0],
    }
    batch = decode_sensor([_message(json.dumps(window).encode(), 0, "sensor.windows")], 2)
    assert batch.event_times == ["2014-01-01T00:15:00Z"] and batch.raw.tolist() == [[1.0, 2.0]]


def test_an_empty_batch_decodes_to_nothing() -> None:
    batch = decode_kdd([])
    assert len(batch.raw) == 0 and batch.messages == [] and batch.rejected == []
