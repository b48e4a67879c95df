"""Topic administration and cluster questions: is a broker there, create topics, partitions, offsets."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream.errors import AnomstreamError
from stream.kafka.clients import make_admin, make_reader
from stream.kafka.watchdog import guarded
from stream.settings import Settings


class BrokerUnavailableError(AnomstreamError, RuntimeError):
    """No Kafka broker answered at the configured bootstrap address."""


class TopicMissingError(AnomstreamError, LookupError):
    """A topic anomstream needs does not exist in the cluster."""

    def __init__(self, topic: str) -> None:
        super().__init__(
            f"topic {topic} does not exist: create the topics with `anomstream topics create` (add "
            "--schema S for a dataset schema's topic)"
        )
        self.topic = topic


def wait_for_broker(settings: Settings, timeout: float = 30.0) -> None:
    """Block until the cluster answers a metadata request, or raise with what to do."""
    admin = make_admin(settings)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            wait = min(5.0, max(0.5, deadline - time.monotonic()))
            guarded("list_topics", wait, admin.list_topics, timeout=wait)
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


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic configuration beyond the broker's defaults: the incidents and the incident stage's state
    are compacted (the latest message per key is the state). Their segments roll every 10 minutes, so
    the cleaner compacts them while they are written, not after the default week."""
    compacted = {"cleanup.policy": "compact", "segment.ms": "600000", "min.cleanable.dirty.ratio": "0.1"}
    return {settings.topic("incidents"): compacted, settings.topic("incidents_state"): compacted}


def create_topics(settings: Settings, partitions: int | None = None, topics: list[str] | None = None) -> dict:
    """Create anomstream's topics (existing ones are left alone); returns {topic: 'created'|'exists'}."""
    admin = make_admin(settings)
    names = topics or settings.all_topics()
    count = partitions or settings.topic_partitions
    configs = topic_configs(settings)
    futures = admin.create_topics(
        [NewTopic(name, count, settings.replication_factor, config=configs.get(name, {})) for name in names],
        operation_timeout=30,
    )
    status = {}
    for name, future in futures.items():
        try:
            future.result(timeout=60)  # the operation's own 30 s, and the request's
            status[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            status[name] = "exists"
    _wait_for_leaders(admin, names)
    return status


def topic_id(settings: Settings, topic: str, timeout: float = 15.0) -> str | None:
    """The cluster's id of ``topic`` (it changes when the topic is deleted and created again), or
    None when the broker cannot say (too old, unreachable, not authorised to describe)."""
    from confluent_kafka import TopicCollection

    admin = make_admin(settings)  # held until the answer came: a collected client cancels its requests
    try:
        future = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)[topic]
        return str(future.result(timeout=timeout).topic_id)
    except (KafkaException, TimeoutError, ValueError):
        return None


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float = 30.0) -> None:
    # A freshly created topic has no partition leader for a moment; producing then fails.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = guarded("list_topics", 10, admin.list_topics, timeout=10)
        ready = all(
            name in meta.topics
            and meta.topics[name].partitions
            and all(p.leader >= 0 for p in meta.topics[name].partitions.values())
            for name in names
        )
        if ready:
            return
        time.sleep(0.2)


def partitions_of(client: Consumer | AdminClient, topic: str) -> list[int]:
    """Partition ids of ``topic``.

    Raises TopicMissingError when it does not exist, and KafkaException for anything else (an
    unreachable broker, failed authentication, a denied topic): a missing topic is the only answer
    that "create the topics" fixes.
    """
    meta = guarded("list_topics", 10, client.list_topics, topic, timeout=10)
    found = meta.topics.get(topic)
    if found is None or (found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise TopicMissingError(topic)
    if found.error is not None:
        raise KafkaException(found.error)
    return sorted(found.partitions)


def watermarks(consumer: Consumer, topic: str, partition: int, timeout: float = 15.0) -> tuple[int, int]:
    """(low, high) offsets of a partition. A retriable error (a leader still moving right after the
    topic was created: NOT_LEADER_FOR_PARTITION) is retried until ``timeout``, not raised."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = guarded("get_watermark_offsets", 10, consumer.get_watermark_offsets,
                                TopicPartition(topic, partition), timeout=10)  # fmt: skip
            return int(low), int(high)
        except KafkaException as exc:
            if not exc.args[0].retriable() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """High watermark of every partition of ``topic``."""
    consumer = make_reader(settings)
    try:
        return {p: watermarks(consumer, topic, p)[1] for p in partitions_of(consumer, topic)}
    finally:
        consumer.close()
