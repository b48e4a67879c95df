"""One frozen settings object for every anomstream process.

Values come from keyword arguments, then ``ANOMSTREAM_*`` environment variables, then defaults. The
default folders do not depend on the current directory: datasets and models live under
``$XDG_DATA_HOME/anomstream`` (``~/.local/share/anomstream``), broker and worker state under
``$XDG_STATE_HOME/anomstream`` (``~/.local/state/anomstream``)::

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
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.errors import ConfigurationError

STREAMS = ("kdd", "ecg", "sensor")

# librdkafka properties whose values are shown in logs. Every other value is redacted: a secret can
# hide in a property whose name says nothing (sasl.oauthbearer.config holds "clientSecret=...").
_SHOWN_PROPERTIES = frozenset(
    {
        "bootstrap.servers", "security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.username",
        "sasl.kerberos.service.name", "sasl.kerberos.principal", "sasl.oauthbearer.method",
        "sasl.oauthbearer.client.id", "sasl.oauthbearer.scope", "sasl.oauthbearer.token.endpoint.url",
        "ssl.endpoint.identification.algorithm", "client.id", "group.id", "transactional.id",
        "isolation.level", "acks", "compression.type", "enable.idempotence", "enable.auto.commit",
        "enable.auto.offset.store", "auto.offset.reset", "partition.assignment.strategy", "debug",
    }
)  # fmt: skip
# Numbers, sizes and file locations carry no secret (a key *file's* path is not the key).
_SHOWN_SUFFIXES = re.compile(r"\.(ms|bytes|kbytes|messages|max|min|size|location|retries|count)$")
_SECRET_MARKERS = ("password", "secret", "token", "key.pem", "private", "jaas", "credential", "config")


def _is_secret(prop: str) -> bool:
    """Whether a librdkafka property's value must be kept out of logs and reprs."""
    if prop in _SHOWN_PROPERTIES:
        return False
    if any(marker in prop for marker in _SECRET_MARKERS):
        return True
    return not _SHOWN_SUFFIXES.search(prop)


def _default_data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "anomstream"


def _default_state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "anomstream"


class TopicNames(BaseModel):
    """Default topic names; each can be overridden, e.g. ANOMSTREAM_TOPICS__ALERTS=sec.alerts."""

    model_config = ConfigDict(frozen=True)

    kdd: str = Field(default="kdd.connections", description="KDD Cup 99 connections, one per message")
    ecg: str = Field(default="ecg.beats", description="ECG heartbeats, one 140-sample beat per message")
    sensor: str = Field(default="sensor.windows", description="sensor readings, one window per message")
    alerts: str = Field(default="alerts", description="one alert per anomalous event")
    scores: str = Field(default="scores", description="one score record per scored batch and partition")
    dead_letter: str = Field(
        default="dead-letter", description="messages that could not be decoded or validated, bytes untouched"
    )
    drift: str = Field(default="drift-events", description="drift detections")
    model_updates: str = Field(
        default="model-updates",
        description="promotions, rollbacks and retrain outcomes; workers reload on them",
    )
    feedback: str = Field(default="feedback", description="analysts' verdicts on alerts or incidents")
    incidents: str = Field(
        default="incidents",
        description="incidents (OCSF Detection Findings), keyed by incident id, compacted",
    )
    incident_members: str = Field(
        default="incident-members", description="which alerts joined which incident, per incident stage batch"
    )
    incidents_state: str = Field(
        default="incidents-state",
        description="the incident stage's open incidents, per alerts partition (compacted)",
    )


