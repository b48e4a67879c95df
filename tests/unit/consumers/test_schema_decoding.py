"""Decoding a dataset schema's messages without a broker: real ``confluent_kafka.Message`` objects in,
validated batches and dead-letter reasons out."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest
from confluent_kafka import Message

from consumers.decoding import SchemaRecords, decoder_for, stream_topic
from models.features import RecordsRaw, TableEncoder, WindowEncoder
from stream.datasets.schema import DatasetSchema, load_schema
from stream.datasets.table import read_table
from stream.errors import ConfigurationError
from stream.messages import EcgBeat, SensorWindow
from stream.settings import Settings
from tests.support import require_data

TAXI = "nab/data/realKnownCause/nyc_taxi.csv"


def _messages(values: list[bytes | dict], topic: str = "own") -> list[Message]:
    out = []
    for offset, value in enumerate(values):
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        out.append(Message(topic=topic, partition=0, offset=offset, key=f"k{offset}".encode(), value=body,
                           headers=[("label", b"normal")]))  # fmt: skip
    return out


def _schema(**timestamp: str) -> DatasetSchema:
    return DatasetSchema(
        name="taxi-trips",
        features={"numeric": ["value", "fare amount"], "categorical": ["zone"], "log": ["value"]},
        timestamp={"column": "timestamp", **timestamp},
    )


def test_records_in_any_field_order_with_extra_fields_decode_in_schema_order() -> None:
    decode = SchemaRecords(_schema())
    batch = decode(_messages([
        {"zone": "midtown", "extra": [1, 2], "fare amount": 7.5, "timestamp": "2014-07-01T00:30:00Z",
         "value": 10844},
        {"timestamp": "2014-07-01T01:00:00+02:00", "value": 8127.0, "zone": "soho", "fare amount": 3},
    ]))  # fmt: skip
    assert batch.rejected == [] and [m.offset() for m in batch.messages] == [0, 1]
    assert isinstance(batch.raw, RecordsRaw)
    assert batch.raw.numeric.tolist() == [[10844.0, 7.5], [8127.0, 3.0]]
    assert batch.raw.symbols.tolist() == [["midtown"], ["soho"]]
    assert batch.event_times == ["2014-07-01T00:30:00Z", "2014-06-30T23:00:00Z"]  # normalised to UTC
    assert batch.labels == ["normal", "normal"] and batch.keys == [b"k0", b"k1"]


def test_each_bad_record_is_rejected_alone_with_its_reason() -> None:
    good = {"value": 1, "fare amount": 2, "zone": "a", "timestamp": "2014-07-01T00:00:00Z"}
    values: list[bytes | dict] = [
        good,
        {k: v for k, v in good.items() if k != "fare amount"},  # missing
        good | {"value": "10844"},  # a number as text
        b'{"value": 1e999, "fare amount": 2, "zone": "a", "timestamp": "2014-07-01T00:00:00Z"}',  # infinite
        b'{"value": NaN, "fare amount": 2, "zone": "a", "timestamp": "2014-07-01T00:00:00Z"}',  # not JSON
        good | {"zone": True},  # neither text nor number
        good | {"zone": ""},  # empty category
        good | {"timestamp": "yesterday"},  # not a time
        good,
    ]
    batch = SchemaRecords(_schema())(_messages(values))
    assert [m.offset() for m in batch.messages] == [0, 8]
    why = {r.message.offset(): (r.error_type, r.error) for r in batch.rejected}
    assert why[1] == ("ValidationError", "Object missing required field `fare amount`")
    assert why[2][0] == "ValidationError" and "`float`" in why[2][1] and "$.value" in why[2][1]
    assert why[3] == ("ValidationError", "Number out of range - at `$.value`")
    assert why[4][0] == "InvalidJSON"
    assert why[5][0] == "ValidationError" and "$.zone" in why[5][1]
    assert why[6][0] == "ValidationError" and "$.zone" in why[6][1]
    assert why[7] == ("ValidationError", "timestamp: 'yesterday' is not a time (RFC 3339)")
    assert batch.raw.numeric.shape == (2, 2) and batch.event_times == ["2014-07-01T00:00:00Z"] * 2
    assert all(r.message.value() == _messages(values)[r.message.offset()].value() for r in batch.rejected)


def test_a_category_sent_as_a_number_reads_as_its_text() -> None:
    schema = DatasetSchema(name="ports", features={"numeric": ["bytes"], "categorical": ["port", "proto"]})
    batch = SchemaRecords(schema)(_messages([
        {"bytes": 10, "port": 443, "proto": "tcp"},
        {"bytes": 10, "port": 8080.0, "proto": 6},
        {"bytes": 10, "port": "22", "proto": 17.5},
    ]))  # fmt: skip
    assert batch.rejected == [] and batch.event_times is None
    assert batch.raw.symbols.tolist() == [["443", "tcp"], ["8080", "6"], ["22", "17.5"]]


def test_times_in_the_schemas_own_format_normalise_to_rfc3339() -> None:
    decode = SchemaRecords(_schema(format="%d/%m/%Y %H:%M"))
    base = {"value": 1, "fare amount": 2, "zone": "a"}
    batch = decode(_messages([
        base | {"timestamp": "01/07/2014 00:30"},  # the schema's format, as a user's producer writes it
        base | {"timestamp": "2014-07-01T00:30:00.250Z"},  # RFC 3339, as a replay writes it
        base | {"timestamp": "2014-07-01 00:30"},  # naive ISO: UTC
        base | {"timestamp": "31/02/2014 00:30"},  # no such day
    ]))  # fmt: skip
    assert batch.event_times == ["2014-07-01T00:30:00Z", "2014-07-01T00:30:00.250Z", "2014-07-01T00:30:00Z"]
    assert [(r.message.offset(), r.error) for r in batch.rejected] == [
        (3, "timestamp: '31/02/2014 00:30' is not a time (RFC 3339 or format '%d/%m/%Y %H:%M')")
    ]


def test_epoch_times_may_come_as_numbers() -> None:
    decode = SchemaRecords(_schema(format="unix_ms"))
    base = {"value": 1, "fare amount": 2, "zone": "a"}
    batch = decode(_messages([
        base | {"timestamp": 1404174600000}, base | {"timestamp": "1404174600000"},
        base | {"timestamp": "2014-07-01T00:30:00Z"}, base | {"timestamp": [1]},
    ]))  # fmt: skip
    assert batch.event_times == ["2014-07-01T00:30:00Z"] * 3
    assert [(r.message.offset(), r.error_type) for r in batch.rejected] == [(3, "ValidationError")]


def test_an_empty_batch_and_an_all_rejected_batch_decode_to_nothing() -> None:
    decode = SchemaRecords(_schema())
    for messages in ([], _messages([b"{}"])):
        batch = decode(messages)
        assert batch.raw.numeric.shape == (0, 2) and batch.raw.symbols.shape == (0, 1)
        assert batch.messages == [] and batch.event_times == []


@pytest.mark.data
def test_decoded_rows_encode_as_the_table_they_were_replayed_from() -> None:
    """nyc_taxi read as records: its rows as a replay writes them decode to the very numbers the
    file holds, so a worker encodes them as training did."""
    schema = DatasetSchema(name="taxi", features={"numeric": ["value"], "log": ["value"]},
                           timestamp={"column": "timestamp", "format": "%Y-%m-%d %H:%M:%S"})  # fmt: skip
    table = read_table(schema, require_data(TAXI), limit=500)
    encoder = TableEncoder.for_schema(schema).fit(RecordsRaw(table.numeric(), table.symbols()))
    assert table.timestamps is not None
    times = np.datetime_as_string(table.timestamps, unit="s", timezone="UTC").tolist()
    values = [{"timestamp": t, "value": v} for t, v in zip(times, table.frame["value"].tolist(), strict=True)]
    decoded = decoder_for("taxi", encoder)(_messages(values))
    assert decoded.rejected == [] and decoded.event_times == times
    expected = encoder.transform(RecordsRaw(table.numeric(), table.symbols()))
    assert encoder.transform(decoded.raw).tobytes() == expected.tobytes()


# -- which decoder, which topic ----------------------------------------------------------------------
def _windows_message(values: list[float], channels: int = 1) -> bytes:
    return msgspec.json.encode(SensorWindow("s", "2004-02-12T10:52:39Z", "2004-02-12T11:02:39Z", values,
                                            channels))  # fmt: skip


def test_decoder_for_decodes_every_records_stream_by_its_schema() -> None:
    kdd_schema = load_schema("kdd99")
    kdd = decoder_for("kdd", TableEncoder.for_schema(kdd_schema))
    assert isinstance(kdd, SchemaRecords) and kdd.schema == kdd_schema
    saved_before_schemas = decoder_for("kdd", None)  # an encoder without a schema: its stream's built-in
    assert isinstance(saved_before_schemas, SchemaRecords) and saved_before_schemas.schema == kdd_schema
    assert isinstance(decoder_for("taxi", TableEncoder.for_schema(_schema())), SchemaRecords)
    # Window models saved without a schema: their stream's built-in schema says the message format.
    beat = decoder_for("ecg", WindowEncoder(140))(_messages([{"record": "r", "values": [0.5] * 140}]))
    assert beat.raw.shape == (1, 140) and beat.rejected == []
    window = decoder_for("sensor", WindowEncoder(4))(_messages([_windows_message([0.1] * 4)]))
    assert window.raw.shape == (1, 4) and window.event_times == ["2004-02-12T11:02:39Z"]
    with pytest.raises(ConfigurationError, match="train --schema"):
        decoder_for("mystery", WindowEncoder(16))


def test_a_multivariate_series_rejects_windows_of_another_size_or_channel_count() -> None:
    schema = load_schema("bearing")
    assert schema.series is not None
    spec = schema.series.model_copy(update={"multivariate": True})
    schema = schema.model_copy(update={"name": "bearings", "series": spec})
    decode = decoder_for("bearings", WindowEncoder(4, channels=4, schema=schema))
    batch = decode(_messages([
        _windows_message([0.1] * 16, 4), _windows_message([0.1] * 16, 1), _windows_message([0.1] * 12, 4),
    ]))  # fmt: skip
    assert [m.offset() for m in batch.messages] == [0] and batch.raw.shape == (1, 16)
    assert batch.event_times == ["2004-02-12T11:02:39Z"]
    why = {r.message.offset(): r.error for r in batch.rejected}
    assert why == {
        1: "channels: window has 1 channels, the model expects 4",
        2: "values: window has 12 values, the model expects 16",
    }


def test_a_windows_schema_decodes_beats_of_its_width() -> None:
    schema = load_schema("ecg5000").model_copy(update={"name": "beats", "topic": None})
    decode = decoder_for("beats", WindowEncoder(140, schema=schema))
    beats = [msgspec.json.encode(EcgBeat("r", [0.5] * n)) for n in (140, 96)]
    batch = decode(_messages(beats))
    assert batch.raw.shape == (1, 140) and [r.message.offset() for r in batch.rejected] == [1]


def test_stream_topic_of_built_in_and_schema_streams() -> None:
    settings = Settings(topic_prefix="dev.", bootstrap_servers="k:9092")
    assert stream_topic(settings, "kdd") == "dev.kdd.connections"
    encoder = TableEncoder.for_schema(_schema())
    assert stream_topic(settings, "taxi-trips", encoder) == "dev.taxi-trips"
    with pytest.raises(ConfigurationError, match="--topic"):
        stream_topic(settings, "taxi-trips")
