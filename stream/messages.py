"""Every message anomstream reads or writes, defined once.

Each format is a ``msgspec.Struct``: the hot path decodes and encodes with it, and its JSON Schema file
in ``stream/schemas/`` (kept for subscribers, checked by a test) is generated from the same class.
Inputs (KDD connections, ECG beats, sensor windows) are validated strictly while decoding: a string
where a number belongs, a value out of range, NaN or infinity, a missing field: the message is
rejected, never coerced. Unknown fields are ignored.

Ground truth never travels in a message body: it rides in the ``label`` header so that no detector
can score it by accident.

>>> decode_kdd_connection(b'{"duration": 0}')
Traceback (most recent call last):
...
msgspec.ValidationError: Object missing required field `protocol_type`
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

SCHEMA_DIR = Path(__file__).parent / "schemas"

# kddcup.names, in file order. Symbolic 0/1 flags are kept numeric: they are already one-hot.
KDD_FEATURES: tuple[str, ...] = (
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)
KDD_CATEGORICAL: tuple[str, ...] = ("protocol_type", "service", "flag")
KDD_BINARY: tuple[str, ...] = ("land", "logged_in", "is_host_login", "is_guest_login")
KDD_NUMERIC: tuple[str, ...] = tuple(f for f in KDD_FEATURES if f not in KDD_CATEGORICAL)
KDD_RATES: tuple[str, ...] = tuple(f for f in KDD_FEATURES if f.endswith("_rate"))

# JSON has no NaN or infinity; numbers too large for a double (1e999) are rejected while decoding.
Count = Annotated[float, Meta(ge=0)]
Rate = Annotated[float, Meta(ge=0, le=1)]
Flag = Annotated[int, Meta(ge=0, le=1)]
Symbol = Annotated[str, Meta(min_length=1, max_length=64)]
DateTime = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
Sample = float


def _kdd_field_type(name: str) -> Any:
    if name in KDD_CATEGORICAL:
        return Symbol
    if name in KDD_BINARY:
        return Flag
    return Rate if name in KDD_RATES else Count


KddConnection = msgspec.defstruct(
    "KddConnection",
    [(name, _kdd_field_type(name)) for name in KDD_FEATURES],
    frozen=True,
    gc=False,
)
KddConnection.__doc__ = "One KDD Cup 99 connection record: the 41 features of kddcup.names."


# Strings copied from an input into alerts and score records are bounded, so no input can make an
# output larger than a Kafka message may be.
Name = Annotated[str, Meta(max_length=256)]
TimeText = Annotated[str, Meta(max_length=64)]


class EcgBeat(Struct, frozen=True, gc=False):
    """One heartbeat window (ECG5000: 140 samples)."""

    record: Name
    values: Annotated[list[Sample], Meta(min_length=8, max_length=4096)]


class SensorWindow(Struct, frozen=True, gc=False):
    """One window of a sensor series; ``start`` / ``end`` are the series' own timestamps.

    A multivariate sensor sends ``channels`` values per row, row after row: ``values`` holds
    ``rows * channels`` numbers, all channels of the first row first.
    """

    sensor_id: Name
    start: TimeText
    end: TimeText
    values: Annotated[list[Sample], Meta(min_length=2, max_length=4096)]
    channels: Annotated[int, Meta(ge=1, le=256)] = 1


# -- outputs --------------------------------------------------------------------------------------
Severity = Literal["low", "medium", "high", "critical"]


class FeatureContribution(Struct, gc=False):
    name: str
    contribution: float


class SourceRef(Struct, gc=False):
    topic: str
    partition: int
    offset: int
    key: str | None


class Alert(Struct, gc=False, omit_defaults=True):
    """One anomalous event, as published to the ``alerts`` topic (keyed by the source event's key).

    ``alert_id`` is deterministic from the source topic, partition and offset: a retried batch
    re-publishes the same alert under the same id.
    """

    alert_id: str
    stream: str
    event_id: str
    source: SourceRef
    event_time: DateTime | None
    detected_at: DateTime
    detector: str
    model_version: int
    score: float
    threshold: float
    severity: Severity
    top_features: Annotated[list[FeatureContribution], Meta(max_length=5)]
    label: str | None
    # The values of the fields a dataset schema groups incidents by ([incidents] group_by), when it
    # names some: the incident stage groups this stream's alerts by them. Left out of the JSON when
    # absent (omit_defaults), as the worker publishes it: an alert decoded and encoded again (the
    # dashboard's feed) is byte for byte the published one.
    fields: Annotated[dict[str, Name], Meta(max_length=3)] | None = None


class ScoreRecord(Struct, gc=False):
    """Every scored event of one batch and one source partition; the lists are parallel."""

    stream: str
    detector: str
    model_version: int
    topic: str
    partition: int
    offsets: list[int]
    scores: list[float]
    is_alert: list[bool]
    labels: list[str | None]
    event_times: list[DateTime | None]


class DeadLetterHeaders(Struct, rename="kebab"):
    """Headers a dead letter carries beside the original key, value and headers.

    On the wire each field is one Kafka header, named with dots (``error.type``, ``source.offset``).

    ``Oversize``: the input's key or label is larger than an output may carry, or an output built from
    it was too large to publish. ``Undeliverable``: an output the broker refused for good (not for
    size); ``output.topic`` names where it was meant to go. When the dead letter could not carry the
    original value whole, its value is the first bytes only and ``original.size`` / ``original.sha256``
    describe the full value.
    """

    error_type: Literal["InvalidJSON", "ValidationError", "EmptyMessage", "Oversize", "Undeliverable"]
    error_message: str
    source_topic: str
    source_partition: int
    source_offset: int
    worker: str
    output_topic: str | None = None
    original_size: int | None = None
    original_sha256: str | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("error.type", self.error_type.encode()),
            ("error.message", self.error_message.encode("utf-8", "replace")[:4000]),
            ("source.topic", self.source_topic.encode()),
            ("source.partition", str(self.source_partition).encode()),
            ("source.offset", str(self.source_offset).encode()),
            ("worker", self.worker.encode()),
        ]
        if self.output_topic is not None:
            headers.append(("output.topic", self.output_topic.encode()))
        if self.original_size is not None:
            headers.append(("original.size", str(self.original_size).encode()))
        if self.original_sha256 is not None:
            headers.append(("original.sha256", self.original_sha256.encode()))
        return headers


ModelStatus = Literal["production", "candidate", "rejected", "retired"]


class ModelUpdate(Struct):
    """A notification that a stream's production model changed (promotion or rollback).

    Workers never load what a message names: they reload what the registry's production alias says.
    """

    stream: str
    detector: str
    version: int
    promoted_at: DateTime
    status: ModelStatus = "production"
    reason: str = "manual"
    # Retrain outcomes (status candidate / rejected): the shadow evaluation's figures, flat
    # ("alert_rate_production": 0.055, ...), and why a candidate was rejected.
    shadow: dict[str, float] | None = None
    detail: str | None = None


class ChangePoint(Struct):
    """Where a change began (estimated) and, to measure the delay from the topics alone, where the
    detector had read up to when it fired: input offsets per partition."""

    topic: str
    partition_offsets: dict[str, int]
    event_time: DateTime | None
    detected_offsets: dict[str, int] | None = None


class DriftEvent(Struct):
    """One detected change of a stream's score or feature distribution (``drift-events``)."""

    event_id: str
    stream: str
    model_version: int
    detector: str
    statistic: float
    threshold: float
    change: ChangePoint
    detected_at: DateTime
    action: str = "none"


Verdict = Literal["benign", "malicious"]


class Feedback(Struct):
    """An analyst's verdict on one alert or on one incident (``feedback`` topic, keyed by the alert
    or incident id).

    ``benign``: the alerted event(s) are normal traffic the model should learn at its next retrain;
    ``malicious``: confirmed attacks, never learnt, and added to the attacks a candidate must still
    detect. An alert verdict carries ``alert_id`` and the alert's coordinates (``source``); an incident
    verdict carries ``incident_id`` instead (``alert_id`` and ``source`` null): it covers every alert
    of the incident, found on ``incident-members``. The model is copied in so the verdict is auditable
    (who, when, on which model version).
    """

    alert_id: Annotated[str, Meta(min_length=1, max_length=256)] | None
    verdict: Verdict
    by: Annotated[str, Meta(min_length=1, max_length=256)]
    reason: Annotated[str, Meta(max_length=2000)]
    given_at: DateTime
    stream: Name
    detector: Name
    model_version: int
    source: SourceRef | None
    incident_id: Annotated[str, Meta(min_length=1, max_length=256)] | None = None


# -- incidents (OCSF 1.3 Detection Finding, class 2004) -----------------------------------------------
OCSF_VERSION = "1.3.0"
Millis = Annotated[int, Meta(ge=0, description="epoch milliseconds (an OCSF timestamp)")]


class OcsfProduct(Struct):
    name: str = "anomstream"
    vendor_name: str = "anomstream"
    version: str = "0.1.0"


class OcsfMetadata(Struct):
    """``uid`` is ``<incident id>:<revision>``: one per message, so a SIEM can de-duplicate."""

    uid: str
    version: str = OCSF_VERSION
    product: OcsfProduct = msgspec.field(default_factory=OcsfProduct)


class OcsfAnalytic(Struct):
    """The detector that raised the incident's alerts (type 4: Learning (ML/DL))."""

    name: str
    uid: str  # <stream>/<detector>
    version: str  # the model version
    type_id: int = 4
    type: str = "Learning (ML/DL)"


class OcsfFindingInfo(Struct):
    uid: str  # the incident id, stable across its messages
    title: str
    desc: str
    first_seen_time: Millis
    last_seen_time: Millis
    analytic: OcsfAnalytic


class IncidentModel(Struct):
    detector: str
    version: int


class IncidentGroup(Struct):
    """What an incident's alerts share: grouping fields' values, or the features leading them."""

    kind: Literal["features", "fields"]
    fields: dict[str, str]
    features: list[str]


class IncidentVerdict(Struct):
    verdict: Verdict
    by: str
    reason: str
    given_at: DateTime


class IncidentUnmapped(Struct):
    """anomstream's own attributes (OCSF ``unmapped``)."""

    stream: str
    model: IncidentModel
    group: IncidentGroup
    top_features: Annotated[list[FeatureContribution], Meta(max_length=5)]
    alert_ids: Annotated[list[str], Meta(max_length=20)]
    revision: Annotated[int, Meta(ge=1)]
    partition: int
    labels: dict[str, int] | None = None  # ground-truth label -> alerts, when alerts carried labels
    verdict: IncidentVerdict | None = None


class Incident(Struct):
    """An incident on the ``incidents`` topic (keyed by its id; compacted): alerts of one stream that
    belong together, as an OCSF 1.3 Detection Finding. Activity 1 (Create) when it opens, 2 (Update)
    as alerts join (throttled), 3 (Close) after the inactivity gap with its final count.
    """

    activity_id: Literal[1, 2, 3]
    activity_name: Literal["Create", "Update", "Close"]
    type_uid: Literal[200401, 200402, 200403]
    type_name: str
    severity_id: Literal[2, 3, 4, 5]
    severity: Literal["Low", "Medium", "High", "Critical"]
    status_id: Literal[1, 2, 4]
    status: Literal["New", "In Progress", "Resolved"]
    time: Millis
    start_time: Millis
    end_time: Millis
    count: Annotated[int, Meta(ge=1)]
    message: str
    metadata: OcsfMetadata
    finding_info: OcsfFindingInfo
    unmapped: IncidentUnmapped
    category_uid: Literal[2] = 2
    category_name: str = "Findings"
    class_uid: Literal[2004] = 2004
    class_name: str = "Detection Finding"


class MemberAlert(Struct):
    alert_id: str
    source: SourceRef
    label: str | None = None


class IncidentMembers(Struct):
    """Alerts that joined an incident in one batch of the incident stage (``incident-members``, keyed
    by incident id, published in the same transaction as the incident's messages): an incident's
    members are the union of its IncidentMembers messages."""

    incident_id: str
    stream: str
    alerts: list[MemberAlert]


# -- codecs ---------------------------------------------------------------------------------------
_encoder = msgspec.json.Encoder()
encode = _encoder.encode
decode_kdd_connection = msgspec.json.Decoder(KddConnection).decode
decode_ecg_beat = msgspec.json.Decoder(EcgBeat).decode
decode_sensor_window = msgspec.json.Decoder(SensorWindow).decode
decode_model_update = msgspec.json.Decoder(ModelUpdate).decode
decode_alert = msgspec.json.Decoder(Alert).decode
decode_score_record = msgspec.json.Decoder(ScoreRecord).decode
decode_drift_event = msgspec.json.Decoder(DriftEvent).decode
decode_feedback = msgspec.json.Decoder(Feedback).decode
decode_incident = msgspec.json.Decoder(Incident).decode
decode_incident_members = msgspec.json.Decoder(IncidentMembers).decode

# The JSON Schema files subscribers validate against, by file stem.
PUBLISHED: dict[str, Any] = {
    "alert": Alert,
    "score-record": ScoreRecord,
    "dead-letter-headers": DeadLetterHeaders,
    "model-update": ModelUpdate,
    "drift-event": DriftEvent,
    "feedback": Feedback,
    "incident": Incident,
    "incident-members": IncidentMembers,
    "kdd-connection": KddConnection,
    "ecg-beat": EcgBeat,
    "sensor-window": SensorWindow,
}


def json_schema(kind: Any) -> dict[str, Any]:
    """The JSON Schema of one message type, self-contained (its ``$defs`` inline)."""
    schema: dict[str, Any] = msgspec.json.schema(kind)
    name = kind.__name__
    root = schema["$defs"].pop(name)
    if schema["$defs"]:
        root["$defs"] = schema["$defs"]
    if kind is DeadLetterHeaders:
        # On the wire: dotted header names, every value a string of bytes.
        root["properties"] = {k.replace("-", "."): {"type": "string"} for k in root["properties"]}
        root["required"] = [k.replace("-", ".") for k in root["required"]]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": name, **root}


def write_json_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Export the JSON Schema files (kept in the repository, checked by a test)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, kind in PUBLISHED.items():
        path = directory / f"{stem}.schema.json"
        path.write_text(json.dumps(json_schema(kind), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m stream.messages: refresh the schema files
    for path in write_json_schemas():
        print(path)
