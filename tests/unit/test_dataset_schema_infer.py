"""``anomstream data infer FILE``: a draft schema of a CSV, Parquet or JSON-lines file written from the
real data, that reads its file back and replays it; written next to where the user is, printed for
them to check, never over a file without ``--force``."""

from __future__ import annotations

from pathlib import Path

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
        assert schema.label.normal == [sample["label"].mode()[0]]  # the most frequent label
        assert set(varied) <= set(schema.features.numeric) <= set(KDD_NUMERIC)
        assert "protocol_type" in schema.features.categorical
        assert set(schema.features.categorical) <= set(KDD_CATEGORICAL)
        assert "(constant)" in notes[""] or len(varied) == len(KDD_NUMERIC)
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
