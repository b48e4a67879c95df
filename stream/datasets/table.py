"""Reading any CSV, Parquet or JSON-lines file through its :mod:`dataset schema <stream.datasets.schema>`.

:func:`read_table` returns a :class:`Table`: the scored columns (numeric as float64, categorical as
text), and beside them the times, keys and labels the schema names. Every way a file can disagree
with its schema is refused before anything is published, in one line that says what to fix: a column
the schema names and the file lacks, a value that does not parse as a number or a time, an empty
feature or label cell or a non-finite number (``inf``; unless ``[features] missing = "drop"`` leaves
those rows out), a label column with no normal row, an empty file. Row numbers count the file's data
rows, whatever was dropped before them (:attr:`Table.rows`).

For example::

    table = read_table(load_schema("kdd99"), "../shared/data/kdd99/corrected.gz", limit=5)
    len(table), table.labels[0], table.normal[0]
    # -> (5, 'normal', True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stream.datasets.files import DatasetFormatError, DatasetMissingError
from stream.datasets.schema import DatasetSchema
from stream.labels import ATTACK, label_classes

NORMAL_HEADER, ANOMALY_HEADER = "normal", "anomaly"


@dataclass(frozen=True)
class Table:
    """One file read through its schema; every array is aligned with the rows of ``frame``."""

    schema: DatasetSchema
    source: str  # the file's name, without .gz: names replay keys and training descriptions
    frame: pd.DataFrame  # the scored columns (windows: every sample column), in schema order
    timestamps: np.ndarray | None = None  # datetime64[ns], UTC, file order (never sorted)
    keys: np.ndarray | None = None  # object: text
    labels: np.ndarray | None = None  # object: the label text, trimmed
    normal: np.ndarray | None = None  # bool: the label is one of the schema's normal values
    # int64: each row's position among the file's data rows (0 = the first row after any header), so
    # an error and an event id name the file's row whatever was dropped before it; None: 0, 1, ...
    rows: np.ndarray | None = None
    file_rows: int | None = None  # data rows read from the file, dropped ones included

    @property
    def dropped(self) -> int:
        """Rows of the file left out (``missing = "drop"``)."""
        return 0 if self.file_rows is None else self.file_rows - len(self)

    def __len__(self) -> int:
        return len(self.frame)

    def file_row(self, index: int) -> int:
        """The file's row number (1 = its first data row) of row ``index`` of this table."""
        return int(self.rows[index]) + 1 if self.rows is not None else index + 1

    def numeric(self) -> np.ndarray:
        """The numeric features (records), or the samples (series, windows), as float64."""
        names = self.schema.features.numeric if self.schema.kind == "records" else list(self.frame.columns)
        return self.frame[names].to_numpy(dtype=np.float64)

    def symbols(self) -> np.ndarray:
        """The categorical features (records) as text, ``(n, k)``."""
        return self.frame[self.schema.features.categorical].to_numpy(dtype=object)

    def header_labels(self) -> list[str | None]:
        """The ``label`` header of each row: ``normal`` for the schema's normal values, the label
        itself for an anomaly whose name reads as one (``smurf``, ``malignant``, ``1``), else
        ``anomaly`` (a label such as ``0`` that the one label rule would read as normal)."""
        if self.labels is None or self.normal is None:
            return [None] * len(self)
        raw = pd.Series(self.labels, dtype=object)
        reads_as_attack = label_classes(raw) == ATTACK
        out = np.where(self.normal, NORMAL_HEADER, np.where(reads_as_attack, raw, ANOMALY_HEADER))
        return out.tolist()

    def take(self, rows: np.ndarray | slice) -> Table:
        """The rows ``rows`` of every part, in that order."""

        def pick(part: np.ndarray | None) -> np.ndarray | None:
            return None if part is None else part[rows]

        frame = self.frame.iloc[rows].reset_index(drop=True)
        return Table(self.schema, self.source, frame, pick(self.timestamps), pick(self.keys),
                     pick(self.labels), pick(self.normal),
                     pick(self.rows if self.rows is not None else np.arange(len(self))),
                     self.file_rows)  # fmt: skip


def source_path(schema: DatasetSchema, path: str | Path | None) -> Path:
    """The file to read: ``path``, else the schema's ``source.path``; DatasetMissingError if neither."""
    chosen = path if path is not None else schema.source.path
    if chosen is None:
        raise DatasetMissingError(
            f"schema {schema.name!r} names no file: give one (anomstream replay FILE --schema S, "
            "train --file FILE), or set [source] path in the schema"
        )
    found = Path(chosen).expanduser()
    if not found.is_file():
        what = "is a directory, not a file" if found.is_dir() else "does not exist"
        raise DatasetMissingError(f"{found} {what}: give the path of a {schema.source.format} file")
    return found


