"""Kafka client configuration without a broker: tuning is a default, guarantees are not negotiable."""

from __future__ import annotations

from stream.kafka.clients import CONSUMER_TUNING, PRODUCER_TUNING, _client_config
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


def test_queued_memory_is_capped_by_default() -> None:
    assert PRODUCER_TUNING["queue.buffering.max.kbytes"] <= 65_536
    assert CONSUMER_TUNING["queued.max.messages.kbytes"] <= 65_536
    assert CONSUMER_TUNING["queued.min.messages"] <= 50_000
    assert CONSUMER_TUNING["fetch.max.bytes"] <= CONSUMER_TUNING["queued.max.messages.kbytes"] * 1024
