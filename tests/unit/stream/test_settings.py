"""Settings: librdkafka pass-through from the environment, secrets never shown, topic names."""

from __future__ import annotations

import os

import pytest

from stream.settings import Settings, redact


def test_librdkafka_properties_pass_through_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMSTREAM_BOOTSTRAP_SERVERS", "broker-1:9093,broker-2:9093")
    monkeypatch.setenv("ANOMSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ANOMSTREAM_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("ANOMSTREAM_KAFKA__SASL_USERNAME", "scorer")
    monkeypatch.setenv("ANOMSTREAM_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("ANOMSTREAM_KAFKA__SSL_CA_LOCATION", "/etc/ca.pem")
    settings = Settings()

    config = settings.kafka_config()
    assert config["bootstrap.servers"] == "broker-1:9093,broker-2:9093"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.password"] == "hunter2"  # the client gets the real value
    assert config["ssl.ca.location"] == "/etc/ca.pem"
    assert not settings.embedded_broker


def test_secrets_never_appear_in_repr_or_redacted_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMSTREAM_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("ANOMSTREAM_KAFKA__SSL_KEY_PASSWORD", "s3cret")
    settings = Settings()
    assert "hunter2" not in repr(settings) and "s3cret" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
    safe = redact(settings.kafka_config())
    assert safe["sasl.password"] == "***" and safe["ssl.key.password"] == "***"


def test_topic_names_prefix_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANOMSTREAM_TOPICS__ALERTS", "sec.alerts")
    settings = Settings(topic_prefix="dev.")
    assert settings.topic("alerts") == "dev.sec.alerts"
    assert settings.topic("kdd") == "dev.kdd.connections"
    assert len(settings.all_topics()) == 12  # 3 inputs, 6 outputs, incidents, their members, their state


def test_embedded_broker_when_no_cluster_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANOMSTREAM_BOOTSTRAP_SERVERS", raising=False)
    settings = Settings(broker_port=19092)
    assert settings.embedded_broker and settings.bootstrap == "127.0.0.1:19092"


def test_settings_are_frozen() -> None:
    with pytest.raises(ValueError):
        Settings().batch_size = 1  # type: ignore[misc]


def test_environment_round_trips_to_identical_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker process started with settings.environment() sees exactly the parent's settings."""
    monkeypatch.setenv("ANOMSTREAM_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("ANOMSTREAM_TOPICS__ALERTS", "sec.alerts")
    parent = Settings(bootstrap_servers="k:9092", topic_prefix="t1.", group_id="g", batch_size=123)
    for key in [k for k in os.environ if k.startswith("ANOMSTREAM_")]:
        monkeypatch.delenv(key)
    for key, value in parent.environment().items():
        monkeypatch.setenv(key, value)
    child = Settings()
    assert child == parent
    assert child.kafka_config()["sasl.password"] == "hunter2" and child.topic("alerts") == "t1.sec.alerts"


def test_a_secret_in_a_property_whose_name_says_nothing_is_still_redacted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """sasl.oauthbearer.config carried clientSecret=hunter2 into the -v producer-config log line."""
    import logging

    from stream.kafka import make_producer

    monkeypatch.setenv("ANOMSTREAM_KAFKA__SASL_OAUTHBEARER_CONFIG", "clientId=scorer clientSecret=hunter2")
    monkeypatch.setenv("ANOMSTREAM_KAFKA__SOME_FUTURE_PROPERTY", "opaque-value")
    monkeypatch.setenv("ANOMSTREAM_KAFKA__LINGER_MS", "5")
    settings = Settings()
    with caplog.at_level(logging.DEBUG):
        make_producer(settings.model_copy(update={"kafka": {"linger.ms": "5"}}))
        logging.getLogger("stream.kafka.clients").debug("producer config %s", redact(settings.kafka_config()))
    assert (
        "hunter2" not in caplog.text and "opaque-value" not in caplog.text and "hunter2" not in repr(settings)
    )
    assert "'linger.ms': '5'" in caplog.text, "harmless numbers stay visible"


def test_an_s3_registry_and_its_secrets_reach_child_processes_but_never_a_repr(monkeypatch) -> None:
    from pydantic import SecretStr

    settings = Settings(
        registry_url="s3://models/prod",
        s3={"endpoint_url": "http://s3:80", "access_key_id": "AK", "secret_access_key": SecretStr("s3cr3t")},
    )
    assert settings.registry == "s3://models/prod"
    assert "s3cr3t" not in repr(settings)
    for key, value in settings.environment().items():
        monkeypatch.setenv(key, value)
    child = Settings()
    assert child.registry == "s3://models/prod" and child.s3.endpoint_url == "http://s3:80"
    secret = child.s3.secret_access_key
    assert secret is not None and secret.get_secret_value() == "s3cr3t"


def test_a_registry_url_is_a_folder_or_an_s3_url() -> None:
    from pydantic import ValidationError

    assert Settings(registry_url="", registry_dir="/srv/models").registry == "/srv/models"
    assert Settings(registry_url="file:///srv/models").registry == "/srv/models"
    with pytest.raises(ValidationError, match="folder or an s3://bucket/prefix"):
        Settings(registry_url="gs://models")
    with pytest.raises(ValidationError, match="names a bucket"):
        Settings(registry_url="s3:///prefix")
