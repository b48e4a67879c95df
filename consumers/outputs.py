"""What a scored batch turns into: alerts, score records and dead letters (:mod:`stream.messages`).

Per-message metadata (ids, labels, event times) is extracted once per batch into :class:`BatchMeta`
and shared by the alert and score-record builders; event times are formatted vectorised.

Alerts are the bulk of the output on an attack-heavy stream (80% of KDD ``corrected``), so they are
serialised from a per-batch template: what is the same for the whole batch (stream, detector,
version, threshold, detection time) is encoded once, and each alert fills in its own fields. The
result is the JSON that ``stream.messages.Alert`` describes (a unit test decodes every alert with
that struct), without building the struct, its source and five contribution objects per alert.

Every output fits in one Kafka message: inputs with oversized keys or labels are rejected while
decoding, score records are split by size, and a dead letter whose original value is too large
keeps a bounded prefix plus the original size and sha256 (``original.size``, ``original.sha256``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from consumers.decoding import Rejected
from models.features import RecordsRaw, encoder_schema
from models.scoring import BatchScores, ScoringModel
from stream.errors import ConfigurationError
from stream.kafka import Headers, header
from stream.messages import DeadLetterHeaders, ScoreRecord, encode

SCORE_RECORD_MAX_EVENTS = 5000  # keeps one record well under the broker's 1 MB message limit
# The largest message anomstream writes: under librdkafka's default message.max.bytes (1,000,000)
# and the broker's default max.message.bytes (1,048,588), with room for the record's own overhead.
MAX_OUTPUT_BYTES = 900_000
SCORE_RECORD_MAX_BYTES = 512_000
# What a dead letter keeps of a value (or key, or headers) too large to copy whole.
DEAD_LETTER_PREFIX_BYTES = 64 * 1024
DEAD_LETTER_MAX_HEADER_BYTES = 64 * 1024

_json = msgspec.json.encode


def alert_id(topic: str, partition: int, offset: int) -> str:
    """Deterministic id: a retried batch re-publishes the same alert under the same id.

    >>> alert_id("kdd.connections", 0, 42) == alert_id("kdd.connections", 0, 42)
    True
    """
    return hashlib.blake2b(f"{topic}/{partition}/{offset}".encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class BatchMeta:
    """Where each message of a batch came from, extracted once for every output that needs it."""

    topics: list[str]
    partitions: list[int]
    offsets: list[int]
    keys: list[bytes | None]
    labels: list[str | None]
    event_times: list[str | None]

    @classmethod
    def of(
        cls,
        messages: list[Message],
        event_times: list[str | None] | None = None,
        labels: list[str | None] | None = None,
        keys: list[bytes | None] | None = None,
    ) -> BatchMeta:
        """``event_times`` from the decoded records (a sensor window's ``end``), else the Kafka
        timestamps; ``labels`` and ``keys`` when the decoder already read them."""
        if labels is None:
            labels = []
            for message in messages:
                value = header(message, "label")
                labels.append(value.decode("utf-8", "replace") if value is not None else None)
        return cls(
            topics=[m.topic() for m in messages],
            partitions=[m.partition() for m in messages],
            offsets=[m.offset() for m in messages],
            keys=[m.key() for m in messages] if keys is None else keys,
            labels=labels,
            event_times=_iso_times(messages) if event_times is None else event_times,
        )


def _iso_times(messages: list[Message]) -> list[str | None]:
    stamps = [m.timestamp() for m in messages]
    millis = np.array(
        [ms if kind != TIMESTAMP_NOT_AVAILABLE and ms >= 0 else 0 for kind, ms in stamps], "int64"
    )
    text = np.datetime_as_string(millis.astype("datetime64[ms]"), unit="ms", timezone="UTC").tolist()
    return [
        t if kind != TIMESTAMP_NOT_AVAILABLE and ms >= 0 else None
        for t, (kind, ms) in zip(text, stamps, strict=True)
    ]


def _alert_template(model: ScoringModel, topic: str, detected_at: str, k: int) -> bytes:
    """The alert JSON with the batch's constants filled in and a ``%`` slot for each per-alert field
    (``k`` top features)."""

    def const(value: object) -> bytes:
        return _json(value).replace(b"%", b"%%")

    features = b",".join([b'{"name":%s,"contribution":%s}'] * k)
    threshold = float(model.threshold.threshold_)
    return b"".join(
        [
            b'{"alert_id":"%s","stream":', const(model.stream),
            b',"event_id":%s,"source":{"topic":', const(topic),
            b',"partition":%d,"offset":%d,"key":%s},"event_time":%s,"detected_at":', const(detected_at),
            b',"detector":', const(model.detector_name),
            b',"model_version":', const(int(model.version)),
            b',"score":%s,"threshold":', const(threshold),
            b',"severity":"%s","top_features":[', features, b'],"label":%s}',
        ]
    )  # fmt: skip


def _number_rows(rows: np.ndarray) -> list[list[bytes]]:
    """Each row of a float matrix as JSON numbers, encoded in ONE msgspec call for the whole batch
    (its float formatting is several times faster than ``repr``; NaN and infinity become null)."""
    if rows.shape[0] == 0:
        return []
    text = _json(rows.tolist())[2:-2]  # '[[a,b],[c,d]]' -> 'a,b],[c,d': numbers hold no brackets
    return [row.split(b",") for row in text.split(b"],[")]


def build_alerts(
    model: ScoringModel,
    meta: BatchMeta,
    scored: BatchScores,
    detected_at: str,
    fields: list[dict[str, str]] | None = None,
) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, JSON value) of each alert, keyed by the source event's key; ``fields``: per alert row, the
    values of the fields its dataset schema groups incidents by (:func:`group_fields`)."""
    if fields is not None:
        for (key, value), shared in zip(build_alerts(model, meta, scored, detected_at), fields, strict=True):
            yield key, value[:-1] + b',"fields":' + _json(shared) + b"}"
        return
    rows = scored.alert_rows.tolist()
    if not rows:
        return
    k = scored.top_index.shape[1]
    names = [_json(n) for n in scored.feature_names]
    numbers = _number_rows(
        np.column_stack([scored.scores[scored.alert_rows], scored.top_values]).astype(np.float64)
    )
    label_json: dict[str | None, bytes] = {None: b"null"}
    templates: dict[str, bytes] = {}
    for row, severity, top, values in zip(
        rows, scored.severities, scored.top_index.tolist(), numbers, strict=True
    ):
        topic, partition, offset = meta.topics[row], meta.partitions[row], meta.offsets[row]
        template = templates.get(topic)
        if template is None:
            template = templates[topic] = _alert_template(model, topic, detected_at, k)
        key = meta.keys[row]
        key_json = _json(key.decode("utf-8", "replace")) if key else b"null"
        event_id = key_json if key else _json(f"{topic}-{partition}-{offset}")
        label = meta.labels[row]
        label_bytes = label_json.get(label)
        if label_bytes is None:
            label_bytes = label_json[label] = _json(label)
        event_time = meta.event_times[row]
        features: list[bytes] = []
        for f, number in zip(top, values[1:], strict=True):
            features += (names[f], number)
        value = template % (
            alert_id(topic, partition, offset).encode(),
            event_id,
            partition,
            offset,
            key_json,
            _json(event_time) if event_time is not None else b"null",
            values[0],
            severity.encode(),
            *features,
            label_bytes,
        )
        yield key, value


def group_fields(model: ScoringModel, raw: Any, rows: list[int]) -> list[dict[str, str]] | None:
    """The values of the fields the model's dataset schema groups incidents by (``[incidents]
    group_by``: feature columns) for the alerting ``rows`` of a decoded batch; None when it names none.
    Only alert rows are read, so a stream without ``group_by`` (KDD) pays nothing."""
    schema = encoder_schema(model.encoder)
    group_by = schema.incidents.group_by if schema is not None and schema.incidents is not None else []
    if not group_by or not isinstance(raw, RecordsRaw):
        return None
    features = schema.features  # type: ignore[union-attr]
    columns: list[tuple[str, Any]] = []
    for name in group_by:
        if name in features.categorical:
            columns.append((name, raw.symbols[:, features.categorical.index(name)]))
        elif name in features.numeric:
            columns.append((name, raw.numeric[:, features.numeric.index(name)]))
        else:
            raise ConfigurationError(
                f"[incidents] group_by names {name!r}, which is no feature column of schema {schema.name!r}"  # type: ignore[union-attr]
            )
    return [{name: _text(values[row]) for name, values in columns} for row in rows]


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a port read as 22.0 groups as "22"
    return str(value)[:256]


def build_score_records(
    model: ScoringModel, meta: BatchMeta, scored: BatchScores
) -> Iterator[tuple[bytes, bytes]]:
    """One record per source partition of the batch, split only beyond SCORE_RECORD_MAX_EVENTS
    events or SCORE_RECORD_MAX_BYTES of labels and event times."""
    rows_by_partition: dict[tuple[str, int], list[int]] = defaultdict(list)
    for row, source in enumerate(zip(meta.topics, meta.partitions, strict=True)):
        rows_by_partition[source].append(row)
    scores, flags = scored.scores.tolist(), scored.is_alert.tolist()
    for (topic, partition), rows in rows_by_partition.items():
        for chunk in _chunks(meta, rows):
            record = ScoreRecord(
                stream=model.stream,
                detector=model.detector_name,
                model_version=model.version,
                topic=topic,
                partition=partition,
                offsets=[meta.offsets[r] for r in chunk],
                scores=[scores[r] for r in chunk],
                is_alert=[flags[r] for r in chunk],
                labels=[meta.labels[r] for r in chunk],
                event_times=[meta.event_times[r] for r in chunk],
            )
            yield f"{topic}:{partition}".encode(), encode(record)


def _chunks(meta: BatchMeta, rows: list[int]) -> Iterator[list[int]]:
    # ~60 bytes per event for offset, score and flag, plus its label and event time.
    size = np.fromiter(
        (64 + len(meta.labels[r] or "") + len(meta.event_times[r] or "") for r in rows), np.int64, len(rows)
    )
    start = 0
    while start < len(rows):
        fits = int(np.searchsorted(np.cumsum(size[start:]), SCORE_RECORD_MAX_BYTES, side="right"))
        stop = start + max(1, min(fits, SCORE_RECORD_MAX_EVENTS))
        yield rows[start:stop]
        start = stop


def _bounded(
    value: bytes | None, key: bytes | None, headers: Headers
) -> tuple[bytes | None, bytes | None, Headers, int | None, str | None]:
    """Value, key and headers cut down to fit one message; the original value's size and sha256
    when it had to be cut (else None, None)."""
    size = len(value or b"") + len(key or b"") + sum(len(k) + len(v or b"") for k, v in headers)
    if size <= MAX_OUTPUT_BYTES - DEAD_LETTER_MAX_HEADER_BYTES:
        return value, key, headers, None, None
    original_size = original_sha = None
    if value is not None and len(value) > DEAD_LETTER_PREFIX_BYTES:
        original_size, original_sha = len(value), hashlib.sha256(value).hexdigest()
        value = value[:DEAD_LETTER_PREFIX_BYTES]
    if key is not None and len(key) > DEAD_LETTER_PREFIX_BYTES:
        key = key[:DEAD_LETTER_PREFIX_BYTES]
    kept: Headers = []
    room = DEAD_LETTER_MAX_HEADER_BYTES
    for name, data in headers:
        room -= len(name) + len(data or b"")
        if room < 0:
            break
        kept.append((name, data))
    return value, key, kept, original_size, original_sha


def dead_letter(rejected: Rejected, worker_id: str) -> tuple[bytes | None, bytes | None, Headers]:
    """(key, value, headers) of a rejected input's dead letter: its bytes untouched when they fit in
    one message, else a bounded prefix with the original size and sha256 in the headers."""
    message = rejected.message
    value, key, kept, size, sha = _bounded(message.value(), message.key(), list(message.headers() or []))
    why = DeadLetterHeaders(
        error_type=rejected.error_type,  # type: ignore[arg-type]
        error_message=rejected.error,
        source_topic=message.topic(),
        source_partition=message.partition(),
        source_offset=message.offset(),
        worker=worker_id,
        original_size=size,
        original_sha256=sha,
    )
    return key, value, [*kept, *why.headers()]


def dead_letter_headers(rejected: Rejected, worker_id: str) -> Headers:
    """The original headers plus where the message came from and why it was rejected."""
    return dead_letter(rejected, worker_id)[2]


def undeliverable(
    output_topic: str,
    key: bytes | None,
    value: bytes | None,
    source: Message,
    error_type: str,
    error: str,
    worker_id: str,
) -> tuple[bytes | None, bytes | None, Headers]:
    """(key, value, headers) of the dead letter that stands in for an output the broker refused for
    good: a bounded prefix of the output, where it was meant to go, and why it could not go there."""
    original_size = len(value or b"")
    prefix = None if value is None else value[:DEAD_LETTER_PREFIX_BYTES]
    why = DeadLetterHeaders(
        error_type=error_type,  # type: ignore[arg-type]
        error_message=error,
        source_topic=source.topic(),
        source_partition=source.partition(),
        source_offset=source.offset(),
        worker=worker_id,
        output_topic=output_topic,
        original_size=original_size,
        original_sha256=hashlib.sha256(value or b"").hexdigest(),
    )
    return (key or b"")[:DEAD_LETTER_PREFIX_BYTES] or None, prefix, why.headers()
