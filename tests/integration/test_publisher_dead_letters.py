"""Every output the broker refuses for good becomes exactly one dead letter, whichever delivery round
refused it (issue 28: when the last round failed only permanently, the replacement dead letters were
built, never produced, and the batch was committed: lost)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message
from confluent_kafka.admin import NewTopic

import consumers.publisher as publisher_module
from consumers.publisher import Output, Publisher, ScoredBatch
from stream.kafka import create_topics, make_admin, make_consumer, make_producer, read_all
from stream.settings import Settings
from tests.support import make_settings

pytestmark = pytest.mark.integration


def _source(settings: Settings, topic: str) -> tuple[Consumer, Message]:
    """A real input message, consumed as a worker consumes it (the output's source)."""
    producer = make_producer(settings)
    producer.produce(topic, b'{"x": 1}', b"input-0")
    assert producer.flush(30) == 0
    consumer = make_consumer(settings, f"{settings.group_id}-dl", **{"auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    for _ in range(300):
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            return consumer, message
    raise AssertionError(f"no message read back from {topic}")


@pytest.mark.parametrize("retries", [0, 2], ids=["refused-on-the-last-round", "refused-on-an-earlier-round"])
def test_an_output_refused_for_good_becomes_exactly_one_dead_letter(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, retries: int
) -> None:
    # retries = 0: the first round is the last, so a permanent refusal there is the defect's path.
    monkeypatch.setattr(publisher_module, "MAX_DELIVERY_RETRIES", retries)
    settings = make_settings(kafka_bootstrap, tmp_path / "registry")
    small = settings.topic("scores")
    admin = make_admin(settings)
    admin.create_topics([NewTopic(small, 1, 1, config={"max.message.bytes": "1000"})])[small].result()
    create_topics(settings, topics=[settings.topic("kdd"), settings.topic("dead_letter")])
    consumer, source = _source(settings, settings.topic("kdd"))
    try:
        publisher = Publisher(None, consumer, eos=False, worker_id="w-1",  # type: ignore[arg-type]
                              dead_letter_topic=settings.topic("dead_letter"))  # fmt: skip
        publisher.producer = make_producer(
            settings, on_delivery=publisher.on_delivery, **{"delivery.report.only.error": True}
        )
        # Random bytes: a compressed batch of repeated ones would fit. The broker takes 1,000 bytes here.
        fits, refused = b'{"fits": true}', os.urandom(5_000)
        outputs = [Output(small, fits, b"a", None, source), Output(small, refused, b"b", None, source)]
        publisher.start()
        assert publisher.submit(ScoredBatch(1, outputs, offsets=[]))
        publisher.drain()
        publisher.close()
    finally:
        consumer.close()
    letters = read_all(settings, settings.topic("dead_letter"))
    assert len(letters) == 1, f"{len(letters)} dead letters for one refused output"
    headers = {k: v.decode() for k, v in letters[0].headers()}
    assert headers["output.topic"] == small and headers["error.type"] == "Oversize"
    assert letters[0].value() == refused
    assert [m.value() for m in read_all(settings, small)] == [fits]