class DriftSettings(BaseModel):
    """The drift monitor (``anomstream drift``), e.g. ANOMSTREAM_DRIFT__TARGET_ERT=1000000."""

    model_config = ConfigDict(frozen=True)

    group_id: str = Field(default="anomstream-drift", description="consumer group of drift monitors")
    detector: str = Field(default="adwin", description="adwin, kswin or page_hinkley")
    target_ert: int = Field(
        default=1_000_000, ge=1000, description="at most one false alarm per this many stable scores"
    )
    false_alarm_risk: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="chance that target_ert stable scores raise one anyway (0.632: plain expected run time)",
    )
    calibration_seed: int = Field(default=0, description="seed of the calibration's bootstrap streams")
    cooldown: int = Field(default=50_000, ge=0, description="events after a detection with no other")
    burst_window: int = Field(default=500, ge=10, description="events over which the alert rate is taken")
    burst_rate: float = Field(default=0.5, gt=0, le=1, description="alert rate that makes a burst")
    # A high alert rate that lasts longer than this (events) is a change, not an attack burst. Per
    # stream: KDD's 10% file holds a smurf flood of 194,637 connections; a NAB anomaly window covers
    # at most ~1,000 sensor windows; ECG5000's abnormal beats number 2,079 in all.
    max_burst: dict[str, int] = Field(
        default_factory=lambda: {"kdd": 250_000, "ecg": 5_000, "sensor": 2_000},
        description="per stream: a run of alerts longer than this (events) is drift, not an attack burst; "
        "a stream not set keeps its default",
    )

    @field_validator("max_burst", mode="after")
    @classmethod
    def _every_stream(cls, value: dict[str, int]) -> dict[str, int]:
        """A variable for one stream (ANOMSTREAM_DRIFT__MAX_BURST__SENSOR=3000) keeps the others' defaults."""
        defaults = {"kdd": 250_000, "ecg": 5_000, "sensor": 2_000}
        merged = {**defaults, **{str(k).lower(): int(v) for k, v in value.items()}}
        if any(v < 1 for v in merged.values()):
            raise ValueError("max_burst must be at least 1 event")
        return merged

    checkpoint_interval_s: float = Field(default=5.0, gt=0, description="state saved, offsets committed")
    feature_test: bool = Field(default=True, description="also test a sample of encoded input features")
    feature_window: int = Field(default=2000, ge=100, description="sampled events per feature test")
    feature_sample_every: int = Field(default=10, ge=1, description="sample one in N normal events")
    # The retrain loop (`anomstream drift --retrain`); the rest of its policy is models.retraining's.
    retrain_min_events: int = Field(default=20_000, ge=100, description="post-change events before a retrain")
    retrain_max_events: int = Field(
        default=100_000, ge=100, description="post-change events it reads at most"
    )
    retrain_min_fit_rows: int = Field(
        default=2_000, ge=50, description="post-change rows the evidence lets a retrain learn, at least"
    )
    retrain_wait_s: float = Field(default=600.0, gt=0, description="how long a retrain waits for its data")
    retrain_cooldown_s: float = Field(default=600.0, ge=0, description="no retrain of a stream within this")


class DashboardSettings(BaseModel):
    """The dashboard (``anomstream dashboard``), e.g. ANOMSTREAM_DASHBOARD__ANALYST_TOKEN=..."""

    model_config = ConfigDict(frozen=True)

    # A verdict teaches the model, so it is guarded like the control channel: beyond localhost the
    # dashboard takes verdicts only with this token (sent as "Authorization: Bearer <token>").
    analyst_token: SecretStr | None = Field(
        default=None, description="analysts' token for verdicts; required when listening beyond localhost"
    )


class IncidentSettings(BaseModel):
    """The incident stage (``anomstream incidents run``), e.g. ANOMSTREAM_INCIDENTS__GAP_S=600."""

    model_config = ConfigDict(frozen=True)

    group_id: str = Field(default="anomstream-incidents", description="consumer group of the incident stage")
    gap_s: float = Field(
        default=300.0, gt=0, description="an incident closes after this long without an alert"
    )
    max_duration_s: float = Field(
        default=3600.0, gt=0, description="an incident closes this long after its first alert at the latest"
    )
    group_interval_s: float = Field(
        default=30.0, ge=0, description="an open incident's updates are published at most this often"
    )
    repeat_interval_s: float = Field(
        default=3600.0, gt=0, description="an unchanged open incident is announced again after this long"
    )
    similarity: float = Field(
        default=0.5, gt=0, le=1, description="cosine similarity of top features an alert needs to join"
    )
    max_open: int = Field(
        default=200, ge=1, description="open incidents per alerts partition; beyond, the stalest one closes"
    )
    batch_size: int = Field(default=5000, ge=1, description="most alerts grouped per batch")
    max_queue_delay_ms: float = Field(
        default=100.0, ge=0, description="longest an alert waits for its batch to fill"
    )


class ResilienceSettings(BaseModel):
    """Outages and stops (issue 19): the watchdog on blocking Kafka calls, the SIGTERM bound, and what
    ``/healthz`` calls stuck, e.g. ANOMSTREAM_RESILIENCE__SHUTDOWN_GRACE_S=20."""

    model_config = ConfigDict(frozen=True)

    call_margin_s: float = Field(
        default=15.0,
        gt=0,
        description="how long a blocking librdkafka call may run past its own timeout before its "
        "client is abandoned (recreated, or the process exits 75)",
    )
    transaction_timeout_s: float = Field(
        default=30.0, gt=0, description="timeout of each exactly-once transaction call of the worker"
    )
    recovery_s: float = Field(
        default=300.0,
        gt=0,
        description="how long a worker keeps retrying one batch through an outage (recreating its "
        "producer) before it exits 75 for its supervisor to restart it",
    )
    rejoin_s: float = Field(
        default=60.0,
        gt=0,
        description="how long a consumer that lost its partitions (a session timed out in an outage) "
        "may take to be assigned again before it is recreated",
    )
    shutdown_grace_s: float = Field(
        default=25.0,
        gt=0,
        description="after SIGTERM, the most a process takes to finish and commit; past it, it exits "
        "75 naming what it abandoned (under --eos aborted, at-least-once re-delivered)",
    )
    stall_after_s: float = Field(
        default=120.0,
        gt=0,
        description="/healthz answers 503 when work is pending (lag, a batch in flight) and none "
        "completed for this long; idle with no lag stays healthy",
    )


