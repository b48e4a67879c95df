"""Message bytes -> validated raw batches, one decoder per stream.

A message that fails to decode or validate is returned as :class:`Rejected` (raw bytes untouched,
the error kept) for the dead-letter topic; it never stops the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
from confluent_kafka import Message
from pydantic import ValidationError

from models.features import KddRaw
from stream.schemas import KDD_CATEGORICAL, KDD_NUMERIC, KDD_VALIDATOR, EcgBeat, SensorWindow


@dataclass(frozen=True)
class Rejected:
    message: Message
    error_type: str
    error: str


@dataclass(frozen=True)
class DecodedBatch:
    raw: Any  # what the stream's encoder takes (KddRaw, or an (n, length) array of windows)
    messages: list[Message]  # the valid messages, aligned with the rows of ``raw``
    records: list[Any]  # their validated records (dicts for KDD, models for windows)
    rejected: list[Rejected]
    # When each event happened, from the records (a sensor window ends at its last row, in the
    # series' own clock); None: the Kafka timestamps say it.
    event_times: list[str | None] | None = None


def _summarise(error: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in error.errors()[:5]]
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


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
        except ValidationError as exc:
            kind = "InvalidJSON" if exc.errors()[0]["type"] == "json_invalid" else "ValidationError"
            rejected.append(Rejected(message, kind, _summarise(exc)))
            continue
        valid_messages.append(message)
    return valid_messages, records, rejected


Decoder = Callable[[Sequence[Message], int | None], DecodedBatch]

_kdd_numeric = itemgetter(*KDD_NUMERIC)
_kdd_symbols = itemgetter(*KDD_CATEGORICAL)


def decode_kdd(messages: Sequence[Message], width: int | None = None) -> DecodedBatch:
    valid, records, rejected = _validate(messages, KDD_VALIDATOR.validate_json)
    raw = KddRaw.from_rows([_kdd_numeric(r) for r in records], [_kdd_symbols(r) for r in records])
    return DecodedBatch(raw, valid, records, rejected)


def _decode_windows(
    model: type[EcgBeat] | type[SensorWindow], event_time: Callable[[Any], str] | None = None
) -> Decoder:
    def decode(messages: Sequence[Message], width: int | None = None) -> DecodedBatch:
        valid, records, rejected = _validate(messages, model.model_validate_json)
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
        raw = np.asarray([r.values for r in records], dtype=np.float64).reshape(len(records), -1)
        times: list[str | None] | None = None if event_time is None else [event_time(r) for r in records]
        return DecodedBatch(raw, valid, records, rejected, times)

    return decode


DECODERS: dict[str, Decoder] = {
    "kdd": decode_kdd,
    "ecg": _decode_windows(EcgBeat),
    "sensor": _decode_windows(SensorWindow, attrgetter("end")),
}
