"""The incidents' current state, read back from the ``incidents`` topic: the latest message per
incident id (the topic is compacted by id, so that is what a subscriber keeps too)."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
from confluent_kafka import TopicPartition

from stream.kafka import check_message, make_reader
from stream.kafka.topics import partitions_of, watermarks
from stream.messages import Incident, decode_incident
from stream.settings import Settings

READ_TIMEOUT_S = 60.0


def read_incidents(settings: Settings, stream: str | None = None, open_only: bool = False) -> list[Incident]:
    """Every incident's latest message (committed transactions only), most recently seen first."""
    latest: dict[str, Incident] = {}
    for value in _values(settings, settings.topic("incidents")):
        try:
            incident = decode_incident(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # not ours: a subscriber's schema check is where that is reported
        current = latest.get(incident.finding_info.uid)
        if current is None or incident.unmapped.revision >= current.unmapped.revision:
            latest[incident.finding_info.uid] = incident
    chosen = [
        i
        for i in latest.values()
        if (stream is None or i.unmapped.stream == stream) and (not open_only or i.activity_id != 3)
    ]
    return sorted(chosen, key=lambda i: (-i.end_time, i.finding_info.uid))


def _values(settings: Settings, topic: str) -> Iterator[bytes]:
    """Every value of ``topic`` up to its end now."""
    import time

    reader = make_reader(settings)
    try:
        partitions = partitions_of(reader, topic)
        ends = {p: watermarks(reader, topic, p) for p in partitions}
        todo = {p for p, (low, high) in ends.items() if high > low}
        reader.assign([TopicPartition(topic, p, ends[p][0]) for p in todo])
        deadline = time.monotonic() + READ_TIMEOUT_S
        while todo and time.monotonic() < deadline:
            for message in reader.consume(1000, 0.5):
                if check_message(message) and message.value():
                    yield message.value()
            positions = reader.position([TopicPartition(topic, p) for p in todo])
            todo = {tp.partition for tp in positions if tp.offset < ends[tp.partition][1]}
    finally:
        reader.close()
