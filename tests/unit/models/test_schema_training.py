"""Training from a dataset schema on files of one's own: real rows written as CSV, cut as the built-in
streams are, saved under the schema's name with the schema in the model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomstream.cli import _unknown_streams
from models.features import TableEncoder, WindowEncoder, encoder_schema
from models.registry import Registry
from models.retraining import LabelledValidation, rebuild_training_data
from models.training import TrainingRequest, train
from models.training.schema_data import schema_training_data, table_training_data
from models.training.train import check_request
from stream.datasets import DatasetFormatError, find_kdd_file, read_kdd
from stream.datasets.schema import DatasetSchema, load_schema, to_toml
from stream.datasets.sensor import load_nab_series
from stream.datasets.table import read_table
from stream.errors import ConfigurationError
from stream.settings import Settings
from stream.windows import sliding_windows
from tests.support import data_root, require_data

TAXI = "nab/data/realKnownCause/nyc_taxi.csv"


@pytest.fixture(scope="module")
def kdd_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """The first 20,000 connections of the 10% file as a CSV with a header, as a user would have them."""
    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "train"), limit=20_000)
    path = tmp_path_factory.mktemp("own") / "connections.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _connections_schema(folder: Path) -> DatasetSchema:
    """The kdd99 schema made a user's: its own name and topic, a CSV with a header; written as TOML."""
    data = load_schema("kdd99").to_dict() | {"name": "connections", "description": "my firewall's log"}
    data.pop("topic")
    data["source"] = {"format": "csv", "header": True}
    path = folder / "connections.toml"
    path.write_text(to_toml(DatasetSchema.from_dict(data)))
    return load_schema(path)


@pytest.mark.data
def test_a_users_records_are_cut_exactly_as_the_built_in_kdd_file(kdd_csv, tmp_path: Path) -> None:
    path, frame = kdd_csv
    ours = schema_training_data(_connections_schema(tmp_path), path, seed=3)
    built_in = read_table(load_schema("kdd99"), find_kdd_file(require_data("kdd99").parent, "train"), 20_000)
    theirs = table_training_data(built_in, seed=3)
    for part in ("fit", "early_stop", "calibration", "labelled", "labelled_anomaly"):
        assert getattr(ours, part).tobytes() == getattr(theirs, part).tobytes(), part
    assert ours.stream == "connections" and isinstance(ours.encoder, TableEncoder)
    assert ours.description["data"] == "connections.csv"
    assert ours.description["normal_rows"] == theirs.description["normal_rows"]
    assert ours.description["rows"]["fit"] == theirs.description["rows"]["fit"]


@pytest.mark.data
def test_a_model_trained_on_the_first_rows_is_saved_under_the_schemas_name(kdd_csv, tmp_path: Path) -> None:
    path, frame = kdd_csv
    schema = _connections_schema(tmp_path)
    request = TrainingRequest.for_schema(schema, detector="pca", file=str(path), training_rows=10_000,
                                         threshold="fbeta")  # fmt: skip
    ref = train(Registry(tmp_path / "registry"), data_root(), request)
    assert (ref.stream, ref.detector, ref.version) == ("connections", "pca", 1)
    model = Registry(tmp_path / "registry").load("connections")
    assert encoder_schema(model.encoder) == schema and model.threshold.kind == "fbeta"
    training = model.manifest["training"]
    assert training["data"] == "connections.csv" and training["training_rows"] == 10_000
    assert training["normal_rows"] + training["anomaly_rows"] == 10_000
    assert training["normal_rows"] == int((frame.label.head(10_000) == "normal").sum())
    assert "service=http" in model.feature_names
    all_normal = TrainingRequest.for_schema(schema, detector="pca", file=str(path), training_rows=700,
                                            threshold="fbeta")  # fmt: skip
    with pytest.raises(ConfigurationError, match="fbeta needs labelled validation data with anomalies"):
        train(Registry(tmp_path / "registry"), data_root(), all_normal)


