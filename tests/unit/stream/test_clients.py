"""Kafka client configuration without a broker: tuning is a default, guarantees are not negotiable."""

from __future__ import annotations

import logging
import re
import time

import pytest

from stream.kafka.clients import (
    CONSUMER_TUNING,
    PRODUCER_TUNING,
    _client_config,
    make_consumer,
    make_producer,
    make_reader,
)
from stream.settings import Settings


def test_kafka_properties_override_tuning_but_never_the_guarantees() -> None:
    settings = Settings(
        bootstrap_servers="k:9092",
        kafka={"LINGER_MS": "0", "QUEUED_MAX_MESSAGES_KBYTES": "1024", "ENABLE_AUTO_COMMIT": "true"},
    )
    config = _client_config(
        settings, {**PRODUCER_TUNING, **CONSUMER_TUNING}, {"enable.auto.commit": False}, {}
    )
    assert config["linger.ms"] == "0" and config["queued.max.messages.kbytes"] == "1024"
    assert config["enable.auto.commit"] is False, "commits stay manual whatever the environment says"
    assert config["compression.type"] == "lz4" and config["bootstrap.servers"] == "k:9092"


NO_BROKER = Settings(bootstrap_servers="127.0.0.1:1")
CAP = 64 * 1024 * 1024  # what the module docstring promises; librdkafka's own defaults are 1 GB


def test_a_producer_that_outruns_the_broker_stops_queueing_at_the_cap() -> None:
    """With no broker to send to, produce() queues until the local cap, then raises BufferError."""
    producer = make_producer(NO_BROKER)
    message, queued = b"x" * 256 * 1024, 0
    try:
        with pytest.raises(BufferError):
            while queued <= 2 * CAP:
                producer.produce("capped", message)
                queued += len(message)
    finally:
        producer.purge()
    assert CAP - len(message) <= queued <= CAP


@pytest.mark.parametrize("kind", ["consumer", "reader"])
def test_consumers_prefetch_within_the_cap(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """The configuration librdkafka itself reports (debug=conf) bounds a backlog's prefetch."""
    settings = Settings(bootstrap_servers="127.0.0.1:1", kafka={"DEBUG": "conf"})
    # A logger of its own: the shared librdkafka logger throttles repeated lines across clients.
    conf_log = logging.getLogger(f"tests.rdkafka.{kind}")
    with caplog.at_level(logging.DEBUG, logger=conf_log.name):
        client = (
            make_consumer(settings, "capped", logger=conf_log)
            if kind == "consumer"
            else make_reader(settings, logger=conf_log)
        )
        effective: dict[str, str] = {}
        deadline = time.monotonic() + 10
        while "fetch.max.bytes" not in effective and time.monotonic() < deadline:
            client.poll(0.05)  # librdkafka's log lines reach Python logging from poll()
            reported = (r.getMessage() for r in caplog.records if r.name == conf_log.name)
            found = (re.search(r"^CONF .*:\s+([a-z.]+) = (\S+)$", line) for line in reported)
            effective = dict(m.groups() for m in found if m)
        client.close()
    assert int(effective["queued.max.messages.kbytes"]) * 1024 <= CAP
    assert int(effective["fetch.max.bytes"]) <= int(effective["queued.max.messages.kbytes"]) * 1024
