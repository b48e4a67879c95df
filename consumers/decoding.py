"""Message bytes -> validated raw batches, one decoder per stream.

:func:`decoder_for` gives a stream's decoder for the model that scores it, from the dataset schema
the model was trained with: :class:`SchemaRecords` (a msgspec struct built from the schema) for
``kind = "records"``, sensor windows for ``series``, ECG-shaped beats for ``windows``. The built-in
streams are schemas' streams like any other (``kdd``: the kdd99 schema's records); a model saved
before its encoder carried a schema decodes by its stream's built-in schema.

A message that fails to decode or validate is returned as :class:`Rejected` (raw bytes untouched,
the error kept) for the dead-letter topic; it never stops the batch. So is a message whose key or
``label`` header is larger than an alert may carry (``Oversize``): copied into alerts and score
records, it would make them too large to publish.

One pass per message reads everything the outputs need later (key, label), so no Kafka accessor is
called twice for the same message.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import Annotated, Any

import msgspec
import numpy as np
import pandas as pd
from confluent_kafka import Message
from msgspec import Meta

from models.features import RecordsRaw, encoder_schema
from stream.datasets.schema import DatasetSchema, stream_schema
from stream.errors import ConfigurationError
from stream.messages import decode_ecg_beat, decode_sensor_window
from stream.settings import Settings, TopicNames

# Keys and labels are copied into every alert and score record of their event: bounded here, so
# that an output always fits in one Kafka message (1 MB by default).
MAX_KEY_BYTES = 4096
MAX_LABEL_BYTES = 256


@dataclass(frozen=True)
class Rejected:
    message: Message
    error_type: str
    error: str


@dataclass(frozen=True)
class DecodedBatch:
    raw: Any  # what the stream's encoder takes (RecordsRaw, or an (n, width) array of windows)
    messages: list[Message]  # the valid messages, aligned with the rows of ``raw``
    records: list[Any]  # their validated records (stream.messages structs)
    rejected: list[Rejected]
    # When each event happened, from the records (a sensor window ends at its last row, in the
    # series' own clock); None: the Kafka timestamps say it.
    event_times: list[str | None] | None = None
    labels: list[str | None] | None = None  # the ``label`` header of each valid message
    keys: list[bytes | None] | None = None  # the key of each valid message


def _label(headers: list[tuple[str, bytes]] | None) -> bytes | None:
    if headers:
        for name, value in headers:
            if name == "label":
                return value
    return None


def _validate(
    messages: Sequence[Message],
    validate: Callable[[bytes], Any],
    again: Callable[[bytes], Any] | None = None,
) -> tuple[list, list, list[Rejected], list[str | None], list[bytes | None]]:
    """``again``: a looser validation tried on a message ``validate`` refused (the rare message pays
    for it, not every message)."""
    valid_messages: list[Message] = []
    records: list[Any] = []
    rejected: list[Rejected] = []
    labels: list[str | None] = []
    keys: list[bytes | None] = []
    for message in messages:
        value = message.value()
        if value is None:
            rejected.append(Rejected(message, "EmptyMessage", "message has no value"))
            continue
        key = message.key()
        if key is not None and len(key) > MAX_KEY_BYTES:
            error = f"key of {len(key):,} bytes: at most {MAX_KEY_BYTES:,} fit in an alert"
            rejected.append(Rejected(message, "Oversize", error))
            continue
        label = _label(message.headers())
        if label is not None and len(label) > MAX_LABEL_BYTES:
            error = f"label header of {len(label):,} bytes: at most {MAX_LABEL_BYTES:,} fit in an alert"
            rejected.append(Rejected(message, "Oversize", error))
            continue
        try:
            try:
                records.append(validate(value))
            except msgspec.ValidationError:
                if again is None:
                    raise
                # The looser one reads the rest of the message: its error is what is really wrong.
                records.append(again(value))
        except msgspec.ValidationError as exc:  # well-formed JSON, wrong content
            rejected.append(Rejected(message, "ValidationError", str(exc)))
            continue
        except msgspec.DecodeError as exc:
            rejected.append(Rejected(message, "InvalidJSON", str(exc)))
            continue
        valid_messages.append(message)
        labels.append(label.decode("utf-8", "replace") if label is not None else None)
        keys.append(key)
    return valid_messages, records, rejected, labels, keys


Decoder = Callable[[Sequence[Message], int | None], DecodedBatch]
BatchDecoder = Callable[[Sequence[Message]], DecodedBatch]  # a decoder bound to one model


def _decode_windows(
    validate: Callable[[bytes], Any],
    event_time: Callable[[Any], str] | None = None,
    channels: Callable[[Any], int] | None = None,
) -> Callable[..., DecodedBatch]:
    def decode(messages: Sequence[Message], width: int | None = None, n_channels: int = 1) -> DecodedBatch:
        valid, records, rejected, labels, keys = _validate(messages, validate)
        if width is not None:
            # A window of another length (or channel count) than the model's cannot be scored:
            # dead-letter it alone.
            keep = []
            for message, record, label, key in zip(valid, records, labels, keys, strict=True):
                if len(record.values) != width:
                    error = f"values: window has {len(record.values)} values, the model expects {width}"
                    rejected.append(Rejected(message, "ValidationError", error))
                elif channels is not None and channels(record) != n_channels:
                    error = (
                        f"channels: window has {channels(record)} channels, the model expects {n_channels}"
                    )
                    rejected.append(Rejected(message, "ValidationError", error))
                else:
                    keep.append((message, record, label, key))
            valid, records = [k[0] for k in keep], [k[1] for k in keep]
            labels, keys = [k[2] for k in keep], [k[3] for k in keep]
        # A batch where every window was rejected is an empty (0, width) batch, not a crash.
        raw = (
            np.asarray([r.values for r in records], dtype=np.float64).reshape(len(records), -1)
            if records
            else np.zeros((0, width or 0), dtype=np.float64)
        )
        times: list[str | None] | None = None if event_time is None else [event_time(r) for r in records]
        return DecodedBatch(raw, valid, records, rejected, times, labels, keys)

    return decode


decode_ecg = _decode_windows(decode_ecg_beat)  # kind = "windows": one beat of samples per message
decode_sensor = _decode_windows(decode_sensor_window, attrgetter("end"), attrgetter("channels"))  # "series"


# -- dataset schemas ------------------------------------------------------------------------------
# A categorical field is text; a user's producer may send a number there (a port, a code): its text.
CategoryText = Annotated[str, Meta(min_length=1, max_length=256)]
Category = CategoryText | int | float
TimeText = Annotated[str, Meta(max_length=64)]
EpochTime = TimeText | int | float


def category_text(value: str | int | float) -> str:
    """A categorical value as the text a table holds: a number is its text, an integral float without
    its ``.0`` (JSON writers differ on ``3`` and ``3.0``).

    >>> category_text("http"), category_text(3), category_text(3.0), category_text(2.5)
    ('http', '3', '3', '2.5')
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _getter(names: list[str]) -> Callable[[Any], Any]:
    """Always a tuple of the fields, whatever their count (attrgetter of one name gives the value)."""
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda record: (one(record),)
    return attrgetter(*names)


