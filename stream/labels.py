"""Ground truth: the one rule that says whether a label is an attack (an anomaly) or normal traffic.

Labels reach anomstream as strings: a dataset's label column, and the ``label`` header a replay puts
on each message (copied by workers into alerts and score records). Every user — the dataset readers,
training and evaluation, the retrain's filtering, the benchmark, the dashboard and the demo —
classifies them with :func:`label_classes` (or :func:`is_attack`), so a label means one thing
everywhere:

* ``None`` (no ``label`` header: the replay carried no ground truth), NaN (an empty cell as pandas
  reads it) and an empty string are *unlabelled*: not an attack, and left out of precision and
  recall;
* ``normal``, with or without KDD Cup 99's trailing dot (``normal.``), is normal;
* ``0``, ``0.0`` and ``false`` (any case) are normal too: they are how a binary label column of a
  user's own file reads once replayed as a header (``str(0)``, ``str(0.0)``, ``str(False)``), and by
  the convention of binary anomaly labels 0 / false means "not an anomaly". No built-in dataset names
  a class so (KDD's are attack names, ECG's ``abnormal``, NAB's ``anomaly``), so the rule cannot
  misread them;
* every other label (``smurf``, ``neptune``, ``abnormal``, ``anomaly``, ``1``, ``true``) is an attack.

>>> label_classes(["normal", "normal.", "smurf", None, "0", "False", "1"]).tolist()
[0, 0, 1, 2, 0, 0, 1]
>>> is_attack(["normal", "smurf", None]).tolist()
[False, True, False]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

# The classes of a label, as :func:`label_classes` returns them.
NORMAL, ATTACK, UNLABELLED = 0, 1, 2
NORMAL_LABELS = frozenset({"normal", "0", "0.0", "false"})


def _class_of(label: Any) -> int:
    name = str(label).strip().lower().removesuffix(".")  # KDD Cup 99 writes "normal."
    if not name:
        return UNLABELLED
    return NORMAL if name in NORMAL_LABELS else ATTACK


def label_classes(labels: Iterable[Any] | np.ndarray) -> np.ndarray:
    """The class of each label: :data:`NORMAL`, :data:`ATTACK` or :data:`UNLABELLED`.

    Vectorised over the distinct labels: a million rows of a handful of label names cost one
    Python call per name, not per row. Accepts a list, a NumPy array or a pandas Series (NaN, as
    pandas reads an empty cell, counts as unlabelled like None).
    """
    values = labels if isinstance(labels, pd.Series | np.ndarray) else list(labels)
    codes, names = pd.factorize(np.asarray(values, dtype=object).ravel(), use_na_sentinel=True)
    lookup = np.array([_class_of(name) for name in names] + [UNLABELLED], dtype=np.int8)
    return lookup[codes]  # the sentinel -1 (None, NaN) picks the appended UNLABELLED


def is_attack(labels: Iterable[Any] | np.ndarray) -> np.ndarray:
    """Boolean mask, True where a label is an attack (unlabelled rows are not)."""
    return label_classes(labels) == ATTACK
