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
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from stream.errors import ConfigurationError
from stream.kafka.logs import client_error_cb, rdkafka_log
from stream.settings import Settings, redact

T = TypeVar("T")

log = logging.getLogger(__name__)


def _client_config(settings: Settings, defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    config = settings.kafka_config(**{"error_cb": client_error_cb, "logger": rdkafka_log, **defaults})
    config.update(overrides)
    return config


def _checked(make: Callable[[dict[str, Any]], T], config: dict[str, Any]) -> T:
    """Build a client; a property librdkafka rejects becomes one ConfigurationError naming its variable."""
    try:
        return make(config)
    except KafkaException as exc:
        error = exc.args[0]
        if error.code() == KafkaError._INVALID_ARG:
            raise ConfigurationError(
                f"Kafka client configuration rejected: {error.str()} "
                "(check the ANOMSTREAM_KAFKA__* variables: ANOMSTREAM_KAFKA__LINGER_MS sets linger.ms)"
            ) from None
        raise


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
    return _checked(Producer, config)


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
    return _checked(Consumer, config)


def make_reader(settings: Settings, **overrides: Any) -> Consumer:
    """A consumer for ``assign()`` only: it joins no group and commits nothing (librdkafka still
    wants a group id). Reads committed transactions only."""
    defaults = {
        "group.id": "anomstream-reader",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
    }
    return _checked(Consumer, _client_config(settings, defaults, overrides))


def make_admin(settings: Settings) -> AdminClient:
    return _checked(AdminClient, _client_config(settings, {}, {}))
