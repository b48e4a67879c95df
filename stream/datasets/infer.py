"""``anomstream data infer FILE``: a draft dataset schema from a sample of the file, for the user to check.

The draft is a guess from the first rows and says so: a column of numbers is a numeric feature, a
column of few distinct words a categorical one, a column named like a time (or whose text parses as
times) the timestamp, a column named like ground truth (``label``, ``class``, ``is_anomaly``, ...)
the label with its most frequent value as the normal one. A time series (a timestamp and at most a
few numeric columns, nothing categorical) becomes ``kind = "series"``.

For example::

    schema, notes = infer_schema(Path("seattle-weather.csv"))
    schema.kind, schema.timestamp.column, schema.features.categorical
    # -> ('records', 'date', ['weather'])
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from pathlib import Path

import pandas as pd

from stream.datasets.files import DatasetFormatError, DatasetMissingError
from stream.datasets.schema import (
    NAME_PATTERN,
    RESERVED_NAMES,
    DatasetSchema,
    Features,
    Label,
    Series,
    Source,
    Timestamp,
)

SAMPLE_ROWS = 10_000
TIME_NAMES = re.compile(r"^(timestamp|time|date|datetime|ts|event_time|when|.*_(time|date|at))$", re.I)
LABEL_NAMES = re.compile(r"^(label|labels|class|target|y|outcome|is_anomaly|anomaly|is_attack|attack)$", re.I)
KEY_NAMES = re.compile(r"^(id|key|.*_id|host|device|sensor|machine|symbol|station)$", re.I)
MAX_CATEGORIES = 50
MAX_SERIES_VALUES = 8
# Common time formats tried in order, so the draft pins one instead of leaving pandas to guess.
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%Y/%m/%d %H:%M", "%Y/%m/%d",
                "%Y/%m/%d %H:%M:%S", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M", "%d.%m.%Y %H:%M")  # fmt: skip


def source_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


def _sniff_csv(path: Path) -> tuple[str, bool]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        sample = handle.read(64_000)
    if not sample.strip():
        raise DatasetFormatError(f"{path} is empty: there is nothing to infer a schema from")
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = "whitespace" if "," not in sample and len(sample.split()) > 1 else ","
    try:
        header = csv.Sniffer().has_header(sample)
    except csv.Error:
        header = True
    return delimiter, header


def _sample(path: Path, source: Source) -> pd.DataFrame:
    compression = "gzip" if path.suffix == ".gz" else None
    if source.format == "parquet":
        return pd.read_parquet(path).head(SAMPLE_ROWS)
    if source.format == "jsonl":
        return pd.read_json(path, lines=True, nrows=SAMPLE_ROWS, compression=compression, dtype=False)
    sep = r"\s+" if source.delimiter == "whitespace" else source.delimiter
    frame = pd.read_csv(path, sep=sep, header=0 if source.header else None, nrows=SAMPLE_ROWS,
                        compression=compression, skipinitialspace=True, index_col=False)  # fmt: skip
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _time_format(column: pd.Series) -> str | None | bool:
    """A format every sampled value parses with, None (ISO 8601 works), or False: not times."""
    text = column.dropna().astype(str)
    if text.empty or column.dtype.kind in "iufb":
        return False
    for fmt in TIME_FORMATS:
        try:
            pd.to_datetime(text, format=fmt)
        except (ValueError, TypeError):
            continue
        return fmt
    try:
        pd.to_datetime(text, format="ISO8601")
    except (ValueError, TypeError):
        return False
    return None


def _stream_name(path: Path) -> str:
    stem = path.name.split(".")[0].lower()
    name = re.sub(r"[^a-z0-9_-]+", "-", stem).strip("-_") or "dataset"
    name = name[:48]
    if name in RESERVED_NAMES or not re.match(NAME_PATTERN, name):
        name = f"data-{name}"[:48]
    return name


def _path_from(path: Path, schema_dir: Path | None) -> str:
    if schema_dir is None:
        return str(path.resolve())
    return os.path.relpath(path.resolve(), Path(schema_dir).resolve())


def infer_schema(
    path: Path, name: str | None = None, schema_dir: Path | None = None
) -> tuple[DatasetSchema, dict[str, str]]:
    """A draft schema of ``path`` and notes for each of its tables (what was guessed, and from what).

    ``source.path`` is relative to ``schema_dir`` (the folder the schema is written to), so a folder
    holding both files can move; absolute without it.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetMissingError(f"{path} does not exist: give a CSV, Parquet or JSON-lines file")
    fmt = source_format(path)
    source = Source(format=fmt)  # type: ignore[arg-type]
    if fmt == "csv":
        delimiter, header = _sniff_csv(path)
        source = Source(format="csv", delimiter=delimiter, header=header)
    try:
        frame = _sample(path, source)
    except (ValueError, UnicodeDecodeError, OSError, EOFError, ImportError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DatasetFormatError(f"{path}: cannot read it as {fmt}: {reason}") from None
    if frame.empty:
        raise DatasetFormatError(f"{path} has no rows: there is nothing to infer a schema from")
    notes: dict[str, str] = {}
    timestamp = label = key = None
    numeric: list[str] = []
    categorical: list[str] = []
    ignored: list[str] = []
    for column in frame.columns:
        values = frame[column]
        distinct = values.nunique(dropna=True)
        time_format = _time_format(values) if timestamp is None else False
        if timestamp is None and time_format is not False and (TIME_NAMES.match(column) or distinct > 1):
            timestamp = Timestamp(column=column, format=time_format if isinstance(time_format, str) else None)
        elif label is None and LABEL_NAMES.match(column) and distinct <= MAX_CATEGORIES:
            common = values.astype(str).value_counts().index[0]
            label = Label(column=column, normal=[common])
        elif values.dtype.kind in "iufb":
            if distinct <= 1:
                ignored.append(f"{column} (constant)")
            else:
                numeric.append(column)
        elif key is None and KEY_NAMES.match(column):
            key = column
        elif distinct <= MAX_CATEGORIES:
            categorical.append(column)
        else:
            ignored.append(f"{column} ({distinct:,} distinct values in the sample: not a category)")
    as_series = timestamp is not None and not categorical and 0 < len(numeric) <= MAX_SERIES_VALUES
    rows = len(frame)
    notes[""] = (
        f"Draft dataset schema of {path.name}, inferred by `anomstream data infer` from its first {rows:,} "
        "rows.\nCheck every guess below before you replay or train: types, the label's normal value(s), "
        "the time format.\nReference: docs/own-data.md; its JSON Schema: "
        "stream/schemas/dataset-schema.schema.json"
    )
    if ignored:
        notes[""] += "\nColumns left out: " + "; ".join(ignored)
    kind = "series" if as_series else "records"
    schema_data: dict[str, object] = {
        "name": name or _stream_name(path),
        "kind": kind,
        "source": source.model_copy(update={"path": _path_from(path, schema_dir)}),
        "timestamp": timestamp,
        "key": key,
        "label": label,
    }
    if as_series:
        schema_data["series"] = Series(values=numeric, window=16, stride=1)
        notes["series"] = (
            f"A time series: {len(numeric)} value column(s) under one timestamp. Windows of 16 rows, one "
            "message per row;\nmultivariate = true scores all values in one window, false one series each."
        )
    else:
        schema_data["features"] = Features(numeric=numeric, categorical=categorical)
        notes["features"] = (
            "Numeric columns are min-max scaled on training rows; categorical ones one-hot encoded.\n"
            "List heavy-tailed counts (bytes, durations) under log = [...] to compress them first."
        )
    if label is not None:
        notes["label"] = (
            f"Guessed: the most frequent value of {label.column!r} in the sample is normal; every other "
            "value is an anomaly."
        )
    if timestamp is not None:
        notes["timestamp"] = f"Every sampled value of {timestamp.column!r} parses as a time" + (
            f" in format {timestamp.format!r}." if timestamp.format else " (ISO 8601)."
        )
    return DatasetSchema.model_validate(schema_data), notes
