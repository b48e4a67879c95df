"""Message bytes -> validated raw batches, one decoder per stream.

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
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
from confluent_kafka import Message

from models.features import KddRaw
from stream.messages import (
    KDD_CATEGORICAL,
    KDD_NUMERIC,
    decode_ecg_beat,
    decode_kdd_connection,
    decode_sensor_window,
)

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
    raw: Any  # what the stream's encoder takes (KddRaw, or an (n, length) array of windows)
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
    messages: Sequence[Message], validate: Callable[[bytes], Any]
) -> tuple[list, list, list[Rejected], list[str | None], list[bytes | None]]:
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
            records.append(validate(value))
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

_kdd_numeric = attrgetter(*KDD_NUMERIC)
_kdd_symbols = attrgetter(*KDD_CATEGORICAL)


def decode_kdd(messages: Sequence[Message], width: int | None = None) -> DecodedBatch:
    valid, records, rejected, labels, keys = _validate(messages, decode_kdd_connection)
    n = len(records)
    # One flat iterator of floats straight into the array: no tuple list for NumPy to inspect.
    numeric = np.fromiter(
        itertools.chain.from_iterable(map(_kdd_numeric, records)), np.float64, n * len(KDD_NUMERIC)
    ).reshape(n, len(KDD_NUMERIC))
    symbols = np.asarray(list(map(_kdd_symbols, records)), dtype=object).reshape(n, len(KDD_CATEGORICAL))
    return DecodedBatch(KddRaw(numeric, symbols), valid, records, rejected, None, labels, keys)


def _decode_windows(
    validate: Callable[[bytes], Any], event_time: Callable[[Any], str] | None = None
) -> Decoder:
    def decode(messages: Sequence[Message], width: int | None = None) -> DecodedBatch:
        valid, records, rejected, labels, keys = _validate(messages, validate)
        if width is not None:
            # A window of another length than the model's cannot be scored: dead-letter it alone.
            keep = []
            for message, record, label, key in zip(valid, records, labels, keys, strict=True):
                if len(record.values) == width:
                    keep.append((message, record, label, key))
                else:
                    error = f"values: window has {len(record.values)} values, the model expects {width}"
                    rejected.append(Rejected(message, "ValidationError", error))
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


DECODERS: dict[str, Decoder] = {
    "kdd": decode_kdd,
    "ecg": _decode_windows(decode_ecg_beat),
    "sensor": _decode_windows(decode_sensor_window, attrgetter("end")),
}
