"""The built-in datasets read through their dataset schemas (the reader of a user's own file) give what
the dedicated readers gave: each real file against a plain pandas/numpy reading of it, written here as
the readers were before they went through schemas. And ``--series PATH``: a NAB-like CSV anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream.datasets import DatasetFormatError, find_ecg_file, find_kdd_file, read_ecg, read_kdd
from stream.datasets.kdd import kdd_schema_name
from stream.datasets.nab import load_series
from stream.datasets.schema import builtin_schemas, load_schema
from stream.datasets.sensor import (
    list_nab_series,
    load_bearing,
    load_nab_series,
    load_sensor_series,
    nab_root,
)
from stream.messages import KDD_CATEGORICAL, KDD_FEATURES
from tests.support import require_data


def plain_kdd(path: Path) -> pd.DataFrame:
    """A KDD file as pandas reads it with no schema: the reader of before."""
    symbols = dict.fromkeys((1, 2, 3, 41), "category")
    frame = pd.read_csv(path, header=None, dtype=symbols)
    frame = frame.iloc[:, :42]
    frame.columns = [*KDD_FEATURES, "label"]
    frame["label"] = frame["label"].astype(str).str.rstrip(".")
    for name in KDD_CATEGORICAL:
        frame[name] = frame[name].astype(str)
    return frame


@pytest.mark.data
@pytest.mark.parametrize(
    ("which", "schema"), [("test", "kdd99"), ("train", "kdd99"), ("nsl-train", "nslkdd")]
)
def test_kdd_through_its_schema_is_the_plain_reading(which: str, schema: str) -> None:
    path = find_kdd_file(require_data("kdd99").parent, which)
    assert kdd_schema_name(path) == schema
    frame = read_kdd(path)
    pd.testing.assert_frame_equal(frame, plain_kdd(path))  # columns, values and dtypes
    assert frame["src_bytes"].dtype == np.int64 and frame["serror_rate"].dtype == np.float64
    assert not frame["label"].str.endswith(".").any()
    pd.testing.assert_frame_equal(read_kdd(path, limit=7), plain_kdd(path).head(7))


def test_a_file_that_is_not_kdd_says_so_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(DatasetFormatError, match=r"is not a KDD Cup 99 or NSL-KDD file .*1 columns"):
        read_kdd(path)


@pytest.mark.data
def test_ecg_through_its_schemas_is_the_plain_reading() -> None:
    folder = require_data("ecg5000")
    table = pd.read_csv(find_ecg_file(folder.parent, "csv"), header=None).to_numpy()
    values, labels = read_ecg(find_ecg_file(folder.parent, "csv"))
    assert values.dtype == np.float64 and values.flags.c_contiguous and labels.dtype == np.int8
    assert np.array_equal(values, table[:, :-1])
    assert np.array_equal(labels, np.where(table[:, -1] == 1.0, 1, 0))
    ucr = np.loadtxt(folder / "ECG5000_TRAIN.txt")
    values, labels = read_ecg(folder / "ECG5000_TRAIN.txt")
    assert np.array_equal(values, ucr[:, 1:]) and np.array_equal(labels, ucr[:, 0].astype(np.int8))


@pytest.mark.data
def test_nab_series_through_the_nab_schema_are_the_plain_reading() -> None:
    data = require_data("nab").parent
    root = nab_root(data)
    keys = list_nab_series(data)
    assert len(keys) == 58
    for key in keys:
        plain = pd.read_csv(root / "data" / key)
        series = load_nab_series(data, key)
        expected_times = pd.to_datetime(plain["timestamp"]).to_numpy(dtype="datetime64[ns]")
        assert np.array_equal(series.timestamps, expected_times), key
        assert np.array_equal(series.values, plain["value"].to_numpy(dtype=np.float64)), key
        frame = load_series(root, key)
        assert np.array_equal(frame["timestamp"].to_numpy(), expected_times), key
        assert series.sensor_id == Path(key).stem and series.anomaly_rows is not None


@pytest.mark.data
def test_bearing_through_its_schema_is_the_plain_reading() -> None:
    path = require_data("bearing", "Averaged_BearingTest_Dataset.csv")
    plain = pd.read_csv(path)
    channels = load_bearing(path.parents[1])
    assert [c.sensor_id for c in channels] == ["bearing-1", "bearing-2", "bearing-3", "bearing-4"]
    assert [c.name for c in channels] == [f"bearing/Bearing {i}" for i in range(1, 5)]
    times = pd.to_datetime(plain.iloc[:, 0]).to_numpy(dtype="datetime64[ns]")
    for channel, column in zip(channels, plain.columns[1:], strict=True):
        assert np.array_equal(channel.timestamps, times) and channel.anomaly_rows is None
        assert np.array_equal(channel.values, plain[column].to_numpy(dtype=np.float64))


def test_every_builtin_schema_loads() -> None:
    names = set(builtin_schemas())
    assert names == {"kdd99", "nslkdd", "ecg5000", "ecg5000-ucr", "nab", "bearing"}
    assert {load_schema(name).name for name in names} == {"kdd", "ecg", "sensor"}


def _copy_rows(source: Path, target: Path, rows: int) -> Path:
    lines = source.read_text().splitlines()[: rows + 1]
    target.write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.data
def test_a_nab_like_csv_anywhere_is_a_series(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--series ./my_sensor.csv`` (replay sensor, train): was "no NAB series './my_sensor.csv'"."""
    data = require_data("nab").parent
    nyc = nab_root(data) / "data" / "realKnownCause" / "nyc_taxi.csv"
    mine = _copy_rows(nyc, tmp_path / "my_sensor.csv", 400)
    monkeypatch.chdir(tmp_path)
    (series,) = load_sensor_series(data, "./my_sensor.csv")
    assert series.sensor_id == "my_sensor" and series.name == "my_sensor.csv"
    assert series.anomaly_rows is None  # outside NAB: unlabelled
    whole = load_nab_series(data, "nyc_taxi")
    assert np.array_equal(series.values, whole.values[:400])
    assert np.array_equal(series.timestamps, whole.timestamps[:400])
    # The path of a file inside NAB is that NAB series, with its anomaly windows.
    (inside,) = load_sensor_series(data, str(nyc))
    assert inside.name == whole.name and np.array_equal(inside.anomaly_rows, whole.anomaly_rows)
    # ISO 8601 times of one's own (NAB itself writes "%Y-%m-%d %H:%M:%S").
    iso = tmp_path / "iso.csv"
    iso.write_text(mine.read_text().replace(" ", "T", -1))
    assert np.array_equal(load_sensor_series(data, str(iso))[0].timestamps, series.timestamps)


@pytest.mark.data
def test_training_reads_a_series_path(tmp_path: Path) -> None:
    """The path `anomstream train --stream sensor --series PATH` takes."""
    from models.training import TrainingRequest
    from models.training.train import training_data

    data = require_data("nab").parent
    nyc = nab_root(data) / "data" / "realKnownCause" / "nyc_taxi.csv"
    mine = _copy_rows(nyc, tmp_path / "my_sensor.csv", 1_000)
    training = training_data(data, TrainingRequest("sensor", "ae", series=str(mine), window=16))
    # Read through the nab schema as a schema's series are, and named as they are: file, then series.
    assert training.description["data"] == ["my_sensor.csv/my_sensor"]
    assert len(training.fit) > 0