class ObjectStoreSettings(BaseModel):
    """The S3-compatible store of an ``s3://`` registry, e.g. ANOMSTREAM_S3__ENDPOINT_URL=http://s3:8080.
    What is unset here comes from boto3's standard chain (AWS_ACCESS_KEY_ID, AWS_REGION, ...)."""

    model_config = ConfigDict(frozen=True)

    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint; unset: AWS (or AWS_ENDPOINT_URL)"
    )
    region: str | None = Field(default=None, description="region; unset: AWS_REGION / AWS_DEFAULT_REGION")
    access_key_id: str | None = Field(
        default=None, description="access key; unset: AWS_ACCESS_KEY_ID, AWS_PROFILE or a role"
    )
    secret_access_key: SecretStr | None = Field(
        default=None, description="secret key; unset: AWS_SECRET_ACCESS_KEY"
    )
    session_token: SecretStr | None = Field(
        default=None, description="session token; unset: AWS_SESSION_TOKEN"
    )
    addressing_style: str = Field(default="path", description="path (S3-compatible servers) or virtual")
    # A server may check a conditional write's precondition and write in two steps (s3proxy 3.0 does:
    # docs/registry.md): the alias is read back this long after a compare-and-swap, so of two
    # promoters that both passed the check, only the one whose write stayed reports success.
    cas_settle_s: float = Field(
        default=0.5, ge=0, description="wait before reading a conditional write back (docs/registry.md)"
    )


