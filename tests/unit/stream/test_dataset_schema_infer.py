"""``anomstream data infer FILE``: a draft schema of a CSV, Parquet or JSON-lines file written from the
real data, that reads its file back and replays it; written next to where the user is, printed for
them to check, never over a file without ``--force``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomstream.cli import main
from producers.table import ReplayOptions, table_events
from stream.datasets import DatasetFormatError, find_kdd_file, read_kdd
from stream.datasets.infer import infer_schema
from stream.datasets.schema import load_schema, to_toml
from stream.datasets.table import read_table
from stream.messages import KDD_CATEGORICAL, KDD_NUMERIC
from tests.support import require_data

ROWS = 400


def taxi_frame() -> pd.DataFrame:
    """The first rows of NAB's nyc_taxi, as the file has them (time as text)."""
    return pd.read_csv(require_data("nab", "data", "realKnownCause", "nyc_taxi.csv"), nrows=ROWS)


def connections() -> pd.DataFrame:
    """A seeded sample of real KDD ``corrected`` connections, with an id column."""
    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "test"))
    sample = frame.sample(n=ROWS, random_state=3)
    return sample.assign(conn_id=[f"c{row}" for row in sample.index]).reset_index(drop=True)


def replayable(path: Path, rows: int) -> None:
    """The draft reads back equal, reads its file, and makes one event per row or window."""
    schema, notes = infer_schema(path)
    toml = path.with_suffix(".toml")
    toml.write_text(to_toml(schema, notes))
    assert load_schema(toml) == schema
    table = read_table(schema, path)
    assert len(table) == rows
    planned = table_events(table, ReplayOptions())
    assert len(list(planned.events)) == planned.count > 0


@pytest.mark.data
def test_a_series_in_csv_and_parquet(tmp_path: Path) -> None:
    taxi = taxi_frame()
    csv, parquet, parsed = tmp_path / "taxi.csv", tmp_path / "taxi.parquet", tmp_path / "times.parquet"
    taxi.to_csv(csv, index=False)
    taxi.to_parquet(parquet)
    taxi.assign(timestamp=pd.to_datetime(taxi["timestamp"])).to_parquet(parsed)  # a real time column
    for path in (csv, parquet, parsed):
        schema, notes = infer_schema(path)
        assert schema.source.format == path.suffix.lstrip(".")
        assert schema.kind == "series" and schema.series is not None, path.name
        assert schema.series.values == ["value"] and schema.timestamp is not None
        assert schema.timestamp.column == "timestamp"
        assert "timestamp" in notes and "series" in notes
        replayable(path, ROWS)


@pytest.mark.data
def test_records_in_jsonl_and_parquet(tmp_path: Path) -> None:
    sample = connections()
    jsonl, parquet = tmp_path / "connections.jsonl.gz", tmp_path / "connections.parquet"
    sample.to_json(jsonl, orient="records", lines=True)
    sample.to_parquet(parquet)
    varied = [name for name in KDD_NUMERIC if sample[name].nunique() > 1]
    for path in (jsonl, parquet):
        schema, notes = infer_schema(path)
        assert schema.name == "connections" and schema.kind == "records"
        assert schema.key == "conn_id"
        assert schema.label is not None and schema.label.column == "label"
        # Named normal, though smurf is the most frequent label (issue 28: frequency guessed backwards).
        assert sample["label"].mode()[0] != "normal" and schema.label.normal == ["normal"]
        assert set(varied) <= set(schema.features.numeric) <= set(KDD_NUMERIC)
        assert "protocol_type" in schema.features.categorical
        assert set(schema.features.categorical) <= set(KDD_CATEGORICAL)
        assert ": constant" in notes[""] or len(varied) == len(KDD_NUMERIC)
        replayable(path, ROWS)


def test_an_empty_file_has_nothing_to_infer(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DatasetFormatError, match="is empty") as caught:
        infer_schema(path)
    assert "\n" not in str(caught.value)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.mark.data
