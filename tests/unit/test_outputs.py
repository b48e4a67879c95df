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
