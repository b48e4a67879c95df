"""KDD Cup 99 and NSL-KDD readers.

Both formats carry the 41 features of ``kddcup.names`` then a label; KDD Cup 99 labels end with a dot
(``normal.``), NSL-KDD labels do not and are followed by a difficulty column. Labels are returned
without the dot so both read the same; :func:`stream.labels.is_attack` says which are attacks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stream.datasets.files import DatasetFormatError, find_named_file
from stream.messages import KDD_CATEGORICAL, KDD_FEATURES

KDD_NORMAL = "normal"

# Logical names -> file names tried in order, inside DATA_DIR/kdd99, DATA_DIR/nslkdd and DATA_DIR.
KDD_FILES: dict[str, tuple[str, ...]] = {
    "train": ("kddcup.data_10_percent.gz", "kddcup.data_10_percent", "kddcup.data_10_percent_corrected"),
    "test": ("corrected.gz", "corrected"),
    "nsl-train": ("KDDTrain+_20Percent.txt", "KDDTrain+.txt"),
    "nsl-test": ("KDDTest+.txt",),
}


def find_kdd_file(data_dir: Path, which: str = "train") -> Path:
    """Locate a KDD file by logical name (``train``, ``test``, ``nsl-train``, ``nsl-test``) or path."""
    return find_named_file(
        data_dir, which, KDD_FILES, ("kdd99", "nslkdd"), "KDD",
        "Run `anomstream data fetch kdd`, or set ANOMSTREAM_DATA_DIR to the folder that holds kdd99/.",
    )  # fmt: skip


def read_kdd(path: Path, limit: int | None = None) -> pd.DataFrame:
    """Read a KDD Cup 99 or NSL-KDD file (plain or gzipped) into the 41 features plus ``label``.

    For example::

        df = read_kdd(find_kdd_file(Path("../shared/data"), "test"), limit=5)
        list(df.columns[-2:]), df.label.iloc[0]
        # -> (['dst_host_srv_rerror_rate', 'label'], 'normal')
    """
    dtypes: dict[str, object] = {name: "category" for name in KDD_CATEGORICAL}
    expected = "a KDD Cup 99 or NSL-KDD file (42 or 43 comma-separated columns, no header)"
    try:
        frame = pd.read_csv(path, header=None, nrows=limit, dtype=dtypes | {41: "category"})
    except (ValueError, UnicodeDecodeError, OSError, EOFError) as exc:  # pandas' ParserError is a ValueError
        reason = " ".join(str(exc).split())[:200]
        raise DatasetFormatError(f"{path} is not {expected}: {reason}") from None
    if frame.shape[1] not in (42, 43):
        raise DatasetFormatError(f"{path} is not {expected}: it has {frame.shape[1]} columns")
    frame = frame.iloc[:, :42]
    numeric = frame.drop(columns=[1, 2, 3, 41])
    if not all(kind in "iuf" for kind in numeric.dtypes.map(lambda d: d.kind)):
        raise DatasetFormatError(f"{path} is not {expected}: a numeric feature column holds text")
    frame.columns = [*KDD_FEATURES, "label"]
    frame["label"] = frame["label"].astype(str).str.rstrip(".")
    for name in KDD_CATEGORICAL:
        frame[name] = frame[name].astype(str)
    return frame