def _compression(schema: DatasetSchema, path: Path) -> str | None:
    if schema.source.compression == "infer":
        return "gzip" if path.suffix == ".gz" else None
    return None if schema.source.compression == "none" else "gzip"


def _read_raw(schema: DatasetSchema, path: Path, limit: int | None) -> pd.DataFrame:
    source = schema.source
    # Text columns read as categories (a handful of distinct values over many rows: ~2x faster than
    # one string object per cell), turned into text below.
    text_columns = {c: "category" for c in [*schema.features.categorical, *schema.meta_columns()]}
    if schema.timestamp is not None and (schema.timestamp.format or "").startswith("unix"):
        text_columns.pop(schema.timestamp.column or "", None)
    if source.format == "csv":
        names = source.columns or None
        sep = r"\s+" if source.delimiter == "whitespace" else source.delimiter
        frame = pd.read_csv(
            path, sep=sep, header=0 if source.header else None, names=names, nrows=limit,
            compression=_compression(schema, path), dtype=text_columns or None, skipinitialspace=True,
            index_col=False,
        )  # fmt: skip
        if not source.header and names is None:
            frame.columns = [str(c) for c in frame.columns]
        return frame
    if source.format == "parquet":
        frame = pd.read_parquet(path)
        return frame.head(limit) if limit is not None else frame
    # dtype=False: no type guessing and no date conversion; the schema says what each column is.
    return pd.read_json(path, lines=True, nrows=limit, compression=_compression(schema, path), dtype=False)


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


def _columns_present(schema: DatasetSchema, frame: pd.DataFrame, path: Path) -> None:
    wanted = [*schema.scored_columns(), *schema.meta_columns()]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        has = ", ".join(map(str, list(frame.columns)[:20])) + (" ..." if frame.shape[1] > 20 else "")
        raise DatasetFormatError(
            f"{path}: no column {', '.join(map(repr, missing))} (named by schema {schema.name!r}); "
            f"the file has: {has}"
        )


def _as_numbers(frame: pd.DataFrame, names: list[str], path: Path) -> pd.DataFrame:
    out = {}
    for name in names:
        column = frame[name]
        if column.dtype.kind == "b":
            column = column.astype(np.float64)
        if column.dtype.kind not in "iuf":
            parsed = pd.to_numeric(column, errors="coerce")
            bad = parsed.isna() & column.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DatasetFormatError(
                    f"{path}: column {name!r}, row {row + 1}: {str(column.iloc[row])[:40]!r} is not a "
                    "number (make it numeric, or declare the column categorical)"
                )
            column = parsed
        out[name] = column.astype(np.float64)
    return pd.DataFrame(out, index=frame.index)


def _times(schema: DatasetSchema, column: pd.Series, path: Path, rows: np.ndarray) -> np.ndarray:
    assert schema.timestamp is not None
    fmt = schema.timestamp.format
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(str)
    try:
        if fmt in ("unix", "unix_ms"):
            parsed = pd.to_datetime(pd.to_numeric(column), unit="s" if fmt == "unix" else "ms", utc=True)
        elif fmt:
            parsed = pd.to_datetime(column, format=fmt, utc=True)
        else:
            try:
                parsed = pd.to_datetime(column, format="ISO8601", utc=True)
            except (ValueError, TypeError):
                parsed = pd.to_datetime(column, utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        how = f"format {fmt!r}" if fmt else "ISO 8601 (set [timestamp] format)"
        raise DatasetFormatError(
            f"{path}: column {schema.timestamp.column!r} is not a time in {how}: {_short(exc)}"
        ) from None
    if parsed.isna().any():
        row = int(rows[np.flatnonzero(parsed.isna().to_numpy())[0]])
        raise DatasetFormatError(f"{path}: column {schema.timestamp.column!r}, row {row + 1} has no time")
    return parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")


def normal_mask(labels: pd.Series, normal: list[str | int | float | bool]) -> np.ndarray:
    """Whether each label is one of the ``normal`` values: as text, or as numbers when both read as
    numbers (a file's ``1.0000000e+00`` is the schema's ``1``).

    >>> normal_mask(pd.Series(["1.0000000e+00", "2", "benign"]), [1, "benign"]).tolist()
    [True, False, True]
    """
    text = labels.astype(str)
    wanted = [str(v) for v in normal]
    mask = text.isin(wanted).to_numpy().copy()
    numbers = [float(v) for v in normal if _is_number(v)]
    if numbers:
        as_float = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        mask |= np.isin(as_float, numbers)
    return mask


def _is_number(value: object) -> bool:
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def _unusable(schema: DatasetSchema, frame: pd.DataFrame, numbers: pd.DataFrame) -> np.ndarray:
    """Rows no detector can use: a feature cell that is empty or not finite (``inf`` parses as a
    number, and a model fitted on it has a ``nan`` threshold), or an empty label cell (it would read as
    an anomaly named ``nan``)."""
    bad = ~np.isfinite(numbers.to_numpy(dtype=np.float64)).all(axis=1)
    for name in schema.features.categorical:
        bad |= frame[name].isna().to_numpy()
    if schema.label is not None:
        bad |= frame[schema.label.column].isna().to_numpy()
    return bad


def _unusable_line(
    schema: DatasetSchema, frame: pd.DataFrame, numbers: pd.DataFrame, unusable: np.ndarray, path: Path
) -> str:
    """The one line that refuses a file with unusable rows: its first bad cell, by column and file row."""
    row = int(np.flatnonzero(unusable)[0])
    label = [schema.label.column] if schema.label is not None else []
    for name in [*numbers.columns, *schema.features.categorical, *label]:
        value = numbers[name].iloc[row] if name in numbers.columns else frame[name].iloc[row]
        if pd.isna(value):
            what = "the label is empty" if name in label else "the cell is empty"
            break
        if name in numbers.columns and not np.isfinite(value):
            what = f"{value} is not a finite number"
            break
    return (
        f"{path}: column {name!r}, row {row + 1}: {what} ({int(unusable.sum()):,} rows like it in all): "
        'fix them, or set [features] missing = "drop" to leave those rows out'
    )


def read_table(schema: DatasetSchema, path: str | Path | None = None, limit: int | None = None) -> Table:
    """Read ``path`` (default: the schema's ``source.path``) as ``schema`` declares it.

    Raises DatasetMissingError (no such file) or DatasetFormatError (the file disagrees with the
    schema), each one line naming the file, the column and the row where it helps.
    """
    path = source_path(schema, path)
    try:
        frame = _read_raw(schema, path, limit)
    except (ValueError, UnicodeDecodeError, OSError, EOFError, ImportError) as exc:
        if isinstance(exc, pd.errors.EmptyDataError):
            raise DatasetFormatError(f"{path} is empty: there is nothing to read") from None
        raise DatasetFormatError(f"{path} is not a {schema.source.format} file as schema "
                                 f"{schema.name!r} declares it: {_short(exc)}") from None  # fmt: skip
    if frame.empty:
        raise DatasetFormatError(f"{path} has no rows: there is nothing to read")
    _columns_present(schema, frame, path)
    if schema.kind == "windows":
        scored = [c for c in frame.columns if c not in schema.meta_columns()]
        numbers = _as_numbers(frame, scored, path)
    else:
        numbers = _as_numbers(frame, schema.features.numeric or schema.scored_columns(), path)
    file_rows = len(frame)
    rows = np.arange(file_rows, dtype=np.int64)  # the file's rows, kept through any drop below
    unusable = _unusable(schema, frame, numbers)
    if unusable.any():
        if schema.features.missing == "error":
            raise DatasetFormatError(_unusable_line(schema, frame, numbers, unusable, path))
        keep = ~unusable
        frame, numbers = frame[keep].reset_index(drop=True), numbers[keep].reset_index(drop=True)
        rows = rows[keep]
        if frame.empty:
            raise DatasetFormatError(
                f"{path}: every row has a missing or non-finite feature value (or no label)"
            )
    scored = numbers
    if schema.kind == "records" and schema.features.categorical:
        symbols = frame[schema.features.categorical].astype(str)
        scored = pd.concat([numbers, symbols], axis=1)[schema.scored_columns()]
    timestamps = None
    if schema.timestamp is not None and schema.timestamp.column is not None:
        timestamps = _times(schema, frame[schema.timestamp.column], path, rows)
    elif schema.timestamp is not None:  # row_number: the file's row, so a dropped row leaves a gap
        timestamps = rows.astype("datetime64[s]").astype("datetime64[ns]")
    keys = frame[schema.key].astype(str).to_numpy(dtype=object) if schema.key else None
    labels = normal = None
    if schema.label is not None:
        text = frame[schema.label.column].astype(str)
        if schema.label.trim:
            text = text.str.rstrip(schema.label.trim)
        labels = text.to_numpy(dtype=object)
        normal = normal_mask(text, schema.label.normal)
        if not normal.any():
            seen = ", ".join(map(repr, pd.unique(text)[:8]))
            raise DatasetFormatError(
                f"{path}: no row of label column {schema.label.column!r} has a normal value "
                f"{schema.label.normal}; its values include {seen}: fix [label] normal"
            )
    return Table(schema, path.name.removesuffix(".gz"), scored.reset_index(drop=True), timestamps, keys,
                 labels, normal, rows, file_rows)  # fmt: skip
