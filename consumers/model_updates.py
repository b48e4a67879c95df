"""Announce registry promotions on the model-updates topic, so running workers hot-reload."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from stream.kafka import BrokerUnavailableError, flush_or_raise, make_producer, produce, wait_for_broker
from stream.schemas import ModelUpdate
from stream.settings import Settings


def announce_promotion(
    settings: Settings, stream: str, detector: str, version: int, console: Console
) -> bool:
    """Publish a ModelUpdate; returns False (and says so) when no broker is reachable."""
    console.print(f"production model of {stream}: {detector} v{version}")
    try:
        wait_for_broker(settings, timeout=5)
    except BrokerUnavailableError:
        console.print("no broker reachable: workers pick the new model up when they next start")
        return False
    update = ModelUpdate(stream=stream, detector=detector, version=version, promoted_at=datetime.now(UTC))
    producer = make_producer(settings)
    produce(producer, settings.topic("model_updates"), update.model_dump_json().encode(), stream.encode())
    flush_or_raise(producer, 30)
    console.print(f"announced on {settings.topic('model_updates')}: running workers reload it")
    return True
