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
    if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:  # a subscribed topic nobody created
        raise TopicMissingError(message.topic() or _topic_named_in(error.str()))
    if error.fatal() or not error.retriable():
        raise KafkaException(error)
    log.warning("consume error on %s [%s]: %s", message.topic(), message.partition(), error)
    return False


def _topic_named_in(text: str) -> str:
    """librdkafka's "Subscribed topic not available: NAME: Broker: ..." names the topic in its text."""
    _, _, rest = text.partition("not available: ")
    return rest.split(": ")[0] if rest else "(unnamed)"


def header(message: Message, name: str) -> bytes | None:
    for key, value in message.headers() or ():
        if key == name:
            return value
    return None


def follow_from_end(settings: Settings, topic: str) -> Consumer | None:
    """A reader of every partition of ``topic`` from its current end (what is published from now
    on); None when the topic does not exist. Other failures (authentication, an unreachable broker)
    raise: they are not "the topic is missing"."""
    return follow_from(settings, topic, OFFSET_END)


def follow_from(settings: Settings, topic: str, start: int = OFFSET_BEGINNING) -> Consumer | None:
    """A reader of every partition of ``topic`` from ``start`` (a logical offset: OFFSET_BEGINNING
    reads what is there, then what comes); None when the topic does not exist (see follow_from_end)."""
    reader = make_reader(settings)
    try:
        partitions = partitions_of(reader, topic)
    except TopicMissingError:
        reader.close()
        return None
    except BaseException:
        reader.close()
        raise
    reader.assign([TopicPartition(topic, p, start) for p in partitions])
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


def search_backwards(
    settings: Settings,
    topic: str,
    matches: Callable[[Message], bool],
    timeout: float = 30.0,
    first_chunk: int = 2000,
) -> Message | None:
    """The first message of ``topic`` found to match, searching every partition from its end
    backwards (no group, no commits): the newest ``first_chunk`` offsets of each partition, then the
    four times as many before them, and so on. Cheap when what is sought is recent; gives up at
    ``timeout`` (None, as when no message matches). Raises TopicMissingError for a missing topic.
    """
    reader = make_reader(settings, **{"enable.partition.eof": True})
    try:
        bounds = {p: watermarks(reader, topic, p) for p in partitions_of(reader, topic)}
        upper = {p: high for p, (_, high) in bounds.items()}
        chunk, deadline = first_chunk, time.monotonic() + timeout
        while time.monotonic() < deadline:
            ranges = {
                p: (max(bounds[p][0], end - chunk), end) for p, end in upper.items() if end > bounds[p][0]
            }
            if not ranges:
                return None
            reader.assign([TopicPartition(topic, p, start) for p, (start, _) in ranges.items()])
            pending = set(ranges)
            while pending and time.monotonic() < deadline:
                for message in reader.consume(1000, 0.2):
                    p = message.partition()
                    error = message.error()
                    if error is not None and error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(p)  # the end of what a read_committed reader may see
                        continue
                    if not check_message(message) or p not in pending:
                        continue
                    if message.offset() >= ranges[p][1]:
                        pending.discard(p)
                    elif matches(message):
                        return message
                    elif message.offset() + 1 >= ranges[p][1]:
                        pending.discard(p)
            reader.unassign()
            upper = {p: start for p, (start, _) in ranges.items()}
            chunk *= 4
        return None
    finally:
        reader.close()


def offsets_at_time(
    settings: Settings, topic: str, anchor: tuple[int, int], timeout: float = 15.0
) -> dict[int, int]:
    """Per partition of ``topic``, the first offset whose Kafka timestamp is not older than the
    message at ``anchor`` (partition, offset); the partition's end offset where no message is that
    recent yet (the next one to come). Empty when the anchor message cannot be read.

    Kafka's own timestamps, not the events' times: a sensor window's event time is the series' time,
    while every message carries the time it was produced, which is what orders partitions.
    """
    reader = make_reader(settings)
    try:
        partition, offset = anchor
        reader.assign([TopicPartition(topic, partition, offset)])
        deadline, stamp = time.monotonic() + timeout, None
        while stamp is None and time.monotonic() < deadline:
            for message in reader.consume(1, 0.2):
                if check_message(message) and message.offset() >= offset:
                    stamp = message.timestamp()[1]
        reader.unassign()
        if stamp is None or stamp < 0:
            return {}
        partitions = partitions_of(reader, topic)
        found = reader.offsets_for_times(
            [TopicPartition(topic, p, stamp) for p in partitions], timeout=timeout
        )
        return {tp.partition: tp.offset if tp.offset >= 0 else watermarks(reader, topic, tp.partition)[1]
                for tp in found}  # fmt: skip
    finally:
        reader.close()