@pytest.mark.data
def test_a_retrain_rebuilds_the_validation_attacks_of_a_schemas_stream(kdd_csv, tmp_path: Path) -> None:
    """The shadow gate's validation attacks of a schema's model come from the file its schema names, cut
    as its training cut them (before: none, and a candidate's recall was never judged)."""
    path, _ = kdd_csv
    data = _connections_schema(tmp_path).to_dict()
    data["source"]["path"] = str(path)
    schema = DatasetSchema.from_dict(data)
    request = TrainingRequest.for_schema(schema, detector="pca", training_rows=10_000, seed=3)
    train(Registry(tmp_path / "registry"), data_root(), request)
    model = Registry(tmp_path / "registry").load("connections")
    rebuilt = rebuild_training_data(model, data_root())
    trained = schema_training_data(schema, None, training_rows=10_000, seed=3)
    assert rebuilt is not None and rebuilt.labelled_anomaly is not None and rebuilt.labelled_anomaly.any()
    assert rebuilt.labelled.tobytes() == trained.labelled.tobytes()
    validation = LabelledValidation.of(rebuilt)
    assert validation is not None and validation.y.sum() == int(trained.labelled_anomaly.sum())


@pytest.mark.data
def test_a_retrain_rebuilds_a_kdd_models_data_through_its_schema_with_its_protocol(tmp_path: Path) -> None:
    """``train --stream kdd --protocol ffl`` trains on the 10% file through the kdd99 schema; the retrain
    rebuilds the same rows, encoder and validation attacks from the manifest."""
    registry = Registry(tmp_path / "registry")
    train(registry, data_root(), TrainingRequest("kdd", "pca", protocol="ffl"))
    model = registry.load("kdd")
    assert encoder_schema(model.encoder) == load_schema("kdd99")
    assert model.manifest["training"]["protocol"] == "ffl"
    rebuilt = rebuild_training_data(model, data_root())
    assert rebuilt is not None and rebuilt.encoder.to_dict() == model.encoder.to_dict()
    assert rebuilt.labelled_anomaly is not None and rebuilt.labelled_anomaly.any()
    assert len(rebuilt.encoder.feature_names_) == 18


@pytest.mark.data
def test_too_few_normal_rows_is_one_line(kdd_csv, tmp_path: Path) -> None:
    path, _ = kdd_csv
    with pytest.raises(DatasetFormatError, match=r"first 60 rows .* at least 100 needed .*--training-rows"):
        schema_training_data(_connections_schema(tmp_path), path, training_rows=60)


@pytest.mark.data
def test_a_windows_schema_trains_like_ecg(tmp_path: Path) -> None:
    schema = load_schema("ecg5000").model_copy(update={"name": "beats", "topic": None})
    data = schema_training_data(schema, require_data("ecg5000", "ecg.csv.gz"))
    assert isinstance(data.encoder, WindowEncoder) and data.encoder.length == 140
    assert data.stream == "beats" and data.labelled is not None and data.labelled_anomaly is not None
    assert data.labelled_anomaly.any() and not data.labelled_anomaly[: len(data.calibration)].any()
    rows = data.description["rows"]
    assert rows["calibration"] == pytest.approx(0.2 * data.description["normal_rows"], abs=1)


def _taxi_schema(**changes: object) -> DatasetSchema:
    return DatasetSchema.from_dict({
        "name": "taxi", "kind": "series", "source": {"path": str(require_data(TAXI))},
        "timestamp": {"column": "timestamp", "format": "%Y-%m-%d %H:%M:%S"}, "series": {"values": ["value"]},
        **changes,
    })  # fmt: skip


@pytest.mark.data
def test_a_series_trains_on_its_probation_like_a_sensor_series(tmp_path: Path) -> None:
    ref = train(Registry(tmp_path), data_root(), TrainingRequest.for_schema(_taxi_schema(), detector="pca"))
    model = Registry(tmp_path).load("taxi")
    assert ref.stream == "taxi" and isinstance(model.encoder, WindowEncoder) and model.encoder.length == 16
    assert model.manifest["training"]["rows"]["training_rows"] == {"nyc_taxi.csv/nyc_taxi": 750}
    series = load_nab_series(data_root(), "nyc_taxi")
    assert model.score(sliding_windows(series.values, 16)).scores.shape == (len(series) - 15,)


@pytest.mark.data
def test_a_labelled_series_trains_on_its_rows_before_the_first_anomaly(tmp_path: Path) -> None:
    series = load_nab_series(data_root(), "nyc_taxi")
    assert series.anomaly_rows is not None
    frame = pd.read_csv(require_data(TAXI))
    frame["anomaly"] = series.anomaly_rows.astype(int)  # NAB's own anomaly windows
    frame.to_csv(tmp_path / "taxi.csv", index=False)
    schema = _taxi_schema(label={"column": "anomaly", "normal": [0]})
    data = schema_training_data(schema, tmp_path / "taxi.csv")
    first = int(np.argmax(series.anomaly_rows))
    assert data.description["rows"]["training_rows"] == {"taxi.csv/taxi": first}
    assert data.description["schema"] == "taxi"