def test_data_infer_writes_prints_and_never_overwrites_unasked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    csv = data / "taxi.csv.gz"
    taxi_frame().to_csv(csv, index=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    code, out, err = run_cli(["data", "infer", str(csv)], capsys)
    written = work / "taxi.schema.toml"  # the file's stem, in the current folder
    assert code == 0 and written.read_text() == out  # printed as written
    assert load_schema(written).kind == "series"
    assert "Check every guess" in err and f"anomstream replay {csv} --schema taxi.schema.toml" in err
    assert err.count("\n") == 1

    written.write_text("# edited by hand\n" + out)
    code, out, err = run_cli(["data", "infer", str(csv)], capsys)
    assert code == 1 and out == "" and err.count("\n") == 1 and "--force" in err
    assert written.read_text().startswith("# edited by hand")  # untouched

    code, out, _ = run_cli(["data", "infer", str(csv), "--force", "--name", "cabs"], capsys)
    assert code == 0 and load_schema(written).name == "cabs"
    code, _, _ = run_cli(["data", "infer", str(csv), "--out", str(tmp_path / "elsewhere.toml")], capsys)
    assert code == 0 and load_schema(tmp_path / "elsewhere.toml") == load_schema(written).model_copy(
        update={"name": "taxi"}
    )

    for args, says in (
        (["--name", "Not A Name"], "--name 'Not A Name'"),
        (["--out", str(tmp_path / "no" / "such.toml")], "is not a folder"),
    ):
        code, out, err = run_cli(["data", "infer", str(csv), *args], capsys)
        assert code == 1 and says in err and err.count("\n") == 1, args
    code, _, err = run_cli(["data", "infer", str(tmp_path / "missing.csv")], capsys)
    assert code == 1 and "missing.csv does not exist" in err and err.count("\n") == 1


# -- issue 28: drafts a user can accept as they are ----------------------------------------------------
def _blocks(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """Real connections with a 0/1 label (1: attack) whose first 10,000 rows are mostly attacks, a
    counter id, an attack category that restates the label, and a constant column."""
    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "train"), limit=60_000)
    frame = frame.sample(n=24_000, random_state=5)
    frame["is_attack"] = (frame["label"] != "normal").astype(int)
    frame = frame.sort_values("is_attack", ascending=False, kind="stable")  # attacks first
    columns = ["duration", "src_bytes", "dst_bytes", "count", "srv_count", "protocol_type", "is_attack"]
    frame = frame[columns].assign(site="lab")
    frame["category"] = np.where(frame["is_attack"] == 1, "dos-or-probe", "benign-traffic")
    frame.insert(0, "id", np.arange(len(frame)))
    path = tmp_path / "blocks.csv"
    frame.to_csv(path, index=False)
    return path, frame


@pytest.mark.data
def test_the_normal_label_is_recognised_by_value_not_frequency_across_the_whole_file(tmp_path: Path) -> None:
    path, frame = _blocks(tmp_path)
    assert frame["is_attack"].iloc[:10_000].mean() > 0.5, "the head is mostly attacks"
    schema, notes = infer_schema(path)
    assert schema.label is not None and schema.label.column == "is_attack"
    assert schema.label.normal == ["0"] and notes["label"].startswith("Sure: '0' means normal")
    # Left out, each with its reason in the draft.
    assert "id" not in schema.features.numeric and "id: a row counter" in notes[""]
    assert "category: restates the label" in notes[""]
    assert "site: constant" in notes[""]
    assert set(schema.features.numeric) == {"duration", "src_bytes", "dst_bytes", "count", "srv_count"}
    assert schema.features.categorical == ["protocol_type"]


def test_a_label_with_no_value_named_normal_is_guessed_by_frequency_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "colours.csv"
    rows = ["x,class"] + [f"{i % 7},{'red' if i % 5 else 'blue'}" for i in range(200)]
    path.write_text("\n".join(rows) + "\n")
    schema, notes = infer_schema(path)
    assert schema.label is not None and schema.label.normal == ["red"]
    assert notes["label"].startswith("UNSURE, check it")


@pytest.mark.data
def test_a_counter_named_timestamp_makes_a_series_and_a_pump_s_changepoint_is_left_out(
    tmp_path: Path,
) -> None:
    taxi = taxi_frame()
    counted = tmp_path / "counted.csv"
    taxi.assign(timestamp=np.arange(len(taxi))).to_csv(counted, index=False)
    schema, notes = infer_schema(counted)
    assert schema.kind == "series" and schema.timestamp is not None
    assert (schema.timestamp.column, schema.timestamp.format) == ("timestamp", "unix")
    replayable(counted, ROWS)

    pump = tmp_path / "pump.csv"
    flags = (np.arange(len(taxi)) > 300).astype(int)
    taxi.assign(anomaly=flags, changepoint=(np.arange(len(taxi)) == 301).astype(int)).to_csv(
        pump, index=False
    )
    schema, notes = infer_schema(pump)
    assert schema.kind == "series" and schema.series is not None and schema.series.values == ["value"]
    assert schema.label is not None and schema.label.column == "anomaly" and schema.label.normal == ["0"]
    assert "changepoint: named like ground truth" in notes[""]


@pytest.mark.data
def test_a_headerless_column_of_numbers_is_a_series_timed_by_its_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "readings.txt"
    path.write_text("\n".join(str(v) for v in taxi_frame()["value"]) + "\n")
    schema, _ = infer_schema(path)
    assert schema.kind == "series" and schema.timestamp is not None and schema.timestamp.row_number
    assert schema.source.columns == ["value"] and not schema.source.header
    replayable(path, ROWS)
    table = read_table(schema, path)
    assert table.timestamps is not None and str(table.timestamps[3]) == "1970-01-01T00:00:03.000000000"


@pytest.mark.data
def test_a_long_file_name_is_cut_between_words_never_inside_one(tmp_path: Path) -> None:
    stem = "sensor-readings-from-the-north-building-2024-0123456789"
    path = tmp_path / f"{stem}.csv"
    taxi_frame().to_csv(path, index=False)
    schema, _ = infer_schema(path)
    assert len(schema.name) <= 48 and stem.startswith(schema.name)
    assert stem[len(schema.name)] == "-", f"{schema.name!r} ends inside a word"
