"""One frozen settings object for every anomstream process.

Values come from keyword arguments, then ``ANOMSTREAM_*`` environment variables, then defaults::

    ANOMSTREAM_BOOTSTRAP_SERVERS=broker:9092           # use this cluster, start no broker
    ANOMSTREAM_KAFKA__SECURITY_PROTOCOL=SASL_SSL       # any librdkafka property, passed through
    ANOMSTREAM_KAFKA__SASL_PASSWORD=...                # secrets are kept as SecretStr, never logged
    ANOMSTREAM_TOPIC_PREFIX=dev.                       # prefix for every topic name

>>> s = Settings(topic_prefix="dev.", bootstrap_servers="k:9092")
>>> s.topic("alerts")
'dev.alerts'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STREAMS = ("kdd", "ecg", "sensor")

# librdkafka properties whose values must never reach a log line.
_SECRET_MARKERS = ("password", "secret", "token", "key.pem", "private", "jaas")


def _is_secret(prop: str) -> bool:
    return any(marker in prop for marker in _SECRET_MARKERS)


class TopicNames(BaseModel):
    """Default topic names; each can be overridden, e.g. ANOMSTREAM_TOPICS__ALERTS=sec.alerts."""

    model_config = ConfigDict(frozen=True)

    kdd: str = "kdd.connections"
    ecg: str = "ecg.beats"
    sensor: str = "sensor.windows"
    alerts: str = "alerts"
    scores: str = "scores"
    dead_letter: str = "dead-letter"
    drift: str = "drift-events"
    model_updates: str = "model-updates"


class Settings(BaseSettings):
    """Everything a producer, worker, trainer or CLI verb needs to know about its environment."""

    model_config = SettingsConfigDict(
        env_prefix="ANOMSTREAM_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    bootstrap_servers: str | None = Field(
        default=None, description="Kafka cluster to use; when unset the embedded broker is used"
    )
    kafka: dict[str, SecretStr | str] = Field(
        default_factory=dict, description="librdkafka properties, passed through untouched"
    )
    topic_prefix: str = ""
    topics: TopicNames = Field(default_factory=TopicNames)
    topic_partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    data_dir: Path = Path("data")
    registry_dir: Path = Path("registry")
    state_dir: Path = Path(".anomstream")
    broker_port: int = 9092

    group_id: str = "anomstream-workers"
    # Dynamic batching (as in Triton and TF Serving): a batch is scored as soon as it holds
    # ``batch_size`` messages or its oldest message has waited ``max_queue_delay_ms``.
    batch_size: int = Field(default=5000, ge=1, description="largest batch scored in one model call")
    max_queue_delay_ms: float = Field(
        default=5.0, ge=0, description="longest a message waits for its batch to fill before scoring"
    )
    batch_timeout_s: float = Field(
        default=0.2, gt=0, description="how long an idle worker waits for a message between checks"
    )

    @field_validator("kafka", mode="before")
    @classmethod
    def _librdkafka_names(cls, value: Any) -> dict[str, SecretStr | str]:
        """Turn ``SECURITY_PROTOCOL`` (environment spelling) into ``security.protocol``; wrap secrets."""
        if not isinstance(value, dict):
            raise TypeError("kafka must be a mapping of librdkafka properties")
        props: dict[str, SecretStr | str] = {}
        for raw_key, raw_value in value.items():
            key = str(raw_key).lower().replace("_", ".")
            text = raw_value.get_secret_value() if isinstance(raw_value, SecretStr) else str(raw_value)
            props[key] = SecretStr(text) if _is_secret(key) else text
        return props

    @property
    def embedded_broker(self) -> bool:
        """True when no cluster is configured, so anomstream runs (or expects) its own broker."""
        return not self.bootstrap_servers

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_servers or f"127.0.0.1:{self.broker_port}"

    def topic(self, name: str) -> str:
        """Full topic name for a logical name such as ``"alerts"`` or a stream such as ``"kdd"``."""
        return self.topic_prefix + getattr(self.topics, name)

    def all_topics(self) -> list[str]:
        return [self.topic(name) for name in TopicNames.model_fields]

    def kafka_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka configuration with secrets revealed: hand it to a client, never to a logger."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        for key, value in self.kafka.items():
            config[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
        config.update(overrides)
        return config

    def environment(self) -> dict[str, str]:
        """These settings as ``ANOMSTREAM_*`` variables, so a child process (a worker) shares them.

        Returned together with the rest of the caller's environment minus its own ``ANOMSTREAM_*``.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMSTREAM_")}
        for name in ("topic_prefix", "topic_partitions", "replication_factor", "data_dir", "registry_dir",
                     "state_dir", "broker_port", "group_id", "batch_size", "max_queue_delay_ms",
                     "batch_timeout_s"):  # fmt: skip
            env[f"ANOMSTREAM_{name.upper()}"] = str(getattr(self, name))
        if self.bootstrap_servers:
            env["ANOMSTREAM_BOOTSTRAP_SERVERS"] = self.bootstrap_servers
        for field_name, topic in self.topics.model_dump().items():
            env[f"ANOMSTREAM_TOPICS__{field_name.upper()}"] = topic
        for key, value in self.kafka_config().items():
            if key != "bootstrap.servers":
                env[f"ANOMSTREAM_KAFKA__{key.replace('.', '_').upper()}"] = str(value)
        return env


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a client configuration that is safe to log."""
    return {key: "***" if _is_secret(key) else value for key, value in config.items()}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