def _bearings(**series: object) -> DatasetSchema:
    schema = load_schema("bearing")
    assert schema.series is not None
    spec = schema.series.model_copy(update={"multivariate": True, **series})
    path = require_data("bearing", "Averaged_BearingTest_Dataset.csv")
    source = schema.source.model_copy(update={"path": str(path)})
    return schema.model_copy(update={"name": "bearings", "topic": None, "series": spec, "source": source})


@pytest.mark.data
def test_a_multivariate_series_trains_on_windows_of_every_channel(tmp_path: Path) -> None:
    schema = _bearings()
    assert TrainingRequest.for_schema(schema).detector_name == "ae", "seq_ae reads one channel"
    with pytest.raises(ConfigurationError, match="seq_ae reads a window as one channel"):
        check_request(TrainingRequest.for_schema(schema, detector="seq_ae"))
    train(
        Registry(tmp_path), data_root(), TrainingRequest.for_schema(schema, detector="pca", training_rows=500)
    )
    model = Registry(tmp_path).load("bearings")
    assert isinstance(model.encoder, WindowEncoder) and model.encoder.channels == 4
    assert model.feature_names[:2] == ["Bearing 1@t000", "Bearing 2@t000"]
    assert model.manifest["training"]["training_rows"] == 500
    values = pd.read_csv(schema.source.path).iloc[:, 1:].to_numpy()
    assert model.score(sliding_windows(values, 16)).scores.shape == (len(values) - 15,)


@pytest.mark.data
def test_requests_that_disagree_with_their_schema_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="windows of 16 rows"):
        check_request(TrainingRequest.for_schema(_taxi_schema(), window=8))
    with pytest.raises(ConfigurationError, match="a schema's stream is its name"):
        check_request(TrainingRequest(stream="kdd", schema=_taxi_schema()))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stream", "kdd", "--schema", "kdd99"], r"--stream and --schema both name the stream"),
        (["--file", "x.csv"], r"--file is read through a dataset schema: give --schema S too"),
        (["--schema", "no-such-schema"], r"no dataset schema 'no-such-schema'"),
    ],
)
def test_command_line_refusals_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANOMSTREAM_")}
    environment |= {"ANOMSTREAM_REGISTRY_DIR": str(tmp_path), "ANOMSTREAM_DATA_DIR": str(data_root())}
    done = subprocess.run([sys.executable, "-m", "anomstream", "train", *args], capture_output=True,
                          text=True, env=environment, timeout=120)  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode in (1, 2) and len(lines) == 1 and re.search(message, lines[0]), done.stderr


@pytest.mark.data
def test_worker_and_drift_take_a_schema_stream_or_say_in_one_line_why_not(kdd_csv, tmp_path: Path) -> None:
    schema = _connections_schema(tmp_path)
    schema_file = str(tmp_path / "connections.toml")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANOMSTREAM_")}
    environment |= {
        "ANOMSTREAM_REGISTRY_DIR": str(tmp_path / "registry"),
        "ANOMSTREAM_DATA_DIR": str(data_root()),
        "ANOMSTREAM_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # nothing answers there
    }

    def run(*args: str) -> tuple[int, str]:
        done = subprocess.run([sys.executable, "-m", "anomstream", *args], capture_output=True, text=True,
                              env=environment, timeout=120)  # fmt: skip
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        return done.returncode, lines[0]

    code, line = run("worker", "--schema", schema_file)
    assert code == 1 and f"run `anomstream train --schema {schema_file}` first" in line
    code, line = run("worker", "--topic", "mine")
    assert code == 2 and "--topic is the topic of one --schema" in line
    code, line = run("drift", "--stream", "connections")
    assert code == 2 and "unknown stream connections" in line
    path, _ = kdd_csv
    request = TrainingRequest.for_schema(schema, detector="pca", file=str(path))
    train(Registry(tmp_path / "registry"), data_root(), request)
    settings = Settings(registry_dir=tmp_path / "registry", bootstrap_servers="127.0.0.1:9")
    assert _unknown_streams(settings, ["connections", "kdd", "nosuch"]) == ["nosuch"], "with a model: known"
