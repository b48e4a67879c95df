"""``anomstream data infer FILE``: a draft dataset schema from the file's rows, for the user to check.

The draft is read from rows taken across the whole file (all of them up to ``FULL_READ_ROWS``, else
evenly spaced ones), never its head alone: a file sorted by label or by time looks nothing like its
first rows. What it guesses, and from what:

- the label: a column named like ground truth (``label``, ``class``, ``is_anomaly``, ...); its normal
  value by name and value first (``normal``, ``benign``, ``0``, ``false``, ...), by frequency only when
  no value says so; the draft says which, and so how sure it is;
- left out, each with a comment saying why: columns that restate the label (every value of them goes
  with normal rows only or with anomalous rows only: a detector would learn the answer), other ground
  truth columns (``changepoint``, ``attack_cat``), row counters (whole numbers that grow by row) and
  ids (a distinct value per row), constant columns;
- the time: a column named like a time (or whose text parses as times), or a counter named like one
  (read as seconds); a series whose only clock is a row counter is timed by it;
- the kind: a time, no categorical column and at most ``MAX_SERIES_VALUES`` numeric ones make a
  ``series``; a headerless file of one number per line is a series timed by its row numbers
  (``[timestamp] row_number = true``);
- ``[features] missing = "drop"`` when the rows read hold empty or non-finite cells (said in a note).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, cast

import numpy as np
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
    output_topic_role,
)

SAMPLE_ROWS = 10_000  # rows read across a file longer than FULL_READ_ROWS
FULL_READ_ROWS = 200_000
TIME_NAMES = re.compile(r"^(timestamp|time|date|datetime|ts|event_time|when|.*_(time|date|at))$", re.I)
LABEL_NAMES = re.compile(r"^(label|labels|class|target|y|outcome|is_anomaly|anomaly|is_attack|attack)$", re.I)
# Ground truth that is not the label: a second such column is left out, never scored.
TRUTH_NAMES = re.compile(
    r"^(label.*|.*_label|class|target|outcome|is_anomaly|anomaly|anomalies|is_attack|attack|attack_?(cat|"
    r"category|type|class)|changepoints?|is_changepoint|ground_?truth)$",
    re.I,
)
KEY_NAMES = re.compile(r"^(id|key|.*_id|host|device|sensor|machine|symbol|station)$", re.I)
ID_NAMES = re.compile(r"^(id|idx|index|row|row_?id|row_?num(ber)?|n|no|num|seq|.*_id|unnamed: 0)$", re.I)
# Label values that mean normal by their name; a label named like "normal" says it the other way.
NORMAL_VALUES = {"normal", "benign", "0", "false", "no", "n", "ok", "legitimate", "legit", "good",
                 "negative", "nominal", "clean", "background", "none", "inlier", "regular"}  # fmt: skip
POSITIVE_VALUES = {"1", "true", "yes", "y"}
NORMAL_LABEL_NAMES = re.compile(r"^(is_)?(normal|benign|ok|legit(imate)?)$", re.I)
MAX_CATEGORIES = 50
MAX_CATEGORIES_LARGE = 256
COUNTER = "a row counter: its value is the row's position, not a property of it"
MAX_SERIES_VALUES = 8
NAME_LENGTH = 48
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


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return cast(TextIO, gzip.open(path, "rt", encoding="utf-8", errors="replace"))
    return path.open(encoding="utf-8", errors="replace")


def _sniff_csv(path: Path) -> tuple[str, bool]:
    with _open_text(path) as handle:
        sample = handle.read(64_000)
    if not sample.strip():
        raise DatasetFormatError(f"{path} is empty: there is nothing to infer a schema from")
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = "whitespace" if "," not in sample and len(sample.split()) > 1 else ","
    lines = sample.splitlines()
    if lines and all(_is_number(cell) for cell in re.split(r"[,;\t| ]+", lines[0].strip()) if cell):
        return delimiter, False  # a first line of numbers names no column (the Sniffer says so rarely)
    try:
        header = csv.Sniffer().has_header(sample)
    except csv.Error:
        header = True
    return delimiter, header


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _lines(path: Path) -> int:
    with _open_text(path) as handle:
        return sum(1 for _ in handle)


def _spread(total: int, count: int) -> np.ndarray:
    """``count`` row positions spread evenly over ``total`` rows, first and last included."""
    return np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(np.int64))


def _sample(path: Path, source: Source) -> tuple[pd.DataFrame, int]:
    """Rows taken across the whole file, in file order, and how many data rows the file has."""
    compression = "gzip" if path.suffix == ".gz" else None
    if source.format in ("parquet", "jsonl"):
        if source.format == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=True, compression=compression, dtype=False)
        total = len(frame)
        if total > FULL_READ_ROWS:
            frame = frame.iloc[_spread(total, SAMPLE_ROWS)]
        return frame.reset_index(drop=True), total
    sep = r"\s+" if source.delimiter == "whitespace" else source.delimiter
    skip = int(source.header)
    total = _lines(path) - skip
    keep = None
    if total > FULL_READ_ROWS:
        wanted = set((_spread(total, SAMPLE_ROWS) + skip).tolist()) | set(range(skip))
        keep = wanted.__contains__
    frame = pd.read_csv(path, sep=sep, header=0 if source.header else None, compression=compression,
                        skipinitialspace=True, index_col=False,
                        skiprows=(lambda i: not keep(i)) if keep else None)  # fmt: skip
    frame.columns = [str(c) for c in frame.columns]
    return frame, total


def _time_format(column: pd.Series) -> str | None | bool:
    """A format every sampled value parses with, None (ISO 8601 works), or False: not times."""
    text = column.dropna().astype(str)
    if text.empty or column.dtype.kind in "iufb":
        return False
    text = text.iloc[_spread(len(text), SAMPLE_ROWS)]
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
    """The file's stem as a stream name, cut at a ``-`` or ``_`` (never inside a word or number)."""
    stem = path.name.split(".")[0].lower()
    name = _cut(re.sub(r"[^a-z0-9_-]+", "-", stem).strip("-_") or "dataset")
    if name in RESERVED_NAMES or output_topic_role(name) or not re.match(NAME_PATTERN, name):
        name = _cut(f"data-{name}")
    return name


