"""Poison pills against the real broker: no message and no output the broker refuses stops scoring.

A ~1 MB message used to stop every worker for good: its dead letter (value plus headers) was larger
than a producer may send, produce raised MSG_SIZE_TOO_LARGE, the batch was retried five times, the
worker exited 1, and every restart died on the same uncommitted message.
"""

from __future__ import annotations

import hashlib

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from producers.kdd import kdd_events
from stream.kafka import create_topics, make_admin, read_all
from stream.settings import Settings
from tests.support import (
    corrected_sample,
    input_offsets,
    make_settings,
    run_worker,
    schema_validator,
    score_records,
    scored_offsets,
)

pytestmark = pytest.mark.integration


def _plain_producer(settings: Settings) -> Producer:
    """A default confluent-kafka producer, as anyone with write access to the topic has."""
    return Producer({"bootstrap.servers": settings.bootstrap})


def test_a_1mb_message_is_dead_lettered_in_part_and_every_partition_keeps_scoring(
    kafka_settings: Settings,
) -> None:
    settings = kafka_settings
    good = list(kdd_events(corrected_sample(settings.data_dir, 600, seed=11), "corrected"))
    poison = b"x" * 999_800
    producer = _plain_producer(settings)
    topic = settings.topic("kdd")
    for i, event in enumerate(good):
        producer.produce(topic, event.value, event.key, headers=[("label", event.label.encode())])
        if i == 300:
            for partition in range(settings.topic_partitions):  # one pill in every partition
                producer.produce(topic, poison, f"pill-{partition}".encode(), partition=partition)
    assert producer.flush(30) == 0
    pills = settings.topic_partitions

    stats = run_worker(settings, max_events=len(good) + pills, timeout=120)
    assert (stats.events, stats.dead_letters) == (len(good), pills)
    scored = scored_offsets(score_records(settings))
    letters = read_all(settings, settings.topic("dead_letter"))
    lettered = {(topic, int(dict(m.headers())["source.partition"]), int(dict(m.headers())["source.offset"]))
                for m in letters}  # fmt: skip
    assert set(scored) | lettered == input_offsets(settings) and not set(scored) & lettered
    assert {p for _, p, _ in scored} == set(range(settings.topic_partitions)), "every partition scored"

    validator = schema_validator("dead-letter-headers")
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers()}
        validator.validate(headers)
        assert headers["error.type"] == "InvalidJSON"
        assert letter.value() == poison[: len(letter.value())] and len(letter.value()) == 64 * 1024
        assert int(headers["original.size"]) == len(poison)
        assert headers["original.sha256"] == hashlib.sha256(poison).hexdigest()


def test_an_oversized_key_or_label_is_rejected_before_it_reaches_an_alert(kafka_settings: Settings) -> None:
    settings = kafka_settings
    good = list(kdd_events(corrected_sample(settings.data_dir, 50, seed=12), "corrected"))
    template = good[0].value
    producer = _plain_producer(settings)
    topic = settings.topic("kdd")
    for event in good:
        producer.produce(topic, event.value, event.key, headers=[("label", event.label.encode())])
    producer.produce(topic, template, b"k" * 600_000, headers=[("label", b"smurf.")])
    producer.produce(topic, template, b"big-label", headers=[("label", b"l" * 400_000)])
    assert producer.flush(30) == 0

    stats = run_worker(settings, max_events=len(good) + 2, timeout=120)
    assert (stats.events, stats.dead_letters) == (len(good), 2)
    letters = read_all(settings, settings.topic("dead_letter"))
    assert {dict(m.headers())["error.type"] for m in letters} == {b"Oversize"}
    assert {m.key() for m in letters} == {b"k" * 600_000, b"big-label"}, (
        "a dead letter that fits is untouched"
    )


@pytest.mark.parametrize("eos", [False, True], ids=["at-least-once", "exactly-once"])
def test_outputs_the_broker_refuses_for_good_are_dead_lettered_and_the_batch_moves_on(
    kafka_bootstrap: str, kdd_registry, eos: bool
) -> None:
    """A scores topic that takes at most 1,000-byte messages refuses every score record: each is
    replaced by a dead letter that says where it was going and why, and scoring goes on."""
    settings = make_settings(kafka_bootstrap, kdd_registry, batch_size=200)
    admin = make_admin(settings)
    small = NewTopic(
        settings.topic("scores"), settings.topic_partitions, 1, config={"max.message.bytes": "1000"}
    )
    admin.create_topics([small])[settings.topic("scores")].result()
    create_topics(settings)
    events = list(kdd_events(corrected_sample(settings.data_dir, 1000, seed=13), "corrected"))
    producer = _plain_producer(settings)
    for event in events:
        producer.produce(
            settings.topic("kdd"), event.value, event.key, headers=[("label", event.label.encode())]
        )
    assert producer.flush(30) == 0

    stats = run_worker(settings, max_events=len(events), eos=eos, timeout=180)
    assert stats.events == len(events) and stats.undeliverable > 0
    assert score_records(settings) == [], "no score record fits in 1,000 bytes"
    letters = read_all(settings, settings.topic("dead_letter"))
    refused = [
        m for m in letters if dict(m.headers()).get("output.topic") == settings.topic("scores").encode()
    ]
    assert len(refused) == stats.undeliverable
    validator = schema_validator("dead-letter-headers")
    for letter in refused:
        headers = {k: v.decode() for k, v in letter.headers()}
        validator.validate(headers)
        assert headers["error.type"] == "Oversize" and "MSG_SIZE_TOO_LARGE" in headers["error.message"]
        assert int(headers["original.size"]) >= len(letter.value())
    alerts = read_all(settings, settings.topic("alerts"))
    assert len(alerts) == stats.alerts > 0, "alerts fit, and were published"
