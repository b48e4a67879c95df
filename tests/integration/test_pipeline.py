"""Real KDD connections through a real broker and the scoring worker: nothing lost, nothing doubled."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from models.evaluation.confusion import Confusion
from stream.kafka import read_all
from stream.settings import Settings
from tests.support import (
    corrected_sample,
    input_offsets,
    measure,
    replay,
    run_worker,
    schema_validator,
    score_records,
    scored_offsets,
)

pytestmark = pytest.mark.integration


def test_10k_real_connections_every_offset_scored_once_and_alerts_valid(kafka_settings: Settings) -> None:
    settings = kafka_settings
    frame = corrected_sample(settings.data_dir, 10_000, seed=1)
    replay(settings, frame)

    stats = run_worker(settings, max_events=10_000)
    measure(f"worker on 10,000 real KDD connections: {stats.rate:,.0f} events/s ({stats.batches} batches)")
    assert stats.events == 10_000 and stats.dead_letters == 0

    # What the worker published is valid against the published JSON Schemas (one validator each:
    # jsonschema.validate would re-check the schema for every message).
    record_schema = schema_validator("score-record")
    for message in read_all(settings, settings.topic("scores")):
        record_schema.validate(orjson.loads(message.value()))
    records = score_records(settings)
    counts = scored_offsets(records)
    assert set(counts) == input_offsets(settings), "some input offsets were never scored"
    assert max(counts.values()) == 1, "an offset was scored twice"

    # Every score record is internally consistent: parallel lists, labels carried from the header.
    for record in records:
        n = len(record["offsets"])
        assert len(record["scores"]) == len(record["is_alert"]) == len(record["labels"]) == n
        assert all(label is not None for label in record["labels"])

    alerts = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts"))]
    alert_schema = schema_validator("alert")
    for alert in alerts:
        alert_schema.validate(alert)
    assert len({a["alert_id"] for a in alerts}) == len(alerts), "duplicate alert ids"
    assert len(alerts) == sum(sum(r["is_alert"]) for r in records)
    assert all(1 <= len(a["top_features"]) <= 5 for a in alerts)
    assert all(a["score"] >= a["threshold"] for a in alerts)

    # The detector is useful on real traffic: most alerts are attacks, most attacks alert.
    labels = [label for r in records for label in r["labels"]]
    flagged = np.array([flag for r in records for flag in r["is_alert"]])
    confusion = Confusion.of_labels(flagged, labels)
    precision, recall = confusion.precision or 0.0, confusion.recall or 0.0
    measure(f"10k sample: precision {precision:.3f}, recall {recall:.3f}, alerts {flagged.sum():,}")
    assert precision > 0.95 and recall > 0.85


def test_alert_ids_are_deterministic_across_a_rescore(kafka_settings: Settings) -> None:
    """Re-scoring the same offsets (a retried batch) yields the same alert ids: subscribers can dedupe."""
    settings = kafka_settings
    replay(settings, corrected_sample(settings.data_dir, 500, seed=2))
    run_worker(settings, max_events=500)
    first = sorted(orjson.loads(m.value())["alert_id"] for m in read_all(settings, settings.topic("alerts")))

    rescoring = settings.model_copy(update={"group_id": settings.group_id + "-again"})
    run_worker(rescoring, max_events=500)
    alerts = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("alerts"))]
    assert len(alerts) == 2 * len(first) and first
    by_source: dict[tuple, set[str]] = {}
    for alert in alerts:
        source = (alert["source"]["partition"], alert["source"]["offset"])
        by_source.setdefault(source, set()).add(alert["alert_id"])
    assert all(len(ids) == 1 for ids in by_source.values())


def test_prometheus_metrics_report_what_the_worker_did(kafka_settings: Settings) -> None:
    from urllib.request import urlopen

    from stream.broker import free_port

    settings = kafka_settings
    replay(settings, corrected_sample(settings.data_dir, 3000, seed=8))
    port = free_port()
    stats = run_worker(settings, max_events=3000, metrics_port=port)
    text = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and line[0] != "#"
    }
    assert values['anomstream_events_total{stream="kdd"}'] == stats.events == 3000
    assert values['anomstream_alerts_total{stream="kdd"}'] == stats.alerts > 0
    assert values["anomstream_batches_total"] == stats.batches
    assert values['anomstream_model_version{detector="ae",stream="kdd"}'] == 1
    lags = [v for k, v in values.items() if k.startswith("anomstream_consumer_lag{")]
    assert len(lags) == settings.topic_partitions and all(v == 0 for v in lags)