def _cut(name: str) -> str:
    if len(name) > NAME_LENGTH:
        cut = max(name.rfind("-", 0, NAME_LENGTH + 1), name.rfind("_", 0, NAME_LENGTH + 1))
        name = name[:cut] if cut > 0 else name[:NAME_LENGTH]
    return name.strip("-_")


def _path_from(path: Path, schema_dir: Path | None) -> str:
    if schema_dir is None:
        return str(path.resolve())
    return os.path.relpath(path.resolve(), Path(schema_dir).resolve())


# -- the label ---------------------------------------------------------------------------------------
def _word(value: object) -> str:
    text = str(value).strip().lower().rstrip(".")
    if _is_number(text) and float(text) in (0.0, 1.0):  # 0.0, 1.000e+00: as 0 and 1
        return str(int(float(text)))
    return text


def _normal_values(column: str, values: pd.Series) -> tuple[list[str], str]:
    """The label's normal value(s) and a note saying how they were chosen (and so how sure it is)."""
    counts = values.dropna().astype(str).value_counts()
    words = {value: _word(value) for value in counts.index}
    by_name = [v for v, w in words.items() if w in NORMAL_VALUES]
    if NORMAL_LABEL_NAMES.match(column):  # "is_normal": 1 / true is the normal value
        by_name = [v for v, w in words.items() if w in POSITIVE_VALUES]
    share = lambda chosen: counts[chosen].sum() / counts.sum()  # noqa: E731
    if by_name and len(by_name) < len(counts):
        return by_name, (
            f"Sure: {', '.join(map(repr, by_name))} means normal by its name ({share(by_name):.0%} of the "
            f"rows read); every other value of {column!r} is an anomaly."
        )
    common = str(counts.index[0])
    return [common], (
        f"UNSURE, check it: no value of {column!r} is named like normal (normal, benign, 0, false, ...), so "
        f"the most frequent one, {common!r} ({share([common]):.0%} of the rows read), is taken as normal; "
        "every other value is an anomaly."
    )


def _restates(values: pd.Series, normal: np.ndarray) -> bool:
    """Whether normal-or-not follows from ``values`` exactly: each value goes with one side only."""
    known = values.notna().to_numpy()
    if values.nunique(dropna=True) < 2 or normal[known].all() or not normal[known].any():
        return False
    sides = pd.Series(normal[known]).groupby(values[known].astype(str).to_numpy()).nunique()
    return bool((sides == 1).all())


