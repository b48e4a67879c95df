"""``anomstream replay FILE --schema S`` without a broker: the events of each schema kind, byte for byte.

Fixtures are written from the real data (KDD connections, a NAB series, the bearing channels, ECG
beats) in the formats a user brings: CSV, Parquet, JSON lines. The integration twin
(``tests/integration/test_own_data_replay.py``) replays the same files through a real broker.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from anomstream.cli import main
from producers.drift import PHASE_HEADER, DriftSpec
from producers.replay import Event
from producers.sensor import SeriesPacer, iso_times, sensor_events
from producers.table import ReplayOptions, record_events, replay_table, table_events
from stream.datasets import DatasetFormatError, find_ecg_file, find_kdd_file, read_ecg, read_kdd
from stream.datasets.schema import (
    DatasetSchema,
    Features,
    Label,
    Series,
    Source,
    Timestamp,
    load_schema,
    to_toml,
)
from stream.datasets.sensor import load_nab_series, nab_root
from stream.datasets.table import Table, read_table
from stream.errors import ConfigurationError
from stream.messages import KDD_CATEGORICAL, KDD_NUMERIC, decode_ecg_beat, decode_kdd_connection
from stream.messages import decode_sensor_window as decode_window
from stream.settings import Settings
from stream.windows import sliding_windows, window_end_rows
from tests.support import require_data


# -- fixtures from the real data (the integration tests write the same files) ----------------------
def kdd_connections(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of real ``corrected`` connections with a key column, ``conn``, naming the row."""
    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "test"))
    sample = frame.sample(n=n, random_state=seed)
    return sample.assign(conn=[f"corrected-{row}" for row in sample.index]).reset_index(drop=True)


def kdd_schema(**changes: object) -> DatasetSchema:
    values: dict[str, object] = {
        "name": "connections",
        "key": "conn",
        "features": Features(numeric=list(KDD_NUMERIC), categorical=list(KDD_CATEGORICAL)),
        "label": Label(column="label", normal=["normal"]),
    }
    return DatasetSchema.model_validate(values | changes)