class Settings(BaseSettings):
    """Everything a producer, worker, trainer or CLI verb needs to know about its environment."""

    model_config = SettingsConfigDict(
        env_prefix="ANOMSTREAM_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka cluster to use, and start no broker; unset: the embedded broker on "
        "127.0.0.1:ANOMSTREAM_BROKER_PORT",
    )
    kafka: dict[str, SecretStr | str] = Field(
        default_factory=dict, description="librdkafka properties, passed through untouched"
    )
    topic_prefix: str = Field(default="", description="prefix of every topic name, e.g. dev.")
    topics: TopicNames = Field(default_factory=TopicNames, description="topic names, one variable each")
    topic_partitions: int = Field(
        default=6,
        ge=1,
        description="partitions per topic created (the most useful worker replicas per stream)",
    )
    replication_factor: int = Field(default=1, ge=1, description="replicas of each topic created")

    # The folders' defaults depend on the environment, so the configuration reference shows the rule.
    data_dir: Path = Field(
        default_factory=lambda: _default_data_home() / "data",
        description="datasets: kdd99/, ecg5000/, nab/, nslkdd/, bearing/",
        json_schema_extra={
            "shown_default": "$XDG_DATA_HOME/anomstream/data (~/.local/share/anomstream/data)"
        },
    )
    registry_dir: Path = Field(
        default_factory=lambda: _default_data_home() / "registry",
        description="the model registry",
        json_schema_extra={"shown_default": "$XDG_DATA_HOME/anomstream/registry"},
    )
    registry_url: str | None = Field(
        default=None,
        description="the registry as a folder or s3://bucket/prefix (docs/registry.md); unset: registry_dir",
    )
    s3: ObjectStoreSettings = Field(
        default_factory=ObjectStoreSettings, description="the object store of an s3:// registry"
    )
    state_dir: Path = Field(
        default_factory=_default_state_home,
        description="the embedded broker's data and logs, demo and bench logs, checkpoints of online state "
        "(workers' learning state, the drift monitor's watches and calibrations)",
        json_schema_extra={"shown_default": "$XDG_STATE_HOME/anomstream (~/.local/state/anomstream)"},
    )
    state_url: str | None = Field(
        default=None,
        description="where monitors' checkpoints, calibrations and workers' online state live: a folder "
        "or s3://bucket/prefix (any host resumes from it); unset: state_dir",
    )
    broker_port: int = Field(default=9092, ge=1, le=65535, description="the embedded broker's port")

    group_id: str = Field(default="anomstream-workers", description="the scoring workers' consumer group")
    # Dynamic batching (as in Triton and TF Serving): a batch is scored as soon as it holds
    # ``batch_size`` messages or its oldest message has waited ``max_queue_delay_ms``.
    batch_size: int = Field(default=5000, ge=1, description="largest batch scored in one model call")
    max_queue_delay_ms: float = Field(
        default=5.0, ge=0, description="longest a message waits for its batch to fill before scoring"
    )
    batch_timeout_s: float = Field(
        default=0.2, gt=0, description="how long an idle worker waits for a message between checks"
    )
    drift: DriftSettings = Field(
        default_factory=DriftSettings, description="the drift monitor and its retrain"
    )
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings, description="the dashboard")
    resilience: ResilienceSettings = Field(
        default_factory=ResilienceSettings, description="outages and stops"
    )
    incidents: IncidentSettings = Field(
        default_factory=IncidentSettings, description="the incident stage: grouping alerts into incidents"
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

    @field_validator("registry_url", mode="after")
    @classmethod
    def _registry_location(cls, value: str | None) -> str | None:
        if value and value.startswith("s3://") and not value[5:].split("/", 1)[0]:
            raise ValueError("an s3:// registry URL names a bucket: s3://bucket/prefix")
        if value and "://" in value and not value.startswith(("s3://", "file://")):
            raise ValueError("the registry is a folder or an s3://bucket/prefix URL")
        return value or None

    @property
    def registry(self) -> str:
        """Where the registry lives: an ``s3://bucket/prefix`` URL or a folder."""
        url = self.registry_url or str(self.registry_dir)
        return url.removeprefix("file://")

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
        if self.state_url:
            env["ANOMSTREAM_STATE_URL"] = self.state_url
        for field_name, topic in self.topics.model_dump().items():
            env[f"ANOMSTREAM_TOPICS__{field_name.upper()}"] = topic
        for field_name, value in self.drift.model_dump().items():
            if isinstance(value, dict):  # one variable per key: ANOMSTREAM_DRIFT__MAX_BURST__KDD=...
                for key, item in value.items():
                    env[f"ANOMSTREAM_DRIFT__{field_name.upper()}__{key.upper()}"] = str(item)
            else:
                env[f"ANOMSTREAM_DRIFT__{field_name.upper()}"] = str(value)
        if self.registry_url:
            env["ANOMSTREAM_REGISTRY_URL"] = self.registry_url
        for field_name, value in self.s3.model_dump().items():
            if value is not None:
                shown = value.get_secret_value() if isinstance(value, SecretStr) else value
                env[f"ANOMSTREAM_S3__{field_name.upper()}"] = str(shown)
        if self.dashboard.analyst_token is not None:
            env["ANOMSTREAM_DASHBOARD__ANALYST_TOKEN"] = self.dashboard.analyst_token.get_secret_value()
        for field_name, value in self.resilience.model_dump().items():
            env[f"ANOMSTREAM_RESILIENCE__{field_name.upper()}"] = str(value)
        for field_name, value in self.incidents.model_dump().items():
            env[f"ANOMSTREAM_INCIDENTS__{field_name.upper()}"] = str(value)
        for key, value in self.kafka_config().items():
            if key != "bootstrap.servers":
                env[f"ANOMSTREAM_KAFKA__{key.replace('.', '_').upper()}"] = str(value)
        return env


def redact(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a client configuration that is safe to log: only values known to hold no secret."""
    return {k: "***" if isinstance(v, str) and _is_secret(k) else v for k, v in config.items()}


def env_name(loc: tuple[Any, ...]) -> str:
    """The environment variable of a settings field location: ('kafka', 'x') -> ANOMSTREAM_KAFKA__X."""
    return "ANOMSTREAM_" + "__".join(str(part).upper().replace(".", "_") for part in loc)


def load_settings(**values: Any) -> Settings:
    """Settings from the environment, or one ConfigurationError naming the variable and what is wrong.

    >>> os.environ["ANOMSTREAM_BATCH_SIZE"] = "abc"
    >>> load_settings()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    stream.errors.ConfigurationError: ANOMSTREAM_BATCH_SIZE='abc': Input should be a valid integer, ...
    >>> del os.environ["ANOMSTREAM_BATCH_SIZE"]
    """
    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        secret = loc[0] == "kafka" and _is_secret(".".join(map(str, loc[1:])).lower())
        shown = "" if secret else f"={first.get('input')!r}"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigurationError(f"{env_name(first['loc'])}{shown}: {first['msg']}{more}") from None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
