"""Every Kafka client anomstream creates comes from here, configured from Settings.

* :func:`make_producer`: idempotent (acks=all, ordered retries); transactional when given an id.
* :func:`make_consumer`: a consumer-group member that never commits on its own.
* :func:`make_reader`: no group membership, no commits: reads topics back by assignment.
* :func:`make_admin`: topic administration.

Secrets reach the client configuration only, never a log line; librdkafka's own log lines go through
Python logging.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from stream.settings import Settings, redact

log = logging.getLogger(__name__)
# librdkafka's own log lines (broker connection trouble, retries) go through Python logging.
rdkafka_log = logging.getLogger("librdkafka")


class _TransientStartupNoise(logging.Filter):
    """Drop retries librdkafka logs while a fresh broker loads its coordinators (it retries itself)."""

    BENIGN = ("Coordinator load in progress", "Not coordinator", "Broker handle destroyed")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.BENIGN)


rdkafka_log.addFilter(_TransientStartupNoise())


def _error_cb(error: KafkaError) -> None:
    # librdkafka reports transient broker trouble here and retries by itself; fatal errors are
    # raised from the next call on the client, so logging is the right response.
    level = logging.ERROR if error.fatal() else logging.WARNING
    log.log(level, "kafka client: %s", error)


def _client_config(settings: Settings, defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    config = settings.kafka_config(**{"error_cb": _error_cb, "logger": rdkafka_log, **defaults})
    config.update(overrides)
    return config


def make_producer(settings: Settings, transactional_id: str | None = None, **overrides: Any) -> Producer:
    """An idempotent producer (acks=all, ordered retries); transactional when given an id."""
    defaults: dict[str, Any] = {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 10,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
    }
    if transactional_id:
        defaults["transactional.id"] = transactional_id
    config = _client_config(settings, defaults, overrides)
    log.debug("producer config %s", redact(config))
    return Producer(config)


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer-group member that never commits on its own: callers commit after their outputs
    are delivered. Only committed transactions are visible (read_committed)."""
    defaults = {
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        # Scaling replicas moves only the partitions that must move.
        "partition.assignment.strategy": "cooperative-sticky",
    }
    config = _client_config(settings, defaults, overrides)
    log.debug("consumer config %s", redact(config))
    return Consumer(config)


def make_reader(settings: Settings, **overrides: Any) -> Consumer:
    """A consumer for ``assign()`` only: it joins no group and commits nothing (librdkafka still
    wants a group id). Reads committed transactions only."""
    defaults = {
        "group.id": "anomstream-reader",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
    }
    return Consumer(_client_config(settings, defaults, overrides))


def make_admin(settings: Settings) -> AdminClient:
    return AdminClient(_client_config(settings, {}, {}))