# -- the columns ---------------------------------------------------------------------------------------
def _is_counter(values: pd.Series) -> bool:
    """Whole numbers, one per row, that grow with the row: a row counter, or a clock."""
    numbers = values.dropna()
    if len(numbers) < 3 or values.dtype.kind not in "iuf" or len(numbers) < len(values):
        return False
    whole = np.array_equal(numbers, np.trunc(numbers))
    return bool(whole and numbers.is_monotonic_increasing and numbers.is_unique)


@dataclass
class _Draft:
    """What infer decides per column, before the schema is built."""

    timestamp: Timestamp | None = None
    label: Label | None = None
    key: str | None = None
    counter: str | None = None  # a row counter: left out, or a series' clock
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # column -> why


def _label(frame: pd.DataFrame) -> tuple[Label | None, str]:
    for column in frame.columns:
        if LABEL_NAMES.match(column) and 1 < frame[column].nunique(dropna=True) <= MAX_CATEGORIES:
            normal, note = _normal_values(column, frame[column])
            return Label(column=column, normal=normal), note  # type: ignore[arg-type]
    return None, ""


def _classify(frame: pd.DataFrame, draft: _Draft) -> None:
    rows = len(frame)
    # A text column of a few values per hundred rows is a category (KDD's 70 services in 25,000 rows).
    categories = max(MAX_CATEGORIES, min(MAX_CATEGORIES_LARGE, rows // 100))
    normal = None
    if draft.label is not None:
        labels = frame[draft.label.column].astype(str)
        normal = labels.isin([str(v) for v in draft.label.normal]).to_numpy()
    for column in frame.columns:
        if draft.label is not None and column == draft.label.column:
            continue
        values = frame[column]
        distinct = values.nunique(dropna=True)
        numeric = values.dtype.kind in "iufb"
        if distinct <= 1:
            draft.left_out[column] = "constant: it tells no row from another"
        elif normal is not None and distinct <= categories and _restates(values, normal):
            draft.left_out[column] = (
                "restates the label: each of its values goes with normal rows only or anomalous rows only "
                "(a detector would read the answer from it)"
            )
        elif TRUTH_NAMES.match(column) and distinct <= MAX_CATEGORIES:
            draft.left_out[column] = "named like ground truth: a detector must not read the answer"
        elif (
            draft.timestamp is None
            and TIME_NAMES.match(column)
            and numeric
            and values.notna().all()
            and values.is_monotonic_increasing
        ):
            draft.timestamp = Timestamp(column=column, format="unix")  # a clock in seconds, or a counter
        elif (
            draft.timestamp is None
            and (time_format := _time_format(values)) is not False
            and (TIME_NAMES.match(column) or distinct > 1)
        ):
            draft.timestamp = Timestamp(
                column=column, format=time_format if isinstance(time_format, str) else None
            )
        elif numeric and _is_counter(values) and (ID_NAMES.match(column) or draft.counter is None):
            if draft.counter is None:
                draft.counter = column
            else:
                draft.left_out[column] = COUNTER
        elif numeric and ID_NAMES.match(column) and distinct == rows:
            draft.left_out[column] = "an id: a distinct value per row"
        elif numeric:
            draft.numeric.append(column)
        elif draft.key is None and KEY_NAMES.match(column):
            draft.key = column
        elif distinct == rows and rows > MAX_CATEGORIES:
            draft.left_out[column] = "an id: a distinct value per row"
        elif distinct <= categories:
            draft.categorical.append(column)
        else:
            draft.left_out[column] = f"{distinct:,} distinct values in the rows read: not a category"


def _unusable_rows(frame: pd.DataFrame, draft: _Draft) -> int:
    """Rows read with an empty or non-finite feature cell, or an empty label."""
    bad = np.zeros(len(frame), dtype=bool)
    if draft.numeric:
        numbers = frame[draft.numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        bad |= ~np.isfinite(numbers).all(axis=1)
    for column in draft.categorical + ([draft.label.column] if draft.label else []):
        bad |= frame[column].isna().to_numpy()
    return int(bad.sum())


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
        frame, total = _sample(path, source)
    except (ValueError, UnicodeDecodeError, OSError, EOFError, ImportError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DatasetFormatError(f"{path}: cannot read it as {fmt}: {reason}") from None
    if frame.empty:
        raise DatasetFormatError(f"{path} has no rows: there is nothing to infer a schema from")
    notes: dict[str, str] = {}
    draft = _Draft()
    single = fmt == "csv" and not source.header and frame.shape[1] == 1
    if single:  # one number per line: a series, timed by its row numbers
        frame.columns = ["value"]
        source = source.model_copy(update={"columns": ["value"]})
        draft.timestamp = Timestamp(row_number=True)
    draft.label, label_note = _label(frame)
    _classify(frame, draft)
    clock = draft.timestamp is not None or draft.counter is not None
    as_series = clock and not draft.categorical and 0 < len(draft.numeric) <= MAX_SERIES_VALUES
    if as_series and draft.timestamp is None and draft.counter is not None:
        draft.timestamp = Timestamp(column=draft.counter, format="unix")
        notes["timestamp"] = f"{draft.counter!r} counts the rows: it times them (read as seconds)."
    elif draft.counter is not None:
        draft.left_out[draft.counter] = COUNTER
    if as_series and draft.key is not None and frame[draft.key].nunique() > len(frame) // 2:
        draft.left_out[draft.key] = "an id: a distinct value per row (a series key names a few series)"
        draft.key = None
    unusable = _unusable_rows(frame, draft)
    read = f"all its {len(frame):,} rows" if len(frame) == total else (
        f"{len(frame):,} of its {total:,} rows, taken evenly across the whole file"
    )  # fmt: skip
    notes[""] = (
        f"Draft dataset schema of {path.name}, inferred by `anomstream data infer` from {read}.\n"
        "Check every guess below before you replay or train: types, the label's normal value(s), "
        "the time format.\nReference: docs/dataset-schema.md and docs/own-data.md"
    )
    if draft.left_out:
        notes[""] += "\nColumns left out:\n" + "\n".join(f"  {c}: {why}" for c, why in draft.left_out.items())
    kind = "series" if as_series else "records"
    schema_data: dict[str, object] = {
        "name": name or _stream_name(path),
        "kind": kind,
        "source": source.model_copy(update={"path": _path_from(path, schema_dir)}),
        "timestamp": draft.timestamp,
        "key": draft.key,
        "label": draft.label,
    }
    missing = "drop" if unusable else "error"
    if as_series:
        schema_data["series"] = Series(values=draft.numeric, window=16, stride=1)
        schema_data["features"] = Features(missing=missing)  # type: ignore[arg-type]
        notes["series"] = (
            f"A time series: {len(draft.numeric)} value column(s) under one clock. Windows of 16 rows, one "
            "message per row;\nmultivariate = true scores all values in one window, false one series each."
        )
    else:
        schema_data["features"] = Features(numeric=draft.numeric, categorical=draft.categorical,
                                           missing=missing)  # type: ignore[arg-type]  # fmt: skip
    notes["features"] = (
        "Numeric columns are min-max scaled on training rows; categorical ones one-hot encoded.\n"
        "List heavy-tailed counts (bytes, durations) under log = [...] to compress them first."
        if not as_series
        else ""
    )
    if unusable:
        notes["features"] = (notes["features"] + "\n").lstrip() + (
            f'missing = "drop": {unusable:,} of the rows read hold an empty or non-finite cell (inf); they '
            'are left out of replay and training.\nSet "error" to refuse the file instead.'
        )
    if draft.label is not None:
        notes["label"] = label_note
    if draft.timestamp is not None and "timestamp" not in notes:
        ts = draft.timestamp
        if ts.row_number:
            notes["timestamp"] = "No header and one column: each row's time is its row number (seconds)."
        elif ts.format == "unix":
            notes["timestamp"] = f"{ts.column!r} is a number named like a time: read as seconds since 1970."
        else:
            notes["timestamp"] = f"Every value read of {ts.column!r} parses as a time" + (
                f" in format {ts.format!r}." if ts.format else " (ISO 8601)."
            )
    return DatasetSchema.model_validate(schema_data), {k: v for k, v in notes.items() if v}