def taxi_records(rows: int = 400) -> pd.DataFrame:
    """Rows of NAB's nyc_taxi around its first anomaly window, as records: the file's time text, the
    count, the weekday (a category) and the NAB label."""
    data = require_data("nab").parent
    series = load_nab_series(data, "nyc_taxi")
    plain = pd.read_csv(nab_root(data) / "data" / "realKnownCause" / "nyc_taxi.csv")
    assert series.anomaly_rows is not None
    first = int(np.flatnonzero(series.anomaly_rows)[0])
    rows_taken = slice(first - rows // 2, first + rows // 2)
    frame = plain.iloc[rows_taken].reset_index(drop=True)
    weekday = pd.to_datetime(frame["timestamp"]).dt.day_name()
    labels = np.where(series.anomaly_rows[rows_taken], "anomaly", "normal")
    return frame.assign(weekday=weekday, label=labels)


def taxi_schema() -> DatasetSchema:
    return DatasetSchema(
        name="taxi",
        timestamp=Timestamp(column="timestamp", format="%Y-%m-%d %H:%M:%S"),
        features=Features(numeric=["value"], categorical=["weekday"]),
        label=Label(column="label", normal=["normal"]),
    )


def bearing_frame(rows: int = 200) -> pd.DataFrame:
    """The first rows of the averaged bearing test, its time column named."""
    frame = pd.read_csv(require_data("bearing", "Averaged_BearingTest_Dataset.csv"), nrows=rows)
    return frame.rename(columns={"Unnamed: 0": "time"})


def bearing_schema(window: int = 8, multivariate: bool = True) -> DatasetSchema:
    return DatasetSchema(
        name="bearings",
        kind="series",
        timestamp=Timestamp(column="time"),
        series=Series(values=["Bearing 1", "Bearing 2"], window=window, multivariate=multivariate),
    )


def ecg_rows(tmp_path: Path, rows: int = 120) -> Path:
    """The first beats of the real ecg.csv, as a file of their own."""
    lines = pd.read_csv(find_ecg_file(require_data("ecg5000").parent, "csv"), header=None, nrows=rows)
    path = tmp_path / "ecg.csv"
    lines.to_csv(path, header=False, index=False)
    return path


def value_of(event: Event) -> dict:
    return orjson.loads(event.value)


# -- records ----------------------------------------------------------------------------------------
@pytest.mark.data
def test_records_carry_every_feature_exactly_their_key_and_label(tmp_path: Path) -> None:
    connections = kdd_connections()
    path = tmp_path / "connections.csv"
    connections.to_csv(path, index=False)
    table = read_table(kdd_schema(), path)
    events = list(record_events(table))
    assert len(events) == len(connections)
    whole = {name for name in KDD_NUMERIC if connections[name].dtype.kind == "i"}
    assert whole and whole != set(KDD_NUMERIC)  # counts are whole numbers, rates are not
    for event, (_, row) in zip(events, connections.iterrows(), strict=True):
        value = value_of(event)
        assert list(value) == [*KDD_NUMERIC, *KDD_CATEGORICAL]  # schema order: numeric, categorical
        for name in KDD_NUMERIC:
            assert value[name] == row[name] and isinstance(value[name], int) == (name in whole), name
        assert all(value[name] == row[name] for name in KDD_CATEGORICAL)
        assert event.key == row["conn"].encode()
        assert event.label == row["label"]  # "normal", or the attack's name
        decode_kdd_connection(event.value)  # the built-in kdd stream decodes them too


@pytest.mark.data
def test_records_keys_without_a_key_column_say_file_pass_and_row(tmp_path: Path) -> None:
    connections = kdd_connections(n=20)
    path = tmp_path / "connections.csv.gz"
    connections.to_csv(path, index=False)
    table = read_table(kdd_schema(key=None), path)
    keys = [e.key for e in record_events(table, loop=True, limit=45)]
    expected = [f"connections.csv-{p}-{row:07d}".encode() for p in range(3) for row in range(20)][:45]
    assert keys == expected


def test_floats_read_back_to_the_same_float64_and_unlabelled_rows_have_no_header() -> None:
    schema = DatasetSchema(name="toy", features=Features(numeric=["x", "n"]))
    x = np.random.default_rng(1).normal(size=500) * 10.0 ** np.arange(-250, 250)
    frame = pd.DataFrame({"x": x, "n": np.arange(500.0) - 250})
    events = list(record_events(Table(schema, "toy.csv", frame)))
    assert [value_of(e)["x"] for e in events] == x.tolist()  # bit-exact, tiny to huge
    assert [value_of(e)["n"] for e in events] == list(range(-250, 250))
    assert all(e.label is None for e in events)


@pytest.mark.data
def test_records_carry_their_time_in_rfc3339_and_pace_by_it(tmp_path: Path) -> None:
    taxi = taxi_records()
    path = tmp_path / "taxi.jsonl.gz"
    taxi.to_json(path, orient="records", lines=True)
    table = read_table(taxi_schema().model_copy(update={"source": Source(format="jsonl")}), path)
    planned = table_events(table, ReplayOptions())
    events = list(planned.events)
    times = pd.to_datetime(taxi["timestamp"]).to_numpy(dtype="datetime64[ns]")
    assert [value_of(e)["timestamp"] for e in events] == iso_times(times)
    assert value_of(events[0])["timestamp"].endswith("Z")
    assert [value_of(e)["weekday"] for e in events] == taxi["weekday"].tolist()
    assert [e.label for e in events] == taxi["label"].tolist()
    assert {"normal", "anomaly"} == {e.label for e in events}
    # Paced by the rows' own clock: NAB's 30 minutes between rows, 1,800 times faster: 1 s.
    assert planned.times is not None and np.array_equal(planned.times, times)
    assert np.allclose(np.diff(SeriesPacer(planned.times, speedup=1800.0).due), 1.0)


@pytest.mark.data
def test_a_records_drift_moves_every_numeric_feature_by_the_rows_before_it(tmp_path: Path) -> None:
    taxi = taxi_records()
    path = tmp_path / "taxi.csv"
    taxi.to_csv(path, index=False)
    table = read_table(taxi_schema(), path)
    before = table.numeric()[:, 0]
    level = list(table_events(table, ReplayOptions(drift=DriftSpec("level", at=150))).events)
    phases = [dict(e.headers)[PHASE_HEADER] for e in level]
    assert phases == [b"before"] * 150 + [b"after"] * (len(taxi) - 150)
    moved = np.array([value_of(e)["value"] for e in level])
    np.testing.assert_allclose(moved[:150], before[:150])
    np.testing.assert_allclose(moved[150:], before[150:] + 3.0 * before[:150].std())
    variance = list(table_events(table, ReplayOptions(drift=DriftSpec("variance", at=150))).events)
    spread = np.array([value_of(e)["value"] for e in variance])
    mean = before[:150].mean()
    np.testing.assert_allclose(spread[150:] - mean, 3.0 * (before[150:] - mean))
    with pytest.raises(ConfigurationError, match="--drift-at"):
        table_events(table, ReplayOptions(drift=DriftSpec("level", at=len(taxi))))


# -- series ---------------------------------------------------------------------------------------
@pytest.mark.data
def test_multichannel_windows_travel_row_major_with_their_channel_count(tmp_path: Path) -> None:
    bearings = bearing_frame()
    path = tmp_path / "bearings.parquet"
    bearings.to_parquet(path)
    table = read_table(bearing_schema().model_copy(update={"source": Source(format="parquet")}), path)
    events = list(table_events(table, ReplayOptions()).events)
    values = bearings[["Bearing 1", "Bearing 2"]].to_numpy()
    ends = window_end_rows(len(bearings), 8)
    assert len(events) == len(ends)
    times = pd.to_datetime(bearings["time"]).to_numpy(dtype="datetime64[ns]")
    for event, expected, end in zip(events, sliding_windows(values, 8), ends, strict=True):
        window = decode_window(event.value)
        assert window.channels == 2 and window.values == expected.tolist()
        assert window.values[:2] == values[end - 7].tolist()  # row after row, both channels together
        assert window.end == iso_times(times[end : end + 1])[0]
        assert event.key == b"bearings" and event.label is None  # the file's stem; no label column
    # One series per column instead: two univariate sensors, interleaved.
    bearings.to_csv(tmp_path / "bearings.csv", index=False)
    apart = read_table(bearing_schema(multivariate=False), tmp_path / "bearings.csv")
    keys = [e.key for e in table_events(apart, ReplayOptions(window=4, stride=2)).events]
    assert keys[:4] == [b"bearing-1", b"bearing-2", b"bearing-1", b"bearing-2"]
    assert len(keys) == 2 * len(window_end_rows(len(bearings), 4, 2))


@pytest.mark.data
def test_univariate_windows_are_byte_for_byte_the_sensor_replay(tmp_path: Path) -> None:
    data = require_data("nab").parent
    nyc = nab_root(data) / "data" / "realKnownCause" / "nyc_taxi.csv"
    series = load_nab_series(data, "nyc_taxi")
    table = read_table(load_schema("nab"), nyc)
    mine = list(table_events(table, ReplayOptions(window=16, stride=4)).events)
    theirs = list(sensor_events([series], 16, 4))
    assert [e.value for e in mine] == [e.value for e in theirs]
    assert b"channels" not in mine[0].value and mine[0].key == b"nyc_taxi"


@pytest.mark.data
def test_series_windows_label_by_their_last_row(tmp_path: Path) -> None:
    taxi = taxi_records()[["timestamp", "value", "label"]]
    path = tmp_path / "taxi.csv"
    taxi.to_csv(path, index=False)
    schema = DatasetSchema(
        name="taxi", kind="series", timestamp=Timestamp(column="timestamp"),
        series=Series(values=["value"], window=6), label=Label(column="label", normal=["normal"]),
    )  # fmt: skip
    events = list(table_events(read_table(schema, path), ReplayOptions()).events)
    ends = window_end_rows(len(taxi), 6)
    assert [e.label for e in events] == taxi["label"].to_numpy()[ends].tolist()


@pytest.mark.data
def test_a_window_too_large_for_a_message_is_refused_before_any_event(tmp_path: Path) -> None:
    bearings = bearing_frame(rows=3000)
    path = tmp_path / "bearings.csv"
    bearings.to_csv(path, index=False)
    table = read_table(bearing_schema(), path)
    with pytest.raises(ConfigurationError, match="4,096 values"):
        table_events(table, ReplayOptions(window=2049))  # 2 channels: 4,098 values


# -- windows --------------------------------------------------------------------------------------
@pytest.mark.data
def test_rows_of_samples_are_beats_with_exact_values(tmp_path: Path) -> None:
    path = ecg_rows(tmp_path)
    values, labels = read_ecg(path)
    events = list(table_events(read_table(load_schema("ecg5000"), path), ReplayOptions()).events)
    assert len(events) == len(values)
    for row, (event, beat_values, label) in enumerate(zip(events, values, labels, strict=True)):
        beat = decode_ecg_beat(event.value)
        assert event.key == beat.record.encode() == f"ecg.csv-{row:05d}".encode()
        assert np.array_equal(np.array(beat.values), beat_values)  # bit-exact through JSON
        assert event.label == ("normal" if label == 1 else "anomaly")
    with pytest.raises(ConfigurationError, match="series"):
        table_events(read_table(load_schema("ecg5000"), path), ReplayOptions(window=8))


def test_a_value_json_cannot_carry_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "toy.csv"
    path.write_text("x,y\n1,2\ninf,3\n")
    # Refused as the file is read: replay and training share one rule (issue 28: training took it).
    with pytest.raises(DatasetFormatError, match=r"column 'x', row 2: inf is not a finite number") as caught:
        read_table(DatasetSchema(name="toy", features=Features(numeric=["x", "y"])), path)
    assert "\n" not in str(caught.value)


# -- the command line -----------------------------------------------------------------------------
def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_replay_help_lists_the_builtins_and_the_file_form(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["replay", "--help"], capsys)
    assert code == 0
    for word in ("kdd", "ecg", "sensor", "anomstream replay FILE --schema S"):
        assert word in " ".join(out.split()), word


def test_replay_file_without_a_schema_says_how_to_draft_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANOMSTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # nothing may be contacted
    path = tmp_path / "connections.csv"
    path.write_text("a,b\n1,2\n")
    code, _, err = run_cli(["replay", str(path)], capsys)
    assert code == 1
    assert err.count("\n") == 1 and f"anomstream data infer {path}" in err


def test_to_toml_of_a_fixture_schema_reads_back(tmp_path: Path) -> None:
    """The integration tests hand these schemas to the CLI as TOML files."""
    for schema in (kdd_schema(), taxi_schema(), bearing_schema()):
        path = tmp_path / f"{schema.name}.toml"
        path.write_text(to_toml(schema))
        assert load_schema(path) == schema
    assert json.loads(json.dumps(kdd_schema().to_dict()))["key"] == "conn"


@pytest.mark.data
def test_a_series_drift_moves_every_channel_by_its_own_spread(tmp_path: Path) -> None:
    bearings = bearing_frame()
    path = tmp_path / "bearings.csv"
    bearings.to_csv(path, index=False)
    table = read_table(bearing_schema(window=8), path)
    plain = list(table_events(table, ReplayOptions()).events)
    drift = DriftSpec("level", at=60)
    changed = list(table_events(table, ReplayOptions(drift=drift)).events)
    assert [dict(e.headers)[PHASE_HEADER] for e in changed] == [b"before"] * 60 + [b"after"] * (
        len(plain) - 60
    )
    assert [e.value for e in changed[:60]] == [e.value for e in plain[:60]]
    # From the change on, each channel sits 3 of its own standard deviations (rows before the change) up.
    values = bearings[["Bearing 1", "Bearing 2"]].to_numpy()
    first_changed_row = window_end_rows(len(bearings), 8)[60]
    std = values[:first_changed_row].std(axis=0)
    last = np.array(decode_window(changed[-1].value).values).reshape(8, 2)
    np.testing.assert_allclose(last, values[-8:] + 3.0 * std)


@pytest.mark.data
def test_pacing_by_time_needs_a_timestamp(tmp_path: Path) -> None:
    connections = kdd_connections(n=10)
    path = tmp_path / "connections.csv"
    connections.to_csv(path, index=False)
    settings = Settings(bootstrap_servers="127.0.0.1:9")  # never reached: refused before
    with pytest.raises(ConfigurationError, match=r"has no \[timestamp\]: use --rate"):
        replay_table(settings, kdd_schema(), str(path), ReplayOptions(speedup=10.0))
    with pytest.raises(ConfigurationError, match="not both"):
        replay_table(settings, kdd_schema(), str(path), ReplayOptions(speedup=10.0, rate=5.0))


@pytest.mark.data
def test_keyed_series_of_unequal_length_each_replay_every_window(tmp_path: Path) -> None:
    """A series schema's key splits the file into sensors: here two bearings as two machines, the
    second with fewer rows; both send every window, interleaved while both have one."""
    bearings = bearing_frame()
    one = bearings[["time", "Bearing 1"]].rename(columns={"Bearing 1": "vibration"}).assign(machine="m1")
    two = bearings[["time", "Bearing 2"]].rename(columns={"Bearing 2": "vibration"}).assign(machine="m2")
    path = tmp_path / "machines.csv"
    pd.concat([one, two.iloc[:120]]).to_csv(path, index=False)
    schema = DatasetSchema(
        name="machines", kind="series", key="machine", timestamp=Timestamp(column="time"),
        series=Series(values=["vibration"], window=8, stride=2),
    )  # fmt: skip
    planned = table_events(read_table(schema, path), ReplayOptions())
    events = list(planned.events)
    counts = [len(window_end_rows(rows, 8, 2)) for rows in (len(one), 120)]
    assert len(events) == planned.count == sum(counts)
    assert [e.key for e in events[:4]] == [b"m1", b"m2", b"m1", b"m2"]
    assert [e.key for e in events[-3:]] == [b"m1"] * 3  # m2 has ended
    for key, column, count in ((b"m1", "Bearing 1", counts[0]), (b"m2", "Bearing 2", counts[1])):
        mine = [decode_window(e.value) for e in events if e.key == key]
        expected = sliding_windows(bearings[column].to_numpy()[: len(one) if key == b"m1" else 120], 8, 2)
        assert [w.values for w in mine] == expected.tolist() and len(mine) == count
    ends = [decode_window(e.value).end for e in events]
    assert planned.times is not None and ends == iso_times(planned.times)  # paced in event order
    with pytest.raises(ConfigurationError, match="equal length"):
        table_events(read_table(schema, path), ReplayOptions(drift=DriftSpec("level", at=10)))
