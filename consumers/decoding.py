"""Message bytes -> validated raw batches, one decoder per stream.

A message that fails to decode or validate is returned as :class:`Rejected` (raw bytes untouched,
the error kept) for the dead-letter topic; it never stops the batch.
"""

from __future__ import annotations

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


def _validate(
    messages: Sequence[Message], validate: Callable[[bytes], Any]
) -> tuple[list, list, list[Rejected]]:
    valid_messages, records, rejected = [], [], []
    for message in messages:
        value = message.value()
        if value is None:
            rejected.append(Rejected(message, "EmptyMessage", "message has no value"))
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
    return valid_messages, records, rejected


Decoder = Callable[[Sequence[Message], int | None], DecodedBatch]

_kdd_numeric = attrgetter(*KDD_NUMERIC)
_kdd_symbols = attrgetter(*KDD_CATEGORICAL)


def decode_kdd(messages: Sequence[Message], width: int | None = None) -> DecodedBatch:
    valid, records, rejected = _validate(messages, decode_kdd_connection)
    raw = KddRaw.from_rows([_kdd_numeric(r) for r in records], [_kdd_symbols(r) for r in records])
    return DecodedBatch(raw, valid, records, rejected)


def _decode_windows(
    validate: Callable[[bytes], Any], event_time: Callable[[Any], str] | None = None
) -> Decoder:
    def decode(messages: Sequence[Message], width: int | None = None) -> DecodedBatch:
        valid, records, rejected = _validate(messages, validate)
        if width is not None:
            # A window of another length than the model's cannot be scored: dead-letter it alone.
            keep = []
            for message, record in zip(valid, records, strict=True):
                if len(record.values) == width:
                    keep.append((message, record))
                else:
                    error = f"values: window has {len(record.values)} values, the model expects {width}"
                    rejected.append(Rejected(message, "ValidationError", error))
            valid, records = [m for m, _ in keep], [r for _, r in keep]
        # A batch where every window was rejected is an empty (0, width) batch, not a crash.
        raw = (
            np.asarray([r.values for r in records], dtype=np.float64).reshape(len(records), -1)
            if records
            else np.zeros((0, width or 0), dtype=np.float64)
        )
        times: list[str | None] | None = None if event_time is None else [event_time(r) for r in records]
        return DecodedBatch(raw, valid, records, rejected, times)

    return decode


DECODERS: dict[str, Decoder] = {
    "kdd": decode_kdd,
    "ecg": _decode_windows(decode_ecg_beat),
    "sensor": _decode_windows(decode_sensor_window, attrgetter("end")),
}
