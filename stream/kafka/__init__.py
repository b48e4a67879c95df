"""Kafka plumbing shared by producers, workers, the drift monitor and the CLI.

Every Kafka client of anomstream is made by :mod:`stream.kafka.clients`; producing with
back-pressure and delivery accounting is :mod:`stream.kafka.delivery`; topic administration
:mod:`stream.kafka.topics`; reading back :mod:`stream.kafka.reading`.
"""

from stream.kafka.clients import make_admin, make_consumer, make_producer, make_reader
from stream.kafka.delivery import DeliveryTracker, Headers, flush_or_raise, produce
from stream.kafka.reading import (
    check_message,
    follow_from,
    follow_from_end,
    header,
    iter_topic,
    offsets_at_time,
    read_all,
    read_ranges,
    search_backwards,
)
from stream.kafka.topics import (
    BrokerUnavailableError,
    TopicMissingError,
    create_topics,
    end_offsets,
    partitions_of,
    topic_id,
    wait_for_broker,
    watermarks,
)

__all__ = [
    "BrokerUnavailableError",
    "DeliveryTracker",
    "TopicMissingError",
    "Headers",
    "check_message",
    "create_topics",
    "end_offsets",
    "flush_or_raise",
    "follow_from",
    "follow_from_end",
    "header",
    "iter_topic",
    "make_admin",
    "make_consumer",
    "make_producer",
    "make_reader",
    "offsets_at_time",
    "partitions_of",
    "produce",
    "read_all",
    "read_ranges",
    "search_backwards",
    "topic_id",
    "wait_for_broker",
    "watermarks",
]
