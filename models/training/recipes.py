"""The recipe table: which constructor arguments each detector gets on each stream.

One table for tabular (KDD, ECG beats) and windowed (sensor) models. A recipe is keyed by
``(stream, KDD protocol or "*", detector)``; its parameters are a dict, or a function of the training
shape (window length, number of fit rows) where they must scale with the data. ``resolve`` adds the
seed, the recipe, then caller overrides, in that order.

Tabular entries were chosen by ROC AUC on the labelled validation split of *training* data (never on
test labels):

- kdd/ffl ae: a narrower tanh network (64-10-64) scored 0.9954-0.9966 there over three seeds, the
  default relu 64-32-16-32-64 0.9903; batches of 1,024 train it in a third of the time.
- kdd/ffl pca: 99% of the variance (10 of 18 components) 0.9970 against 0.9963 at 95%.
- ecg deep detectors: 1,431 training beats make only 6 batches of 256 per epoch; batches of 32 and
  more epochs lift validation AUC from 0.980 to 0.993 (ae), 0.980 to 0.994 (seq_ae), 0.981 to 0.997
  (vae), and 0.42 (10 epochs, worse than chance) to 0.974 (bigan: 200 epochs, patience 30).

Sensor entries are sized for a few hundred short windows (the class defaults suit KDD). A probation
holds so few windows that a Keras epoch over them is a handful of steps and the fixed cost of an epoch
would dominate, so deep sensor recipes repeat the fit windows up to ``repeat_rows`` rows per epoch.

A dataset schema's stream (``anomstream train --schema S``) takes the entries of the built-in stream
of its kind (``KIND_STREAM``): records are tabular like KDD connections (the class defaults), windows
are short fixed windows like ECG beats, series are sliding windows like the sensor stream's.

>>> resolve("kdd", "pca", "ffl", seed=3).params
{'seed': 3, 'n_components': 0.99}
>>> resolve("sensor", "hst", window=16, n_fit=100).params["window_size"]
100
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from models.detectors.zoo import is_deep

Params = dict[str, Any]
ParamsOf = Params | Callable[[int, int], Params]  # (window, n_fit) -> params

_SMALL_DATA: Params = {"batch_size": 32, "epochs": 100, "patience": 10}
_SENSOR_DEEP: Params = {"epochs": 15, "batch_size": 128, "patience": 3, "verbose": 0}
SENSOR_REPEAT_ROWS = 4096

# The built-in stream whose recipes (and default detector) a dataset schema's stream takes, by kind.
KIND_STREAM = {"records": "kdd", "windows": "ecg", "series": "sensor"}

RECIPES: dict[tuple[str, str, str], ParamsOf] = {
    ("kdd", "ffl", "ae"): {"hidden": [64, 10], "activation": "tanh", "batch_size": 1024},
    ("kdd", "ffl", "pca"): {"n_components": 0.99},
    ("ecg", "*", "ae"): _SMALL_DATA,
    ("ecg", "*", "seq_ae"): _SMALL_DATA,
    ("ecg", "*", "vae"): _SMALL_DATA,
    ("ecg", "*", "bigan"): {"batch_size": 32, "epochs": 200, "patience": 30},
    ("sensor", "*", "seq_ae"): lambda window, n_fit: {
        **_SENSOR_DEEP,
        "filters": [16, 8],
        "kernel_size": 5,
        "latent": max(4, window // 8),
    },
    ("sensor", "*", "ae"): lambda window, n_fit: {
        **_SENSOR_DEEP,
        "hidden": [max(8, window // 2), max(4, window // 8)],
    },
    # A reference window of every fit row there is (up to river's default of 250).
    ("sensor", "*", "hst"): lambda window, n_fit: {
        "n_trees": 25,
        "height": 8,
        "window_size": min(250, n_fit),
    },
    # The windows overlapping the scored one are left out of its nearest-neighbour search.
    ("sensor", "*", "context"): lambda window, n_fit: {"gap": window},
}


@dataclass(frozen=True)
class Recipe:
    """Constructor arguments of one detector for one stream, and how its rows are fed."""

    detector: str
    params: Params = field(default_factory=dict)
    repeat_rows: int = 0  # repeat the fit rows up to this many per epoch (0: as they are)


def resolve(
    stream: str,
    detector: str,
    protocol: str = "*",
    overrides: Params | None = None,
    seed: int = 0,
    window: int = 0,
    n_fit: int = 0,
) -> Recipe:
    """The recipe for ``detector`` on ``stream``: seed, then the table's entry, then ``overrides``."""
    entry = RECIPES.get((stream, protocol, detector)) or RECIPES.get((stream, "*", detector), {})
    tuned = entry(window, n_fit) if callable(entry) else entry
    params = {"seed": seed, **tuned, **(overrides or {})}
    repeat = SENSOR_REPEAT_ROWS if stream == "sensor" and is_deep(detector) else 0
    return Recipe(detector, params, repeat)
