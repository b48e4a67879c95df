"""Kafka plumbing shared by producers, workers, the drift monitor and the CLI.

Every consume and produce loop of anomstream goes through this module:

* :func:`make_producer` / :func:`make_consumer`: librdkafka configuration from Settings, secrets
  passed to the client only, offsets never auto-committed.
* :class:`DeliveryTracker`: counts delivery reports, so a batch's offsets are committed only after
  every output it produced is acknowledged.
* :func:`produce`: produce with back-pressure (``BufferError`` -> serve callbacks, retry).
* :class:`StopFlag`: SIGTERM / SIGINT mapped to "finish the batch, commit, exit".
* :func:`create_topics`, :func:`read_all`: admin and read-back helpers.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

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

Headers = list[tuple[str, bytes]]


class BrokerUnavailableError(RuntimeError):
    """No Kafka broker answered at the configured bootstrap address."""


def _error_cb(error: KafkaError) -> None:
    # librdkafka reports transient broker trouble here and retries by itself; fatal errors are
    # raised from the next call on the client, so logging is the right response.
    level = logging.ERROR if error.fatal() else logging.WARNING
    log.log(level, "kafka client: %s", error)


def make_producer(settings: Settings, transactional_id: str | None = None, **overrides: Any) -> Producer:
    """An idempotent producer (acks=all, ordered retries); transactional when given an id."""
    config = settings.kafka_config(
        **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 10,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "error_cb": _error_cb,
            "logger": rdkafka_log,
        }
    )
    if transactional_id:
        config["transactional.id"] = transactional_id
    config.update(overrides)
    log.debug("producer config %s", redact(config))
    return Producer(config)


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer that never commits on its own: callers commit after their outputs are delivered."""
    config = settings.kafka_config(
        **{
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # Only committed transactions are visible, so an aborted batch never reaches a reader.
            "isolation.level": "read_committed",
            # Scaling replicas moves only the partitions that must move.
            "partition.assignment.strategy": "cooperative-sticky",
            "error_cb": _error_cb,
            "logger": rdkafka_log,
        }
    )
    config.update(overrides)
    log.debug("consumer config %s", redact(config))
    return Consumer(config)


@dataclass
class DeliveryTracker:
    """Delivery-report callback that counts successes and keeps the first failure."""

    delivered: int = 0
    failed: int = 0
    first_error: KafkaError | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            if error is None:
                self.delivered += 1
            else:
                self.failed += 1
                if self.first_error is None:
                    self.first_error = error
                log.error("delivery to %s failed: %s", message.topic(), error)

    def reset(self) -> None:
        with self._lock:
            self.delivered = self.failed = 0
            self.first_error = None


def produce(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | str | None = None,
    headers: Headers | None = None,
    on_delivery: Any = None,
    timestamp: int = 0,
) -> None:
    """Produce one message, waiting for room when the local queue is full instead of failing."""
    while True:
        try:
            producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery, timestamp=timestamp)
            return
        except BufferError:
            producer.poll(0.05)


def flush_or_raise(producer: Producer, timeout: float = 60.0) -> None:
    remaining = producer.flush(timeout)
    if remaining:
        raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, f"{remaining} messages not delivered"))


class StopFlag:
    """Set by SIGTERM or SIGINT (or by calling ``set``); loops check it between batches."""

    def __init__(self, install: bool = True) -> None:
        self._event = threading.Event()
        self.signal: int | None = None
        if install and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means "now"
        self.signal = signum
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


def check_message(message: Message) -> bool:
    """True for a data message; False for an end-of-partition event; raises on a real error."""
    error = message.error()
    if error is None:
        return True
    if error.code() == KafkaError._PARTITION_EOF:
        return False
    if error.fatal() or not error.retriable():
        raise KafkaException(error)
    log.warning("consume error on %s [%s]: %s", message.topic(), message.partition(), error)
    return False


def header(message: Message, name: str) -> bytes | None:
    for key, value in message.headers() or ():
        if key == name:
            return value
    return None


