"""Drift events as published on ``drift-events`` (:class:`stream.messages.DriftEvent`)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from models.drift import WatchEvent
from models.model_id import ModelId
from stream.messages import ChangePoint, DriftEvent


def drift_event_id(stream: str, model: ModelId, instance: str, event: WatchEvent) -> str:
    """Deterministic: re-detecting the same change after a restart republishes the same id.

    >>> from models.drift import WatchEvent
    >>> e = WatchEvent("adwin", 1200, 1000, 0.2, 0.1)
    >>> model = ModelId("ae", 3)
    >>> drift_event_id("kdd", model, "host-a", e) == drift_event_id("kdd", model, "host-a", e)
    True
    """
    text = f"{stream}/{model.detector}/{model.version}/{instance}/{event.detector}/{event.position}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def build_drift_event(
    stream: str,
    model: ModelId,
    instance: str,
    event: WatchEvent,
    topic: str,
    partition_offsets: dict[str, int],
    event_time: str | None,
    detected_offsets: dict[str, int] | None = None,
) -> DriftEvent:
    return DriftEvent(
        event_id=drift_event_id(stream, model, instance, event),
        stream=stream,
        model_version=model.version,
        detector=event.detector,
        statistic=float(event.statistic),
        threshold=float(event.threshold),
        change=ChangePoint(topic, partition_offsets, event_time, detected_offsets),
        detected_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )
