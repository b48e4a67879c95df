"""Test sets of the evaluation protocols (docs/evaluation.md).

- KDD ``ffl``: the Fast Forward Labs report's protocol: 18 continuous features, min-max scaled on
  training data; a seeded 8,000 "normal" + 2,000 attack sample of ``corrected``, where the 17 attack
  types that occur only in ``corrected`` count as *normal*, as FFL's code labelled them (so the normal
  pool is normal + test-only-attack rows, the attack pool the attack types known from training).
- KDD ``full``: all 41 features, every non-normal label an attack, the whole ``corrected`` file.
- ECG5000: the held-out test rows of :func:`stream.datasets.splits.holdout_split` (normal + abnormal beats).

Training data and thresholds come from :mod:`models.training`; nothing here is ever fitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.features import RecordsRaw
from models.training.data import TrainingData, load_kdd_training
from models.training.schema_data import table_training_data
from stream.datasets import KDD_NORMAL, find_ecg_file, find_kdd_file, is_attack, read_kdd
from stream.datasets.schema import builtin_schema
from stream.datasets.splits import holdout_split
from stream.datasets.table import read_table

PROTOCOLS: dict[str, tuple[str, ...]] = {"kdd": ("ffl", "full"), "ecg": ("holdout",)}
FFL_NORMAL, FFL_ATTACK = 8_000, 2_000


@dataclass(frozen=True)
class TestSet:
    X: np.ndarray
    y: np.ndarray  # bool, True = anomaly under this protocol
    labels: np.ndarray  # original label of each row (for per-label breakdowns)
    description: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    stream: str
    protocol: str
    training: TrainingData
    test: TestSet


def ffl_sample(
    labels: pd.Series | np.ndarray,
    known_attacks: set[str],
    seed: int = 0,
    n_normal: int = FFL_NORMAL,
    n_attack: int = FFL_ATTACK,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ffl test sample and their protocol labels (True = attack).

    Attacks are rows whose label is a *training* attack type; every other row (normal, or an attack
    type absent from training) is in the normal pool, as in FFL's code.

    >>> rows, y = ffl_sample(np.array(["normal"] * 6 + ["smurf"] * 3 + ["mscan"] * 2), {"smurf"}, 0, 4, 2)
    >>> len(rows), int(y.sum())
    (6, 2)
    """
    labels = np.asarray(labels).astype(str)
    attack = np.isin(labels, sorted(known_attacks))
    normal_pool, attack_pool = np.flatnonzero(~attack), np.flatnonzero(attack)
    if len(normal_pool) < n_normal or len(attack_pool) < n_attack:
        raise ValueError(
            f"the ffl sample needs {n_normal} normal and {n_attack} attack rows, "
            f"the test file has {len(normal_pool)} and {len(attack_pool)}"
        )
    rng = np.random.default_rng(seed)
    rows = np.r_[
        rng.choice(normal_pool, n_normal, replace=False), rng.choice(attack_pool, n_attack, replace=False)
    ]
    return rows, np.r_[np.zeros(n_normal, bool), np.ones(n_attack, bool)]


def kdd_experiment(data_dir: Path, protocol: str, seed: int = 0) -> Experiment:
    """Training data (10% file) and test set (``corrected``) of a KDD protocol."""
    if protocol not in PROTOCOLS["kdd"]:
        raise ValueError(f"unknown KDD protocol {protocol!r}: use one of {', '.join(PROTOCOLS['kdd'])}")
    train = load_kdd_training(data_dir)
    training = table_training_data(train, seed=seed, protocol=protocol)
    test_path = find_kdd_file(data_dir, "test")
    test_frame = read_kdd(test_path)
    assert train.labels is not None  # the built-in KDD schemas name their label column
    known_attacks = set(train.labels.tolist()) - {KDD_NORMAL}
    test_only = sorted(set(test_frame["label"].unique()) - known_attacks - {KDD_NORMAL})
    if protocol == "ffl":
        rows, y = ffl_sample(test_frame["label"], known_attacks, seed)
        test_frame = test_frame.iloc[rows].reset_index(drop=True)
        note = (
            f"seeded sample of {test_path.name}: {FFL_NORMAL:,} 'normal' + {FFL_ATTACK:,} attack rows; "
            f"the {len(test_only)} attack types absent from training count as normal, as in FFL's code"
        )
    else:
        y = is_attack(test_frame["label"])
        note = f"the whole {test_path.name} file; every non-normal label is an attack"
    labels = test_frame["label"].to_numpy().astype(str)
    description = {
        "data": test_path.name,
        "rows": int(len(test_frame)),
        "anomalies": int(y.sum()),
        "normal": int((~y).sum()),
        "test_only_attack_types": test_only,
        "test_only_attacks_in_sample": int(np.isin(labels, test_only).sum()),
        "note": note,
    }
    X = training.encoder.transform(RecordsRaw.from_frame(test_frame, train.schema))
    return Experiment("kdd", protocol, training, TestSet(X, y, labels, description))


def ecg_experiment(data_dir: Path, seed: int = 0) -> Experiment:
    """Training parts and held-out test beats of the seeded ECG5000 split (protocol ``holdout``)."""
    table = read_table(builtin_schema("ecg5000"), find_ecg_file(data_dir, "csv"))
    training = table_training_data(table, seed=seed, protocol="holdout")
    assert table.normal is not None  # the built-in ECG schemas name their class column
    test_rows = holdout_split(table.normal, seed).test
    y = ~table.normal[test_rows]
    description = {
        "data": table.source,
        "rows": int(len(test_rows)),
        "anomalies": int(y.sum()),
        "normal": int((~y).sum()),
        "note": "held-out beats of the seeded split: 30% of normal beats, 90% of abnormal beats",
    }
    names = np.where(y, "abnormal", "normal")
    X = training.encoder.transform(table.numeric()[test_rows])
    return Experiment("ecg", "holdout", training, TestSet(X, y, names, description))


def experiment(stream: str, protocol: str, data_dir: Path, seed: int = 0) -> Experiment:
    if stream == "kdd":
        return kdd_experiment(data_dir, protocol, seed)
    if stream == "ecg":
        return ecg_experiment(data_dir, seed)
    raise ValueError(f"no evaluation protocol for stream {stream!r}; use kdd or ecg")