def wait_for_broker(settings: Settings, timeout: float = 30.0) -> None:
    """Block until the cluster answers a metadata request, or raise with what to do."""
    admin = AdminClient(settings.kafka_config())
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            last = exc
            time.sleep(0.5)
    hint = (
        "start one with `anomstream broker start`"
        if settings.embedded_broker
        else "check ANOMSTREAM_BOOTSTRAP_SERVERS and the ANOMSTREAM_KAFKA__* security settings"
    )
    raise BrokerUnavailableError(f"no Kafka broker answered at {settings.bootstrap} ({last}): {hint}")


def create_topics(settings: Settings, partitions: int | None = None, topics: list[str] | None = None) -> dict:
    """Create anomstream's topics (existing ones are left alone); returns {topic: 'created'|'exists'}."""
    admin = AdminClient(settings.kafka_config())
    names = topics or settings.all_topics()
    count = partitions or settings.topic_partitions
    futures = admin.create_topics(
        [NewTopic(name, count, settings.replication_factor) for name in names], operation_timeout=30
    )
    status = {}
    for name, future in futures.items():
        try:
            future.result()
            status[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            status[name] = "exists"
    _wait_for_leaders(admin, names)
    return status


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float = 30.0) -> None:
    # A freshly created topic has no partition leader for a moment; producing then fails.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=10)
        ready = all(
            name in meta.topics
            and meta.topics[name].partitions
            and all(p.leader >= 0 for p in meta.topics[name].partitions.values())
            for name in names
        )
        if ready:
            return
        time.sleep(0.2)


def partitions_of(client: Consumer, topic: str) -> list[int]:
    """Partition ids of ``topic``; raises KafkaException when it does not exist."""
    meta = client.list_topics(topic, timeout=10)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        error = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"topic {topic} does not exist")
        raise KafkaException(error)
    return sorted(meta.topics[topic].partitions)


def _high_watermark(consumer: Consumer, topic: str, partition: int) -> int:
    return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1])


def _low_watermark(consumer: Consumer, topic: str, partition: int) -> int:
    return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[0])


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """High watermark of every partition of ``topic``."""
    consumer = Consumer(settings.kafka_config(**{"group.id": "anomstream-offsets"}))
    try:
        return {p: _high_watermark(consumer, topic, p) for p in partitions_of(consumer, topic)}
    finally:
        consumer.close()


def iter_topic(
    settings: Settings,
    topic: str,
    from_beginning: bool = True,
    follow: bool = False,
    stop: StopFlag | None = None,
    batch: int = 1000,
    on_ready: Callable[[], None] | None = None,
    timeout: float = 60.0,
) -> Iterator[Message]:
    """Read ``topic`` without a consumer group (no commits), from the beginning or from the end.

    ``follow=False`` reads up to the end offsets as they are when called, then returns (a live topic
    never goes idle, so "until idle" would never end); ``timeout`` bounds it, e.g. when an open
    transaction holds the read_committed position back. ``follow=True`` reads until ``stop``.
    ``on_ready`` is called once the reader holds its start positions (so "from the end" is defined).
    """
    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": "anomstream-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "error_cb": _error_cb,
                "logger": rdkafka_log,
            }
        )
    )
    try:
        partitions = partitions_of(consumer, topic)
        ends = {p: _high_watermark(consumer, topic, p) for p in partitions}
        # Resolve "the end" now, not at the first fetch, so nothing produced after this call is missed.
        starts = {p: OFFSET_BEGINNING if from_beginning else ends[p] for p in partitions}
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
        if on_ready is not None:
            on_ready()
        pending = {p for p in partitions if from_beginning and ends[p] > _low_watermark(consumer, topic, p)}
        deadline = time.monotonic() + timeout
        while not (stop is not None and stop):
            if not follow and (not pending or time.monotonic() > deadline):
                return
            for message in consumer.consume(batch, 0.2):
                if check_message(message):
                    yield message
            if not follow and pending:
                positions = consumer.position([TopicPartition(topic, p) for p in pending])
                pending -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
    finally:
        consumer.close()


def read_all(settings: Settings, topic: str, timeout: float = 60.0) -> list[Message]:
    """Every message of ``topic`` up to its end offsets at the time of the call."""
    return list(iter_topic(settings, topic, timeout=timeout))