def rfc3339(times: np.ndarray) -> list[str]:
    """RFC 3339 UTC text of datetime64[ns] values: to the second, or to the millisecond where a
    value has a fraction (as sensor windows write their times).

    >>> rfc3339(np.array(["2014-07-01T00:30:00", "2014-07-01T00:30:00.250"], "datetime64[ns]"))
    ['2014-07-01T00:30:00Z', '2014-07-01T00:30:00.250Z']
    """
    whole = times.astype(np.int64) % 1_000_000_000 == 0
    seconds = np.datetime_as_string(times, unit="s", timezone="UTC")
    millis = np.datetime_as_string(times, unit="ms", timezone="UTC")
    return np.where(whole, seconds, millis).tolist()


def parse_times(values: list[Any], fmt: str | None) -> np.ndarray:
    """Times as a batch holds them -> datetime64[ns] UTC (NaT where a value is not a time).

    RFC 3339 / ISO 8601 text first (what a replay writes; a naive time is UTC), then the schema's own
    ``format`` (a strftime pattern, or epoch numbers for ``unix`` / ``unix_ms``), as a user's
    producer may write it; with no format, any other text pandas can read. Vectorised per batch.
    """
    series = pd.Series(values, dtype=object)
    is_text = series.map(type).eq(str).to_numpy()
    parsed = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")
    epoch = fmt in ("unix", "unix_ms")
    numbers = pd.to_numeric(series, errors="coerce") if epoch else None
    if epoch and numbers is not None:
        as_number = numbers.notna().to_numpy()
        if as_number.any():
            unit = "s" if fmt == "unix" else "ms"
            parsed[as_number] = pd.to_datetime(numbers[as_number], unit=unit, utc=True, errors="coerce")
        is_text = is_text & ~as_number
    if is_text.any():
        text = series[is_text].astype(str)
        parsed[is_text] = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        missing = is_text & parsed.isna().to_numpy()
        if missing.any() and not epoch:
            again = series[missing].astype(str)
            parsed[missing] = pd.to_datetime(again, format=fmt or "mixed", utc=True, errors="coerce")
    return parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")


