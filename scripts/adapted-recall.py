"""An adapted model against the one it adapted, on fixed labelled sets: what the learnt normal cost
in recall and saved in false alarms (e.g. the drift-figures run's promoted v2 of the shift scenario).

    PYTHONPATH=. .venv/bin/python scripts/adapted-recall.py out/drift-figures/registry-shift

Prints, for kdd/ae v1 and v2, recall on attack sets and the alert rate on normal sets: NSL-KDD's 20%
training file, ``corrected``, the 10% file's labelled validation split, and ``corrected``'s smurf +
neptune floods. Needs the KDD and NSL-KDD files in ANOMSTREAM_DATA_DIR.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from models.features import RecordsRaw
from models.registry import Registry
from models.retraining import LabelledValidation, rebuild_training_data
from models.scoring import ScoringModel
from stream.datasets import find_kdd_file, read_kdd
from stream.datasets.schema import builtin_schema
from stream.labels import is_attack


def alert_rate(model: ScoringModel, X: np.ndarray) -> float:
    return float(np.mean(model.threshold.classify(model.judge(X))))


def main() -> None:
    registry = Registry(Path(sys.argv[1]))
    data = Path(os.environ["ANOMSTREAM_DATA_DIR"])
    before, after = registry.load("kdd", "ae", 1), registry.load("kdd", "ae", 2)

    def encode(frame: pd.DataFrame) -> np.ndarray:
        return before.encoder.transform(RecordsRaw.from_frame(frame, builtin_schema("kdd99")))

    nsl, test = read_kdd(find_kdd_file(data, "nsl-train")), read_kdd(find_kdd_file(data, "test"))
    nsl_attack, test_attack = is_attack(nsl["label"].to_numpy()), is_attack(test["label"].to_numpy())
    reference = rebuild_training_data(before, data)
    validation = LabelledValidation.of(reference) if reference is not None else None
    flood = test["label"].str.rstrip(".").isin(["smurf", "neptune"]).to_numpy()
    sets = {
        "NSL attacks (recall)": encode(nsl[nsl_attack]),
        "NSL normal (alert rate)": encode(nsl[~nsl_attack]),
        "corrected attacks (recall)": encode(test[test_attack]),
        "corrected normal (alert rate)": encode(test[~test_attack]),
        "corrected smurf + neptune (recall)": encode(test[flood]),
    }
    if validation is not None:
        sets["10% file validation attacks (recall)"] = validation.X[validation.y]
        sets["10% file validation normal (alert rate)"] = validation.X[~validation.y]
    for name, X in sets.items():
        print(f"{name:42s} v1 {alert_rate(before, X):.4f}  v2 {alert_rate(after, X):.4f}  ({len(X):,} rows)")
    print(json.dumps(after.manifest.get("learnt_normal")))


if __name__ == "__main__":
    main()
