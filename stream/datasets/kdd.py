"""KDD Cup 99 and NSL-KDD readers.

Both formats carry the 41 features of ``kddcup.names`` then a label; KDD Cup 99 labels end with a dot
(``normal.``), NSL-KDD labels do not and are followed by a difficulty column. Both are read through
their built-in dataset schema (``kdd99``: 42 columns, ``nslkdd``: 43), by the reader that reads a
user's own file (:func:`stream.datasets.table.read_table`). Labels are returned without the dot so
both read the same; :func:`stream.labels.is_attack` says which are attacks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stream.datasets.files import DatasetFormatError, find_named_file
from stream.datasets.schema import load_schema
from stream.datasets.table import read_table
from stream.messages import KDD_FEATURES, KDD_NUMERIC, KDD_RATES

KDD_NORMAL = "normal"
# The built-in schema of each file layout, by its number of columns.
KDD_SCHEMAS = {42: "kdd99", 43: "nslkdd"}
# Counts, byte sizes and 0/1 flags: whole numbers in every KDD file, read as integers (as pandas infers
# them from the text), so a replayed connection carries "src_bytes":181, never 181.0.
KDD_WHOLE: tuple[str, ...] = tuple(name for name in KDD_NUMERIC if name not in KDD_RATES)

# Logical names -> file names tried in order, inside DATA_DIR/kdd99, DATA_DIR/nslkdd and DATA_DIR.
KDD_FILES: dict[str, tuple[str, ...]] = {
    "train": ("kddcup.data_10_percent.gz", "kddcup.data_10_percent", "kddcup.data_10_percent_corrected"),
    "test": ("corrected.gz", "corrected"),
    "nsl-train": ("KDDTrain+_20Percent.txt", "KDDTrain+.txt"),
    "nsl-test": ("KDDTest+.txt",),
}
EXPECTED = "a KDD Cup 99 or NSL-KDD file (42 or 43 comma-separated columns, no header)"


def find_kdd_file(data_dir: Path, which: str = "train") -> Path:
    """Locate a KDD file by logical name (``train``, ``test``, ``nsl-train``, ``nsl-test``) or path."""
    return find_named_file(
        data_dir, which, KDD_FILES, ("kdd99", "nslkdd"), "KDD",
        "Run `anomstream data fetch kdd`, or set ANOMSTREAM_DATA_DIR to the folder that holds kdd99/.",
    )  # fmt: skip


def kdd_schema_name(path: Path) -> str:
    """``kdd99`` or ``nslkdd``: the built-in schema of the file, told by the width of its first row."""
    try:
        width = pd.read_csv(path, header=None, nrows=1, compression="infer").shape[1]
    except (ValueError, UnicodeDecodeError, OSError, EOFError) as exc:  # pandas' ParserError is a ValueError
        raise DatasetFormatError(f"{path} is not {EXPECTED}: {' '.join(str(exc).split())[:200]}") from None
    if width not in KDD_SCHEMAS:
        raise DatasetFormatError(f"{path} is not {EXPECTED}: it has {width} columns")
    return KDD_SCHEMAS[width]


def read_kdd(path: Path, limit: int | None = None) -> pd.DataFrame:
    """Read a KDD Cup 99 or NSL-KDD file (plain or gzipped) into the 41 features plus ``label``.

    For example::

        df = read_kdd(find_kdd_file(Path("../shared/data"), "test"), limit=5)
        list(df.columns[-2:]), df.label.iloc[0]
        # -> (['dst_host_srv_rerror_rate', 'label'], 'normal')
    """
    table = read_table(load_schema(kdd_schema_name(Path(path))), path, limit)
    frame = table.frame[list(KDD_FEATURES)].copy()
    for name in KDD_WHOLE:
        column = frame[name].to_numpy()
        if np.array_equal(column, np.round(column)):
            frame[name] = column.astype(np.int64)
    frame["label"] = pd.Series(table.labels, dtype=str)
    return frame
