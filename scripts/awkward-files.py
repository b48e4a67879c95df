"""Two awkward files built from the data folder, for `anomstream data infer` -> alerts with no hand edits
(issue 28's figures; tests/unit/stream/test_awkward_files.py runs them through infer and train).

- ``connections-sorted.csv``: NSL-KDD's 20% training file sorted by label (the first 10,000 rows are
  mostly attacks: neptune sorts before normal), with a header, an ``id`` row counter first, an
  ``attack_category`` column that restates the label (dos / probe / r2l / u2r / normal), a few ``inf``
  and empty cells; NSL's difficulty column is left out (an annotation, not traffic).
- ``machine-temperature.csv``: NAB's machine_temperature_system_failure values only, one per line: no
  header, no time column.

Usage: python scripts/awkward-files.py OUT_DIR   (ANOMSTREAM_DATA_DIR: the data folder)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from stream.messages import KDD_FEATURES

INF_CELLS = ((101, "src_bytes"), (5_003, "dst_bytes"), (17_777, "duration"))  # (data row, column)
EMPTY_CELLS = ((42, "duration"), (12_345, "count"), (20_000, "protocol_type"))


def attack_categories(data: Path) -> dict[str, str]:
    """The KDD attack -> category map shipped with the data (kdd99/training_attack_types.txt)."""
    pairs = [line.split() for line in (data / "kdd99" / "training_attack_types.txt").read_text().splitlines()]
    return {
        "normal": "normal",
        **{attack: category for attack, category in (p for p in pairs if len(p) == 2)},
    }


def connections(data: Path, out: Path) -> Path:
    frame = pd.read_csv(data / "nslkdd" / "KDDTrain+_20Percent.txt", header=None)
    frame = frame.iloc[:, :42]
    frame.columns = [*KDD_FEATURES, "label"]
    frame = frame.sort_values("label", kind="stable").reset_index(drop=True)
    categories = attack_categories(data)
    frame.insert(0, "id", np.arange(1, len(frame) + 1))
    frame["attack_category"] = frame["label"].map(categories).fillna("unknown")
    frame = frame.astype({name: object for _, name in (*INF_CELLS, *EMPTY_CELLS)})
    for row, name in INF_CELLS:
        frame.loc[row - 1, name] = "inf"
    for row, name in EMPTY_CELLS:
        frame.loc[row - 1, name] = None
    path = out / "connections-sorted.csv"
    frame.to_csv(path, index=False)
    return path


def machine_temperature(data: Path, out: Path) -> Path:
    series = pd.read_csv(data / "nab" / "data" / "realKnownCause" / "machine_temperature_system_failure.csv")
    path = out / "machine-temperature.csv"
    path.write_text("\n".join(repr(float(v)) for v in series["value"]) + "\n")
    return path


def build(data: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [connections(data, out), machine_temperature(data, out)]


if __name__ == "__main__":
    data_dir = Path(os.environ.get("ANOMSTREAM_DATA_DIR", "data"))
    for built in build(data_dir, Path(sys.argv[1] if len(sys.argv) > 1 else "awkward")):
        print(built)
