"""Reading messages: vetting what ``consume()`` returns, headers, and reading topics back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from stream.kafka.clients import make_reader
from stream.kafka.topics import TopicMissingError, partitions_of, watermarks
from stream.kafka.watchdog import close_quietly
from stream.settings import Settings
from stream.signals import StopFlag

log = logging.getLogger(__name__)


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


def follow_from_end(settings: Settings, topic: str) -> Consumer | None:
    """A reader of every partition of ``topic`` from its current end (what is published from now
    on); None when the topic does not exist. Other failures (authentication, an unreachable broker)
    raise: they are not "the topic is missing"."""
    reader = make_reader(settings)
    try:
        partitions = partitions_of(reader, topic)
    except TopicMissingError:
        reader.close()
        return None
    except BaseException:
        reader.close()
        raise
    reader.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
    return reader


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
    consumer = make_reader(settings)
    try:
        partitions = partitions_of(consumer, topic)
        marks = {p: watermarks(consumer, topic, p) for p in partitions}
        # Resolve "the end" now, not at the first fetch, so nothing produced after this call is missed.
        starts = {p: OFFSET_BEGINNING if from_beginning else marks[p][1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
        if on_ready is not None:
            on_ready()
        pending = {p for p in partitions if from_beginning and marks[p][1] > marks[p][0]}
        deadline = time.monotonic() + timeout
        while not (stop is not None and stop):
            if not follow and (not pending or time.monotonic() > deadline):
                return
            for message in consumer.consume(batch, 0.2):
                if check_message(message):
                    yield message
            if not follow and pending:
                positions = consumer.position([TopicPartition(topic, p) for p in pending])
                pending -= {tp.partition for tp in positions if tp.offset >= marks[tp.partition][1]}
    finally:
        close_quietly(consumer, f"a reader of {topic}")


def read_all(settings: Settings, topic: str, timeout: float = 60.0) -> list[Message]:
    """Every message of ``topic`` up to its end offsets at the time of the call."""
    return list(iter_topic(settings, topic, timeout=timeout))


def read_ranges(
    settings: Settings,
    topic: str,
    ranges: dict[int, tuple[int, int]],
    timeout: float = 60.0,
    batch: int = 5000,
) -> list[Message]:
    """The messages of ``topic`` at offsets ``[start, end)`` of each partition (no group, no commits),
    partition by partition in offset order. Stops at ``timeout``: what was read is returned (a
    compacted or transactional topic may hold fewer messages than offsets).
    """
    wanted = {p: (start, end) for p, (start, end) in ranges.items() if end > start}
    if not wanted:
        return []
    consumer = make_reader(settings)
    got: dict[int, list[Message]] = {p: [] for p in wanted}
    try:
        consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in wanted.items()])
        pending = set(wanted)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(batch, 0.2):
                if not check_message(message):
                    continue
                p, offset = message.partition(), message.offset()
                if p in pending and offset < wanted[p][1]:
                    got[p].append(message)
            positions = consumer.position([TopicPartition(topic, p) for p in pending])
            pending -= {tp.partition for tp in positions if tp.offset >= wanted[tp.partition][1]}
    finally:
        close_quietly(consumer, f"a reader of {topic}")
    return [m for p in sorted(got) for m in got[p]]
