"""What a scored batch becomes, without a broker: alerts, score records and dead-letter headers that
validate against the published schemas, with ids that survive a re-score."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from consumers.decoding import Rejected
from consumers.outputs import (
    SCORE_RECORD_MAX_EVENTS,
    BatchMeta,
    alert_id,
    build_alerts,
    build_score_records,
    dead_letter_headers,
)
from models.detectors.classical import PCADetector
from models.features import WindowEncoder
from models.scoring import ScoringModel
from models.thresholds import FixedThreshold
from tests.support import schema_validator

WIDTH = 8


@pytest.fixture(scope="module")
def model() -> ScoringModel:
    rng = np.random.default_rng(0)
    normal = np.sin(np.linspace(0, 3, WIDTH))[None, :] + 0.01 * rng.standard_normal((400, WIDTH))
    encoder = WindowEncoder(WIDTH).fit(normal)
    detector = PCADetector(n_components=2).fit(encoder.transform(normal))
    cut = float(np.quantile(detector.score(encoder.transform(normal)), 0.99))
    return ScoringModel("ecg", "pca", 3, encoder, detector, FixedThreshold(cut))


def _messages(n: int, partitions: int = 2) -> list[Message]:
    return [
        Message(
            topic="ecg.beats",
            partition=i % partitions,
            offset=100 + i,
            key=f"beat-{i}".encode(),
            value=b"{}",
            headers=[("label", b"normal" if i % 3 else b"pvc")],
            timestamp=(TIMESTAMP_CREATE_TIME, 1_796_000_000_000 + i),
        )  # fmt: skip
        for i in range(n)
    ]


def _batch(model: ScoringModel, n: int) -> tuple[BatchMeta, np.ndarray]:
    rng = np.random.default_rng(1)
    raw = np.sin(np.linspace(0, 3, WIDTH))[None, :] + 0.01 * rng.standard_normal((n, WIDTH))
    raw[::3] += rng.uniform(2, 4, (len(raw[::3]), WIDTH))  # every third row is far off
    return BatchMeta.of(_messages(n)), raw


def test_alerts_are_schema_valid_explained_and_keyed_by_the_source(model: ScoringModel) -> None:
    meta, raw = _batch(model, 30)
    scored = model.score(raw)
    alerts = [
        (key, orjson.loads(value)) for key, value in build_alerts(model, meta, scored, "2026-11-30T12:00:00Z")
    ]
    assert len(alerts) == scored.is_alert.sum() >= 10
    validator = schema_validator("alert")
    for key, alert in alerts:
        validator.validate(alert)
        row = alert["source"]["offset"] - 100
        assert key == f"beat-{row}".encode() and alert["event_id"] == f"beat-{row}"
        assert alert["label"] == ("normal" if row % 3 else "pvc") and alert["event_time"].endswith("Z")
        assert alert["alert_id"] == alert_id("ecg.beats", row % 2, 100 + row)
        assert 1 <= len(alert["top_features"]) <= 5 and alert["score"] >= alert["threshold"]
        contributions = [f["contribution"] for f in alert["top_features"]]
        assert contributions == sorted(contributions, reverse=True)


def test_a_rescore_publishes_identical_alerts_but_for_the_detection_time(model: ScoringModel) -> None:
    meta, raw = _batch(model, 30)
    first = [orjson.loads(v) for _, v in build_alerts(model, meta, model.score(raw), "2026-11-30T12:00:00Z")]
    again = [orjson.loads(v) for _, v in build_alerts(model, meta, model.score(raw), "2026-11-30T12:00:05Z")]
    for a, b in zip(first, again, strict=True):
        assert a | {"detected_at": None} == b | {"detected_at": None}


def test_one_score_record_per_partition_parallel_lists_split_only_when_huge(model: ScoringModel) -> None:
    meta, raw = _batch(model, 30)
    scored = model.score(raw)
    records = [(key, orjson.loads(value)) for key, value in build_score_records(model, meta, scored)]
    assert sorted(key for key, _ in records) == [b"ecg.beats:0", b"ecg.beats:1"]
    validator = schema_validator("score-record")
    for _, record in records:
        validator.validate(record)
        n = len(record["offsets"])
        assert n == 15 == len(record["scores"]) == len(record["is_alert"]) == len(record["labels"])
        assert all(o % 2 == record["partition"] for o in record["offsets"])
    assert sum(sum(r["is_alert"]) for _, r in records) == scored.is_alert.sum()

    big_meta, big_raw = _batch(model, 2 * SCORE_RECORD_MAX_EVENTS + 10)
    big = list(build_score_records(model, big_meta, model.score(big_raw)))
    assert len(big) == 4  # two partitions, each beyond one record's maximum


def test_dead_letter_headers_keep_the_originals_and_say_why() -> None:
    message = Message(
        topic="kdd.connections", partition=2, offset=7, value=b"{oops", headers=[("label", b"smurf")]
    )
    headers = dead_letter_headers(Rejected(message, "InvalidJSON", "JSON is malformed"), "worker-1")
    as_text = {k: v.decode() for k, v in headers}
    assert headers[0] == ("label", b"smurf")
    schema_validator("dead-letter-headers").validate(as_text)
    assert as_text["source.offset"] == "7" and as_text["error.type"] == "InvalidJSON"


def test_alerts_serialised_from_the_template_equal_the_alert_struct(model: ScoringModel) -> None:
    """The per-batch template writes exactly what stream.messages.Alert describes, field by field."""
    import msgspec

    from stream.messages import Alert, FeatureContribution, SourceRef, decode_alert

    meta, raw = _batch(model, 60)
    scored = model.score(raw)
    detected_at = "2026-11-30T12:00:00.000+00:00"
    built = list(build_alerts(model, meta, scored, detected_at))
    assert len(built) == len(scored.alert_rows) > 0
    for (key, value), row, severity, top in zip(
        built, scored.alert_rows.tolist(), scored.severities, scored.top_features, strict=True
    ):
        expected = Alert(
            alert_id=alert_id(meta.topics[row], meta.partitions[row], meta.offsets[row]),
            stream=model.stream,
            event_id=key.decode(),
            source=SourceRef(meta.topics[row], meta.partitions[row], meta.offsets[row], key.decode()),
            event_time=meta.event_times[row],
            detected_at=detected_at,
            detector=model.detector_name,
            model_version=model.version,
            score=float(scored.scores[row]),
            threshold=float(model.threshold.threshold_),
            severity=severity,  # type: ignore[arg-type]
            top_features=[FeatureContribution(f.name, f.contribution) for f in top],
            label=meta.labels[row],
        )
        assert msgspec.structs.asdict(decode_alert(value)) == msgspec.structs.asdict(expected)


def test_a_dead_letter_too_large_for_one_message_keeps_a_prefix_its_size_and_sha256() -> None:
    import hashlib

    from consumers.outputs import DEAD_LETTER_PREFIX_BYTES, MAX_OUTPUT_BYTES, dead_letter

    value = b"x" * 999_800
    message = Message(topic="kdd.connections", partition=1, offset=9, key=b"pill", value=value)
    key, kept, headers = dead_letter(Rejected(message, "InvalidJSON", "not JSON"), "w")
    as_text = {k: v.decode() for k, v in headers}
    schema_validator("dead-letter-headers").validate(as_text)
    assert key == b"pill" and kept == value[:DEAD_LETTER_PREFIX_BYTES]
    assert as_text["original.size"] == "999800"
    assert as_text["original.sha256"] == hashlib.sha256(value).hexdigest()
    assert len(kept) + sum(len(k) + len(v) for k, v in headers) < MAX_OUTPUT_BYTES

    small = Message(topic="kdd.connections", partition=1, offset=10, value=b"{oops")
    _, untouched, small_headers = dead_letter(Rejected(small, "InvalidJSON", "bad"), "w")
    assert untouched == b"{oops" and "original.size" not in dict(small_headers)


def test_score_records_split_by_size_when_labels_are_long(model: ScoringModel) -> None:
    from consumers.outputs import SCORE_RECORD_MAX_BYTES

    meta, raw = _batch(model, 4000)
    long_labels = BatchMeta(
        meta.topics, [0] * 4000, meta.offsets, meta.keys, ["l" * 250] * 4000, meta.event_times
    )
    records = [value for _, value in build_score_records(model, long_labels, model.score(raw))]
    assert len(records) > 1 and all(len(v) < 2 * SCORE_RECORD_MAX_BYTES for v in records)
    assert sum(len(orjson.loads(v)["offsets"]) for v in records) == 4000
