"""Rows no detector can use (an ``inf``, an empty feature or label cell) are refused in one line that
names the file, the column and the file's row, or left out under ``[features] missing = "drop"``;
either way no model is fitted on them. Row numbers and event ids count the file's rows, whatever was
dropped before them.

Issue 28: a training file with a literal ``inf`` gave ``loss nan``, ``quantile threshold nan`` and
exit 0; "row 2945" named data row 2947; the last key of a 9,971-row file was ``...-0009961``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.training.schema_data import schema_training_data
from producers.table import ReplayOptions, table_events
from stream.datasets import DatasetFormatError
from stream.datasets.schema import DatasetSchema, Features, Label, Timestamp
from stream.datasets.table import read_table
from tests.support import require_data

ROWS = 600


def _connections(folder: Path, cells: dict[tuple[int, str], str]) -> Path:
    """The first ROWS rows of NSL-KDD's 20% training file as a CSV with a header, ``cells`` (file row,
    1-based; column) replaced by text."""
    source = require_data("nslkdd", "KDDTrain+_20Percent.txt")
    frame = pd.read_csv(source, header=None, nrows=ROWS).iloc[:, [0, 4, 5, 22, 23, 41]]
    frame.columns = ["duration", "src_bytes", "dst_bytes", "count", "srv_count", "label"]
    frame = frame.astype(object)
    for (row, column), text in cells.items():
        frame.loc[row - 1, column] = text
    path = folder / "connections.csv"
    frame.to_csv(path, index=False)
    return path


def _schema(missing: str = "error") -> DatasetSchema:
    return DatasetSchema(
        name="connections",
        features=Features(numeric=["duration", "src_bytes", "dst_bytes", "count", "srv_count"],
                          missing=missing),  # type: ignore[arg-type]
        label=Label(column="label", normal=["normal"]),
    )  # fmt: skip


@pytest.mark.data
def test_training_refuses_an_inf_naming_file_column_and_file_row(tmp_path: Path) -> None:
    path = _connections(tmp_path, {(3, "duration"): "", (47, "src_bytes"): "inf"})
    with pytest.raises(DatasetFormatError) as caught:
        schema_training_data(_schema(), path)
    line = str(caught.value)
    # The empty cell on row 3 comes first; both rows are counted.
    assert str(path) in line and "column 'duration', row 3: the cell is empty (2 rows like it" in line
    assert "\n" not in line and 'missing = "drop"' in line
    only_inf = _connections(tmp_path, {(47, "src_bytes"): "inf"})
    with pytest.raises(DatasetFormatError, match=r"column 'src_bytes', row 47: inf is not a finite number"):
        schema_training_data(_schema(), only_inf)


@pytest.mark.data
def test_an_empty_label_is_refused_not_read_as_an_anomaly_named_nan(tmp_path: Path) -> None:
    path = _connections(tmp_path, {(9, "label"): ""})
    with pytest.raises(DatasetFormatError, match=r"column 'label', row 9: the label is empty"):
        read_table(_schema(), path)


@pytest.mark.data
def test_drop_leaves_the_unusable_rows_out_of_training(tmp_path: Path) -> None:
    bad = {(5, "duration"): "inf", (6, "dst_bytes"): "-inf", (7, "count"): "", (8, "label"): ""}
    path = _connections(tmp_path, bad)
    data = schema_training_data(_schema("drop"), path)
    labels = pd.read_csv(path)["label"]
    normal = int((labels == "normal").sum()) - int((labels.iloc[[4, 5, 6]] == "normal").sum())
    assert data.description["normal_rows"] == normal
    for part in (data.fit, data.early_stop, data.calibration):
        assert np.isfinite(part).all()


def test_row_numbers_and_event_ids_count_the_files_rows_after_dropped_rows(tmp_path: Path) -> None:
    lines = ["time,x,label"] + [f"2024-01-01 00:{i:02d}:00,{i},ok" for i in range(10)]
    lines[3] = "2024-01-01 00:02:00,,ok"  # data row 3: dropped
    lines[4] = "2024-01-01 00:03:00,inf,ok"  # data row 4: dropped
    path = tmp_path / "toy.csv"
    path.write_text("\n".join(lines) + "\n")
    schema = DatasetSchema(name="toy", features=Features(numeric=["x"], missing="drop"),
                           label=Label(column="label", normal=["ok"]))  # fmt: skip
    table = read_table(schema, path)
    keys = [event.key.decode() for event in table_events(table, ReplayOptions()).events]
    assert keys[:3] == ["toy.csv-0-0000000", "toy.csv-0-0000001", "toy.csv-0-0000004"]
    assert keys[-1] == "toy.csv-0-0000009", "the last row keeps its position in the file"

    lines[8] = ",7,ok"  # data row 8 has no time: named as row 8, not 6
    path.write_text("\n".join(lines) + "\n")
    timed = schema.model_copy(update={"timestamp": Timestamp(column="time", format="%Y-%m-%d %H:%M:%S")})
    with pytest.raises(DatasetFormatError, match=r"column 'time', row 8 has no time"):
        read_table(timed, path)