class SchemaRecords:
    """The decoder of a ``kind = "records"`` schema's messages: a JSON object holding every numeric
    feature as a number, every categorical one as text (or a number, read as its text), and the
    schema's time column as a time, extra fields ignored. A missing field, a wrong type, a number out
    of range (NaN, infinity, or outside the schema's ``minimum`` / ``maximum``) or a time that does not
    read is rejected with the reason, for the dead-letter topic.

    The struct is built from the schema (``msgspec.defstruct``, as ``KddConnection`` is): fields are
    named by position and renamed to the columns, so any column name works. Two of them: categories
    as text, and (tried only on a message the first refuses) categories as text or numbers.

    >>> from stream.datasets.schema import DatasetSchema
    >>> schema = DatasetSchema(name="weather", features={"numeric": ["temp max"], "categorical": ["sky"]})
    >>> batch = SchemaRecords(schema)([Message(value=b'{"sky": "sun", "temp max": 12, "x": 0}')])
    >>> batch.raw.numeric.tolist(), batch.raw.symbols.tolist(), batch.rejected
    ([[12.0]], [['sun']], [])
    """

    def __init__(self, schema: DatasetSchema) -> None:
        features = schema.features
        self.schema = schema
        fields: list[tuple[str, Any]] = []
        rename: dict[str, str] = {}
        for i, name in enumerate(features.numeric):
            low, high = features.minimum.get(name), features.maximum.get(name)
            bounded = low is not None or high is not None
            fields.append((f"n{i}", Annotated[float, Meta(ge=low, le=high)] if bounded else float))
            rename[f"n{i}"] = name
        for i, name in enumerate(features.categorical):
            fields.append((f"c{i}", CategoryText))
            rename[f"c{i}"] = name
        self.time_format: str | None = None
        self.time_column: str | None = None
        if schema.timestamp is not None and schema.timestamp.column is not None:  # not row_number
            self.time_format, self.time_column = schema.timestamp.format, schema.timestamp.column
            fields.append(("t", EpochTime if self.time_format in ("unix", "unix_ms") else TimeText))
            rename["t"] = self.time_column
        # Fields in the order messages hold them (a file's column order, as a replay of it writes them):
        # msgspec reads a key fastest when it is the field it expects next.
        position = {column: i for i, column in enumerate(schema.source.columns)}
        fields.sort(key=lambda field: position.get(rename[field[0]], len(position)))
        struct = msgspec.defstruct("SchemaRecord", fields, rename=rename, frozen=True, gc=False)
        struct.__doc__ = f"One record of dataset schema {schema.name!r}."
        self.validate = msgspec.json.Decoder(struct).decode
        # The same record with categories written as numbers (a port, a code): tried only on a message
        # the text-only struct refuses, so text-only streams (KDD's) pay nothing for it.
        loose = [(name, Category if kind is CategoryText else kind) for name, kind in fields]
        self._with_numbers = msgspec.defstruct("SchemaRecord", loose, rename=rename, frozen=True, gc=False)
        self._texts = msgspec.json.Decoder(self._with_numbers).decode if features.categorical else None
        self.k, self.m = len(features.numeric), len(features.categorical)
        self._numeric = _getter([f"n{i}" for i in range(self.k)]) if self.k else None
        self._symbols = _getter([f"c{i}" for i in range(self.m)]) if self.m else None

    def __call__(self, messages: Sequence[Message], width: int | None = None) -> DecodedBatch:
        valid, records, rejected, labels, keys = _validate(messages, self.validate, self._texts)
        times: list[str | None] | None = None
        if self.time_column is not None and records:
            valid, records, labels, keys, times = self._times(valid, records, labels, keys, rejected)
        n = len(records)
        if self._numeric is not None:
            flat = itertools.chain.from_iterable(map(self._numeric, records))
            numeric = np.fromiter(flat, np.float64, n * self.k).reshape(n, self.k)
        else:
            numeric = np.zeros((n, 0), dtype=np.float64)
        symbols = np.empty((n, self.m), dtype=object)
        if self._symbols is not None and n:
            symbols[:] = list(map(self._symbols, records))
            if self._with_numbers in set(map(type, records)):  # a producer wrote a category as a number
                symbols[:] = [[category_text(v) for v in row] for row in symbols.tolist()]
        if self.time_column is not None and not records:
            times = []
        return DecodedBatch(RecordsRaw(numeric, symbols), valid, records, rejected, times, labels, keys)

    def _times(self, valid: list, records: list, labels: list, keys: list, rejected: list[Rejected]) -> tuple:
        """Each record's time as RFC 3339 UTC; a record whose time does not read is rejected."""
        raw = [record.t for record in records]
        parsed = parse_times(raw, self.time_format)
        bad = np.isnat(parsed)
        if not bad.any():
            return valid, records, labels, keys, rfc3339(parsed)
        how = "RFC 3339" + (f" or format {self.time_format!r}" if self.time_format else "")
        for row in np.flatnonzero(bad).tolist():
            error = f"{self.time_column}: {str(raw[row])[:64]!r} is not a time ({how})"
            rejected.append(Rejected(valid[row], "ValidationError", error))
        good = np.flatnonzero(~bad).tolist()
        text = rfc3339(parsed[good])
        return ([valid[i] for i in good], [records[i] for i in good], [labels[i] for i in good],
                [keys[i] for i in good], text)  # fmt: skip


