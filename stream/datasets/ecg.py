"""ECG5000 readers: the TensorFlow tutorial's ``ecg.csv`` and the UCR ``.txt`` / ``.arff`` / ``.ts`` files.

``ecg.csv[.gz]`` and the UCR ``.txt`` / ``.tsv`` are rows of a table, one beat per row, and are read
through their built-in dataset schemas (``ecg5000``, ``ecg5000-ucr``) by the reader of a user's own
file. The ``.arff`` and ``.ts`` files are not: a header section, then ``@data`` lines (``.ts`` with
its class after a colon), so they keep parsers of their own.

Every reader returns ``(values, labels)``: ``values`` float64 of shape (n, 140), one beat per row,
and ``labels`` int8 of shape (n,) in the UCR convention, 1 = normal beat, 2-5 = the UCR abnormal
classes; ``ecg.csv`` folds the four abnormal classes into one, which is read as 0 ("abnormal, class
unknown"). So ``labels != ECG_NORMAL`` is the anomaly mask for every format.

For example::

    values, labels = read_ecg(find_ecg_file(Path("../shared/data")))
    values.shape, int((labels == ECG_NORMAL).sum())
    # -> ((4998, 140), 2919)
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

from stream.datasets.files import DatasetFormatError, find_named_file
from stream.datasets.schema import load_schema
from stream.datasets.table import read_table

ECG_NORMAL = 1
ECG_BEAT_LENGTH = 140

# Logical names -> file names tried in order, inside DATA_DIR/ecg5000 and DATA_DIR.
ECG_FILES: dict[str, tuple[str, ...]] = {
    "csv": ("ecg.csv.gz", "ecg.csv"),
    "train": ("ECG5000_TRAIN.txt", "ECG5000_TRAIN.ts", "ECG5000_TRAIN.arff", "ECG5000_TRAIN.tsv"),
    "test": ("ECG5000_TEST.txt", "ECG5000_TEST.ts", "ECG5000_TEST.arff", "ECG5000_TEST.tsv"),
}


def find_ecg_file(data_dir: Path, which: str = "csv") -> Path:
    """Locate an ECG5000 file by logical name (``csv``, ``train``, ``test``) or path."""
    return find_named_file(
        data_dir, which, ECG_FILES, ("ecg5000",), "ECG5000",
        "Run `anomstream data fetch ecg`, or set ANOMSTREAM_DATA_DIR to the folder that holds ecg5000/.",
    )  # fmt: skip


def _read_text(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return handle.read()


def _split_label(table: np.ndarray, label_first: bool) -> tuple[np.ndarray, np.ndarray]:
    labels = table[:, 0] if label_first else table[:, -1]
    values = table[:, 1:] if label_first else table[:, :-1]
    return np.ascontiguousarray(values, dtype=np.float64), labels


def _ucr_labels(labels: np.ndarray) -> np.ndarray:
    classes = np.rint(labels.astype(np.float64))
    if not np.all(np.isin(classes, [1, 2, 3, 4, 5])):
        raise ValueError(f"UCR ECG5000 classes must be 1-5, found {sorted(set(classes.tolist()))}")
    return classes.astype(np.int8)


def read_ecg(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read any ECG5000 file by its name: ``*.csv[.gz]``, ``*.txt``/``*.tsv``, ``*.arff``, ``*.ts``."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        # TensorFlow's ecg.csv: 140 values then 1.0 (normal) / 0.0 (abnormal).
        values, flags = _read_rows(path, "ecg5000")
        if not np.all(np.isin(flags, [0.0, 1.0])):
            raise ValueError(f"{path}: the last column must be 1.0 (normal) or 0.0 (abnormal)")
        labels = np.where(flags == 1.0, ECG_NORMAL, 0).astype(np.int8)
        return _checked(path, values, labels)
    if name.endswith((".txt", ".tsv")):
        values, labels = _read_rows(path, "ecg5000-ucr")
        return _checked(path, values, _ucr_labels(labels))
    if name.endswith(".arff"):
        rows = _data_section(_read_text(path), "@data")
        values, labels = _split_label(np.loadtxt(io.StringIO(rows), delimiter=",", ndmin=2), False)
    elif name.endswith(".ts"):
        # sktime/aeon .ts: one series per line, values comma-separated, then ":<class>".
        rows = _data_section(_read_text(path), "@data").replace(":", ",")
        values, labels = _split_label(np.loadtxt(io.StringIO(rows), delimiter=",", ndmin=2), False)
    else:
        raise ValueError(f"{path}: unknown ECG5000 format; expected .csv[.gz], .txt, .tsv, .arff or .ts")
    return _checked(path, values, _ucr_labels(labels))


def _read_rows(path: Path, schema_name: str) -> tuple[np.ndarray, np.ndarray]:
    """The beats and the label column of a file that is one beat per row, read through its schema."""
    schema = load_schema(schema_name)
    sep = r"\s+" if schema.source.delimiter == "whitespace" else schema.source.delimiter
    try:
        # The width first: a row of another length is "not 140 values", not "no column '140'".
        width = pd.read_csv(path, sep=sep, header=None, nrows=1, compression="infer").shape[1]
    except (ValueError, UnicodeDecodeError, OSError, EOFError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DatasetFormatError(f"{path} is not an ECG5000 file: {reason}") from None
    if width != ECG_BEAT_LENGTH + 1:
        raise DatasetFormatError(
            f"{path}: expected {ECG_BEAT_LENGTH} values per beat and its class, got {width} columns"
        )
    assert schema.label is not None  # both ECG schemas name their class column
    table = read_table(schema, path)
    flags = pd.to_numeric(pd.Series(table.labels)).to_numpy(dtype=np.float64)
    return np.ascontiguousarray(table.numeric()), flags


def _checked(path: Path, values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if values.shape[1] != ECG_BEAT_LENGTH:
        raise ValueError(f"{path}: expected {ECG_BEAT_LENGTH} values per beat, got {values.shape[1]}")
    return values, labels


def _data_section(text: str, marker: str) -> str:
    """The lines after the (case-insensitive) ``@data`` line, without comments and blank lines."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().lower() == marker]
    if not starts:
        raise ValueError(f"no {marker} line found")
    body = (line.strip() for line in lines[starts[0] + 1 :])
    return "\n".join(line for line in body if line and not line.startswith(("%", "#")))
