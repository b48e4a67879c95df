"""``anomstream replay FILE --schema S`` as users type it, against the session broker: a CSV, a Parquet
and a JSON-lines file written from the real data reach their topic (created for them), every message
with its key and label; a bad file publishes nothing; ``replay sensor --series ./my.csv`` works."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from producers.drift import PHASE_HEADER
from producers.table import ReplayOptions, table_events
from stream.datasets.schema import DatasetSchema, Source, to_toml
from stream.datasets.sensor import nab_root
from stream.datasets.table import read_table
from stream.kafka import create_topics, header, make_admin, read_all
from stream.messages import decode_ecg_beat, decode_sensor_window
from stream.settings import Settings
from tests.support import make_settings, require_data
from tests.unit.producers.test_own_data_replay import (
    bearing_frame,
    bearing_schema,
    ecg_rows,
    kdd_connections,
    kdd_schema,
    taxi_records,
    taxi_schema,
)

pytestmark = pytest.mark.integration


def cli(settings: Settings, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = settings.environment() | {"COLUMNS": "200"}
    command = [sys.executable, "-m", "anomstream", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=cwd)


def topics(settings: Settings) -> dict[str, int]:
    """Every topic of the cluster with its partition count."""
    meta = make_admin(settings).list_topics(timeout=10)
    return {name: len(topic.partitions) for name, topic in meta.topics.items()}


def triples(events: list) -> Counter:
    return Counter((e.key, e.value, e.label) for e in events)


def on_topic(messages: list) -> Counter:
    labels = (header(m, "label") for m in messages)
    return Counter(
        (m.key(), m.value(), None if label is None else label.decode())
        for m, label in zip(messages, labels, strict=True)
    )


def write_case(kind: str, folder: Path) -> tuple[Path, DatasetSchema]:
    """A file from the real data and its schema: KDD connections as CSV, two bearing channels as
    Parquet, NAB taxi records (time, category, label) as gzipped JSON lines."""
    if kind == "csv":
        path = folder / "connections.csv"
        kdd_connections().to_csv(path, index=False)
        return path, kdd_schema()
    if kind == "parquet":
        path = folder / "bearings.parquet"
        bearing_frame().to_parquet(path)
        return path, bearing_schema().model_copy(update={"source": Source(format="parquet")})
    path = folder / "taxi.jsonl.gz"
    taxi_records().to_json(path, orient="records", lines=True)
    return path, taxi_schema().model_copy(update={"source": Source(format="jsonl")})


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl"])
def test_a_file_replays_every_message_with_its_key_and_label(
    kind: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(kafka_bootstrap, tmp_path / "registry")
    path, schema = write_case(kind, tmp_path)
    schema_path = tmp_path / "schema.toml"
    schema_path.write_text(to_toml(schema))
    topic = schema.input_topic(settings)
    assert topic not in topics(settings)

    run = cli(settings, "replay", str(path), "--schema", str(schema_path))
    assert run.returncode == 0, run.stderr
    expected = list(table_events(read_table(schema, path), ReplayOptions()).events)
    assert f"delivered {len(expected):,}, failed 0" in run.stderr
    assert topics(settings)[topic] == settings.topic_partitions  # created for it, as configured
    messages = read_all(settings, topic)
    assert on_topic(messages) == triples(expected)  # every message once: key, value and label
    if kind == "parquet":
        windows = [decode_sensor_window(m.value()) for m in messages]
        assert {w.channels for w in windows} == {2} and {m.key() for m in messages} == {b"bearings"}
    if kind == "jsonl":
        assert Counter(header(m, "label") for m in messages) == Counter(
            label.encode() for label in taxi_records()["label"]
        )


def test_a_builtin_schema_by_name_with_limit_and_loop(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = make_settings(kafka_bootstrap, tmp_path / "registry")
    path = ecg_rows(tmp_path, rows=40)
    run = cli(settings, "replay", str(path), "--schema", "ecg5000", "--loop", "--limit", "100")
    assert run.returncode == 0, run.stderr
    messages = read_all(settings, settings.topic("ecg"))  # the built-in stream's configured topic
    assert len(messages) == 100
    beats = Counter(decode_ecg_beat(m.value()).record for m in messages)
    assert set(beats) == {f"ecg.csv-{row:05d}" for row in range(40)}
    assert sorted(beats.values()) == [2] * 20 + [3] * 20  # two passes and a half


def test_a_records_drift_marks_its_phases(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = make_settings(kafka_bootstrap, tmp_path / "registry")
    path, schema = write_case("jsonl", tmp_path)
    schema_path = tmp_path / "taxi.toml"
    schema_path.write_text(to_toml(schema))
    run = cli(settings, "replay", str(path), "--schema", str(schema_path), "--drift", "level",
              "--drift-at", "120")  # fmt: skip
    assert run.returncode == 0, run.stderr
    phases = Counter(header(m, PHASE_HEADER) for m in read_all(settings, schema.input_topic(settings)))
    assert phases == {b"before": 120, b"after": len(taxi_records()) - 120}


def test_a_bad_file_publishes_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = make_settings(kafka_bootstrap, tmp_path / "registry")
    taxi = taxi_records()
    taxi["value"] = taxi["value"].astype(object)
    taxi.loc[len(taxi) - 1, "value"] = "lots"  # the very last row: everything before it is fine
    path = tmp_path / "taxi.csv"
    taxi.to_csv(path, index=False)
    schema_path = tmp_path / "taxi.toml"
    schema_path.write_text(to_toml(taxi_schema()))
    run = cli(settings, "replay", str(path), "--schema", str(schema_path))
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and f"row {len(taxi)}: 'lots' is not a number" in run.stderr
    assert taxi_schema().input_topic(settings) not in topics(settings)  # not even created


def test_replay_sensor_takes_the_path_of_a_nab_like_csv(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Was: ``no NAB series './my_sensor.csv'``."""
    settings = make_settings(kafka_bootstrap, tmp_path / "registry")
    create_topics(settings)  # the built-in replays expect `anomstream topics create`
    nyc = nab_root(require_data("nab").parent) / "data" / "realKnownCause" / "nyc_taxi.csv"
    pd.read_csv(nyc, nrows=300).to_csv(tmp_path / "my_sensor.csv", index=False)
    run = cli(settings, "replay", "sensor", "--series", "./my_sensor.csv", "--window", "16", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    messages = read_all(settings, settings.topic("sensor"))
    assert len(messages) == 300 - 15 and {m.key() for m in messages} == {b"my_sensor"}
    assert all(header(m, "label") is None for m in messages)  # outside NAB: unlabelled