def decoder_for(stream: str, encoder: Any) -> BatchDecoder:
    """The decoder of ``stream``'s messages for a model with this encoder, from the dataset schema the
    encoder carries (a model saved before encoders carried one: its built-in stream's schema); window
    widths (and channels) are the encoder's, so a window of another size is dead-lettered alone. Build
    it once per model, not per batch.

    ConfigurationError when the stream is not built in and its model carries no schema.
    """
    schema = encoder_schema(encoder) or stream_schema(stream)
    width = getattr(encoder, "width", None)
    if schema is not None and schema.kind == "records":
        return SchemaRecords(schema)
    if schema is not None and schema.kind == "series":
        return partial(decode_sensor, width=width, n_channels=getattr(encoder, "channels", 1))
    if schema is not None:
        return partial(decode_ecg, width=width)
    raise ConfigurationError(
        f"stream {stream!r} is not built in and its model carries no dataset schema: train it with "
        "`anomstream train --schema S`"
    )


def stream_topic(settings: Settings, stream: str, encoder: Any = None) -> str:
    """The input topic of ``stream``: a built-in stream's configured topic, else the one the dataset
    schema of its model names (``topic``, default its name, under the common prefix)."""
    if stream in TopicNames.model_fields:
        return settings.topic(stream)
    schema = encoder_schema(encoder)
    if schema is None:
        raise ConfigurationError(
            f"stream {stream!r} is not built in and names no dataset schema: give its topic "
            "(anomstream worker --schema S --topic T)"
        )
    return schema.input_topic(settings)
