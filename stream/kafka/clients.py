"""Every Kafka client anomstream creates comes from here, configured from Settings.

* :func:`make_producer`: idempotent (acks=all, ordered retries); transactional when given an id.
* :func:`make_consumer`: a consumer-group member that never commits on its own.
* :func:`make_reader`: no group membership, no commits: reads topics back by assignment.
* :func:`make_admin`: topic administration.

Secrets reach the client configuration only, never a log line; librdkafka's own log lines go through
Python logging.

Each client has two kinds of configuration. Tuning (:data:`PRODUCER_TUNING`, :data:`CONSUMER_TUNING`)
is a default that ``ANOMSTREAM_KAFKA__*`` properties override; what the delivery guarantees rest on
(idempotence, acks, manual commits, read_committed) is always set. The tuning, and why:

* producers: ``linger.ms`` 5 waits at most 5 ms to fill a request, so at everyday rates a message
  leaves almost at once, while under load requests fill up to ``batch.size`` (1 MB) and
  ``batch.num.messages`` anyway; the worker flushes each batch, which sends at once regardless of
  linger. ``lz4`` costs little CPU and shrinks JSON 3-5x on the wire. ``queue.buffering.max.kbytes``
  caps the local queue at 64 MB (librdkafka's default is 1 GB): a producer that outruns the broker
  waits instead of growing.
* consumers: librdkafka prefetches up to ``queued.min.messages`` per partition (default 100,000)
  within ``queued.max.messages.kbytes`` for the whole consumer queue (64 MB): that byte cap is what
  bounds a backlog's memory, and it is kept explicit here. 50,000 messages per partition keep the
  worker fed (measured on 200,000 KDD events: 10,000 per partition and 32 MB cut the worker from
  ~71k to ~52k events/s, a bare consumer from ~113k to ~82k); ``fetch.max.bytes`` (8 MB) keeps one
  fetch response well inside the cap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from stream.errors import ConfigurationError
from stream.kafka.logs import client_error_cb, rdkafka_log
from stream.kafka.watchdog import configure as configure_watchdog
from stream.settings import Settings, redact

T = TypeVar("T")

log = logging.getLogger(__name__)


PRODUCER_TUNING: dict[str, Any] = {
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.kbytes": 65_536,
}
CONSUMER_TUNING: dict[str, Any] = {
    "queued.min.messages": 50_000,
    "queued.max.messages.kbytes": 65_536,
    "fetch.max.bytes": 8 * 1024 * 1024,
}


def _client_config(
    settings: Settings, tuning: dict[str, Any], required: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """tuning < ANOMSTREAM_KAFKA__* properties < what the guarantees need < the caller's overrides.

    The process's watchdog takes its margin from the same settings (:mod:`stream.kafka.watchdog`)."""
    configure_watchdog(settings.resilience.call_margin_s)
    config = {**tuning, **settings.kafka_config()}
    config.update({"error_cb": client_error_cb, "logger": rdkafka_log, **required})
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
    required: dict[str, Any] = {"enable.idempotence": True, "acks": "all"}
    if transactional_id:
        required["transactional.id"] = transactional_id
    config = _client_config(settings, PRODUCER_TUNING, required, overrides)
    log.debug("producer config %s", redact(config))
    return _checked(Producer, config)


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer-group member that never commits on its own: callers commit after their outputs
    are delivered. Only committed transactions are visible (read_committed)."""
    required = {
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        # Scaling replicas moves only the partitions that must move.
        "partition.assignment.strategy": "cooperative-sticky",
    }
    tuning = {**CONSUMER_TUNING, "auto.offset.reset": "earliest"}
    config = _client_config(settings, tuning, required, overrides)
    log.debug("consumer config %s", redact(config))
    return _checked(Consumer, config)


def make_reader(settings: Settings, **overrides: Any) -> Consumer:
    """A consumer for ``assign()`` only: it joins no group and commits nothing (librdkafka still
    wants a group id). Reads committed transactions only."""
    required = {
        "group.id": "anomstream-reader",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
    }
    return _checked(Consumer, _client_config(settings, CONSUMER_TUNING, required, overrides))


def make_admin(settings: Settings) -> AdminClient:
    return _checked(AdminClient, _client_config(settings, {}, {}, {}))
