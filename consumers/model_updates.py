"""The control channel: promotions and rollbacks announced on ``model-updates``.

A model update is a notification. The registry's production alias is the truth; workers that read an
update reload what the alias says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from models.model_id import ModelId
from models.registry import ANY, Unchecked, open_registry
from stream.kafka import BrokerUnavailableError, flush_or_raise, make_producer, produce, wait_for_broker
from stream.messages import ModelUpdate, encode
from stream.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Promotion:
    """What a promotion or rollback did: the new production model, and whether workers were told."""

    update: ModelUpdate
    announced: bool


def announce(settings: Settings, update: ModelUpdate) -> bool:
    """Publish ``update`` on ``model-updates``; False (logged) when no broker is reachable."""
    try:
        wait_for_broker(settings, timeout=5)
    except BrokerUnavailableError:
        log.warning("no broker reachable: workers pick the new model up when they next start")
        return False
    producer = make_producer(settings)
    produce(producer, settings.topic("model_updates"), encode(update), update.stream.encode())
    flush_or_raise(producer, 30)
    return True


def promote(
    settings: Settings,
    stream: str,
    detector: str,
    version: int,
    reason: str = "manual",
    expected: ModelId | None | Unchecked = ANY,
) -> Promotion:
    """Make ``detector`` v``version`` the stream's production model and tell running workers.

    The registry verifies the version's checksums before it switches: a tampered or incomplete
    version raises :class:`~models.registry.RegistryIntegrityError` and production stays as it was.
    ``reason`` is ``manual``, ``drift:<event_id>`` (a retrain that passed its shadow evaluation) or
    ``rollback``; it is recorded in the alias and in the announcement. ``expected``: the production
    model the caller decided on (None: none); if production is anything else when the alias is
    swapped, :class:`~models.registry.RegistryConflictError` and nothing is switched or announced.
    """
    open_registry(settings).promote(stream, detector, version, reason=reason, expected=expected)
    update = ModelUpdate(stream, detector, version, datetime.now(UTC).isoformat(), reason=reason)
    return Promotion(update, announce(settings, update))


def rollback(settings: Settings, stream: str) -> Promotion:
    """Return the stream to its previous production model (verified first) and tell running workers.
    The version rolled back from becomes ``rejected``."""
    alias = open_registry(settings).rollback(stream)
    now = datetime.now(UTC).isoformat()
    update = ModelUpdate(stream, alias.detector, alias.version, now, reason="rollback")
    return Promotion(update, announce(settings, update))
