"""A file that disagrees with its dataset schema is refused in one line that says what to fix, before
anything is published: by the reader, and by ``anomstream replay FILE --schema S`` (no broker needed:
the file is checked first). The integration tests check that nothing reached the topic."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from anomstream.cli import main
from stream.datasets import DatasetFormatError
from stream.datasets.schema import (
    DatasetSchema,
    Features,
    Label,
    SchemaError,
    Timestamp,
    load_schema,
    to_toml,
)
from stream.datasets.table import read_table
from tests.support import require_data

# The real series the bad files are made from: NAB's nyc_taxi, first rows.
ROWS = 50


def taxi_lines() -> list[str]:
    path = require_data("nab", "data", "realKnownCause", "nyc_taxi.csv")
    return path.read_text().splitlines()[: ROWS + 1]


def taxi_schema(**changes: object) -> DatasetSchema:
    values: dict[str, object] = {
        "name": "taxi",
        "timestamp": Timestamp(column="timestamp", format="%Y-%m-%d %H:%M:%S"),
        "features": Features(numeric=["value"]),
    }
    return DatasetSchema.model_validate(values | changes)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def with_cell(lines: list[str], row: int, column: int, text: str) -> list[str]:
    """``lines`` with the cell at data row ``row`` (1-based), ``column`` replaced by ``text``."""
    out = list(lines)
    cells = out[row].split(",")
    cells[column] = text
    out[row] = ",".join(cells)
    return out


def labelled(lines: list[str], label: str) -> list[str]:
    return [lines[0] + ",label", *(f"{line},{label}" for line in lines[1:])]


def bad_files(folder: Path) -> list[tuple[str, Path, DatasetSchema, str]]:
    """(what, file, schema, what the one line must say) for every way a file can disagree."""
    lines = taxi_lines()
    return [
        ("missing column", write(folder / "renamed.csv", ["timestamp,count", *lines[1:]]), taxi_schema(),
         r"no column 'value' \(named by schema 'taxi'\); the file has: timestamp, count"),
        ("not a number", write(folder / "text.csv", with_cell(lines, 7, 1, "twelve")), taxi_schema(),
         r"column 'value', row 7: 'twelve' is not a number"),
        ("empty cell", write(folder / "gap.csv", with_cell(lines, 4, 1, "")), taxi_schema(),
         r"column 'value', row 4: the cell is empty \(1 rows like it in all\): fix them, or set "
         r"\[features\] missing"),
        ("not a time", write(folder / "time.csv", with_cell(lines, 3, 0, "yesterday")), taxi_schema(),
         r"column 'timestamp' is not a time in format '%Y-%m-%d %H:%M:%S'"),
        ("no normal label", write(folder / "labels.csv", labelled(lines, "bad")),
         taxi_schema(label=Label(column="label", normal=["ok"])),
         r"no row of label column 'label' has a normal value \['ok'\]; its values include 'bad'"),
        ("empty file", write(folder / "empty.csv", []), taxi_schema(), r"empty\.csv is empty"),
        ("header only", write(folder / "header.csv", lines[:1]), taxi_schema(), r"header\.csv has no rows"),
    ]  # fmt: skip


@pytest.fixture
def cases(tmp_path: Path) -> list[tuple[str, Path, DatasetSchema, str]]:
    return bad_files(tmp_path)


@pytest.mark.data
def test_each_disagreement_is_one_line_that_says_what_to_fix(cases: list) -> None:
    for what, path, schema, says in cases:
        with pytest.raises(DatasetFormatError, match=says) as caught:
            read_table(schema, path)
        assert "\n" not in str(caught.value), what
        assert str(path) in str(caught.value), what  # which file


@pytest.mark.data
def test_replay_refuses_a_bad_file_in_one_line_before_any_broker(
    cases: list, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No broker answers here: the refusal comes from the file, before a broker is asked anything.
    monkeypatch.setenv("ANOMSTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    for what, path, schema, says in cases:
        schema_path = tmp_path / f"{path.stem}.toml"
        schema_path.write_text(to_toml(schema))
        with pytest.raises(SystemExit) as exited:
            main(["replay", str(path), "--schema", str(schema_path)])
        _, err = capsys.readouterr()
        assert exited.value.code == 1, what
        assert err.startswith("error: ") and err.count("\n") == 1, (what, err)
        assert pd.Series([err]).str.contains(says).all(), (what, err)


def test_a_schema_that_does_not_validate_is_one_line(tmp_path: Path) -> None:
    problems = {
        "toml": ('name = "x"\nkind = ', "not a readable TOML schema"),
        "unknown": ('name = "x"\ncolour = "red"\n[features]\nnumeric = ["a"]\n', "colour: Extra inputs"),
        "series": ('name = "x"\nkind = "series"\n', r"needs a \[series\] table"),
        "reserved": ('name = "alerts"\n[features]\nnumeric = ["a"]\n', "reserved topic name"),
        "two roles": ('name = "x"\nkey = "a"\n[features]\nnumeric = ["a"]\n', "two roles"),
    }
    for stem, (text, says) in problems.items():
        path = tmp_path / f"{stem}.toml"
        path.write_text(text)
        with pytest.raises(SchemaError, match=says) as caught:
            load_schema(path)
        assert "\n" not in str(caught.value) and str(path) in str(caught.value), stem
    with pytest.raises(SchemaError, match="data infer"):
        load_schema(tmp_path / "nowhere.toml")
