"""What a scored batch turns into: alerts, score records and dead letters (:mod:`stream.messages`).

Per-message metadata (ids, labels, event times) is extracted once per batch into :class:`BatchMeta`
and shared by the alert and score-record builders; event times are formatted vectorised.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from consumers.decoding import Rejected
from models.scoring import BatchScores, ScoringModel
from stream.kafka import Headers, header
from stream.messages import Alert, DeadLetterHeaders, ScoreRecord, SourceRef, encode

SCORE_RECORD_MAX_EVENTS = 5000  # keeps one record well under the broker's 1 MB message limit


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
    def of(cls, messages: list[Message], event_times: list[str | None] | None = None) -> BatchMeta:
        """``event_times`` from the decoded records (a sensor window's ``end``), else the Kafka timestamps."""
        labels = []
        for message in messages:
            value = header(message, "label")
            labels.append(value.decode("utf-8", "replace") if value is not None else None)
        return cls(
            topics=[m.topic() for m in messages],
            partitions=[m.partition() for m in messages],
            offsets=[m.offset() for m in messages],
            keys=[m.key() for m in messages],
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


def _event_id(meta: BatchMeta, row: int) -> str:
    key = meta.keys[row]
    return (
        key.decode("utf-8", "replace")
        if key
        else f"{meta.topics[row]}-{meta.partitions[row]}-{meta.offsets[row]}"
    )


def build_alerts(
    model: ScoringModel, meta: BatchMeta, scored: BatchScores, detected_at: str
) -> Iterator[tuple[bytes | None, bytes]]:
    """(key, JSON value) of each alert, keyed by the source event's key."""
    threshold = float(model.threshold.threshold_)
    scores = scored.scores
    for row, severity, top in zip(
        scored.alert_rows.tolist(), scored.severities, scored.top_features, strict=True
    ):
        key = meta.keys[row]
        topic, partition, offset = meta.topics[row], meta.partitions[row], meta.offsets[row]
        alert = Alert(
            alert_id=alert_id(topic, partition, offset),
            stream=model.stream,
            event_id=_event_id(meta, row),
            source=SourceRef(topic, partition, offset, key.decode("utf-8", "replace") if key else None),
            event_time=meta.event_times[row],
            detected_at=detected_at,
            detector=model.detector_name,
            model_version=model.version,
            score=float(scores[row]),
            threshold=threshold,
            severity=severity,  # type: ignore[arg-type]
            top_features=top,
            label=meta.labels[row],
        )
        yield key, encode(alert)


def build_score_records(
    model: ScoringModel, meta: BatchMeta, scored: BatchScores
) -> Iterator[tuple[bytes, bytes]]:
    """One record per source partition of the batch (split only beyond SCORE_RECORD_MAX_EVENTS)."""
    rows_by_partition: dict[tuple[str, int], list[int]] = defaultdict(list)
    for row, source in enumerate(zip(meta.topics, meta.partitions, strict=True)):
        rows_by_partition[source].append(row)
    scores, flags = scored.scores.tolist(), scored.is_alert.tolist()
    for (topic, partition), rows in rows_by_partition.items():
        for start in range(0, len(rows), SCORE_RECORD_MAX_EVENTS):
            chunk = rows[start : start + SCORE_RECORD_MAX_EVENTS]
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


def dead_letter_headers(rejected: Rejected, worker_id: str) -> Headers:
    """The original headers plus where the message came from and why it was rejected."""
    message = rejected.message
    why = DeadLetterHeaders(
        error_type=rejected.error_type,  # type: ignore[arg-type]
        error_message=rejected.error,
        source_topic=message.topic(),
        source_partition=message.partition(),
        source_offset=message.offset(),
        worker=worker_id,
    )
    return [*(message.headers() or []), *why.headers()]
