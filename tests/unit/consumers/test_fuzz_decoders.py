"""Fuzzing the decoders (Hypothesis): random bytes, mutated valid messages, every schema field.

Whatever arrives, each message is either decoded (and then its row is finite and complete) or
rejected with its raw bytes for the dead-letter topic; the decoder never raises, and in a batch of
any mix every good message is kept, in order.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from confluent_kafka import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.decoding import decode_ecg, decode_sensor, decoder_for
from stream.datasets import find_kdd_file, read_kdd
from stream.messages import KDD_FEATURES
from tests.support import measure, require_data

DECODERS = {"ecg": decode_ecg, "sensor": decode_sensor}  # the window kinds' message formats
EXAMPLES = 1500
RUN: dict[str, int] = {}
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def kdd_records() -> list[dict]:
    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "test"), limit=200)
    return json.loads(frame[list(KDD_FEATURES)].to_json(orient="records"))


def _message(value: bytes | None, offset: int, topic: str = "kdd.connections") -> Message:
    return Message(topic=topic, partition=0, offset=offset, value=value)


def _count(name: str) -> None:
    RUN[name] = RUN.get(name, 0) + 1


def _check(stream: str, messages: list[Message], width: int | None = None):  # noqa: ANN202
    batch = decoder_for("kdd", None)(messages) if stream == "kdd" else DECODERS[stream](messages, width)
    kept = [m.offset() for m in batch.messages]
    rejected = [r.message.offset() for r in batch.rejected]
    assert sorted(kept + rejected) == [m.offset() for m in messages], "every message decoded or rejected"
    assert kept == sorted(kept), "good messages keep their order"
    for rejected_message in batch.rejected:
        assert rejected_message.error_type in {"InvalidJSON", "ValidationError", "EmptyMessage"}
        original = messages[rejected_message.message.offset()].value()
        assert rejected_message.message.value() == original, "dead letters keep the raw bytes"
    rows = batch.raw.numeric if stream == "kdd" else batch.raw
    assert len(rows) == len(kept) and np.all(np.isfinite(rows))
    return batch


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_are_decoded_or_rejected(payload: bytes) -> None:
    _count("random bytes")
    for stream in ("kdd", "ecg", "sensor"):
        _check(stream, [_message(payload, 0)], 140 if stream == "ecg" else None)


@pytest.mark.data
@FUZZ
@given(data=st.data())
def test_every_field_of_a_valid_record_mutated(kdd_records: list[dict], data: st.DataObject) -> None:
    _count("mutated KDD records")
    record = dict(data.draw(st.sampled_from(kdd_records)))
    field = data.draw(st.sampled_from(KDD_FEATURES))
    action = data.draw(st.sampled_from(["delete", "replace", "extra"]))
    if action == "delete":
        del record[field]
    elif action == "replace":
        record[field] = data.draw(json_values)
    else:
        record[data.draw(st.text(max_size=12))] = data.draw(json_values)
    batch = _check("kdd", [_message(json.dumps(record).encode(), 0)])
    if batch.messages:  # accepted: every feature is present and in its range
        numeric = batch.raw.numeric[0]
        assert np.all(numeric >= 0) and all(math.isfinite(v) for v in numeric)


@pytest.mark.data
@FUZZ
@given(data=st.data())
def test_byte_level_corruption_of_valid_messages(kdd_records: list[dict], data: st.DataObject) -> None:
    _count("corrupted bytes")
    raw = bytearray(json.dumps(data.draw(st.sampled_from(kdd_records))).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    _check("kdd", [_message(bytes(raw), 0)])


@pytest.mark.data
@FUZZ
@given(data=st.data())
def test_a_batch_of_any_mix_scores_every_good_message(kdd_records: list[dict], data: st.DataObject) -> None:
    _count("mixed batches")
    good = [json.dumps(r).encode() for r in data.draw(st.lists(st.sampled_from(kdd_records), max_size=12))]
    bad = data.draw(st.lists(st.binary(max_size=80) | st.none(), max_size=12))
    values = good + bad
    order = data.draw(st.permutations(range(len(values))))
    messages = [_message(values[i], offset) for offset, i in enumerate(order)]
    batch = _check("kdd", messages)
    good_offsets = {offset for offset, i in enumerate(order) if i < len(good)}
    assert good_offsets <= {m.offset() for m in batch.messages}, "a good message was rejected"


@FUZZ
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.integers() | st.text(max_size=4),
                        max_size=160), record=json_values)  # fmt: skip
def test_ecg_beats_with_any_values(values: list, record: object) -> None:
    _count("ECG beats")
    payload = json.dumps({"record": record, "values": values}).encode()
    batch = _check("ecg", [_message(payload, 0, "ecg.beats")], 140)
    if batch.messages:
        assert len(values) == 140 and isinstance(record, str)


def teardown_module() -> None:
    total = sum(RUN.values())
    measure(f"decoder fuzzing: {total:,} examples ({', '.join(f'{k} {v:,}' for k, v in RUN.items())})")
