"""Dense networks served without their training framework: the forward pass in NumPy.

A worker only scores, and for the dense nets (``ae``, and ``vae`` scored by reconstruction error)
scoring is a few matrix products. Importing Keras, and TensorFlow behind it, to run them costs a new
worker process most of its start-up time and most of its memory (measured in ``docs/performance.md``).
So :func:`load_detector` with ``inference_only=True`` reads the saved weights (``model.weights.h5``,
the same sealed artifact, through h5py) and runs the chain of layers the detector's
``dense_layers()`` names; the scores and explanations come from the same functions the Keras
detector uses (:func:`~models.detectors.base.reconstruction_explanation`). Training, retraining, and
every detector NumPy cannot run (sequence and adversarial nets, ``vae`` by reconstruction
probability, an unknown activation) load through Keras as before.

>>> import numpy as np
>>> layer = Dense("hidden", np.eye(2, dtype=np.float32), np.array([0.0, -1.0], np.float32), "relu")
>>> layer(np.array([[1.0, 0.5]], np.float32)).tolist()
[[1.0, 0.0]]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from models.detectors.base import (
    WEIGHTS_FILE,
    Detector,
    KerasDetector,
    read_params,
    reconstruction_explanation,
    reconstruction_scores,
)
from models.detectors.zoo import detector_class

log = logging.getLogger(__name__)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, 1.0 / (1.0 + np.exp(-x)))


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


# Keras activation name -> the same function on float32 arrays (others are served by Keras).
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": _relu,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "elu": _elu,
}


@cache
def _blas() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class NotServableError(ValueError):
    """The saved network is not a chain of dense layers NumPy can run: serve it with Keras."""


@dataclass(frozen=True)
class Dense:
    """One ``keras.layers.Dense``: ``activation(x @ kernel + bias)`` in float32."""

    name: str
    kernel: np.ndarray  # (inputs, units)
    bias: np.ndarray  # (units,)
    activation: str

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.kernel
        y += self.bias
        return ACTIVATIONS[self.activation](y)


def read_keras_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """Each layer's variables in a Keras 3 ``.weights.h5`` file, by layer name, in Keras' order
    (a Dense layer: kernel, bias). Nested models' layers are found too; the optimizer's are skipped.

    Keras names the file's groups by layer class and position (``layers/dense_2``), not in build
    order, so layers are matched by the ``name`` attribute Keras writes on each ``vars`` group.
    """
    import h5py  # Keras' own dependency: reading arrays from it needs no Keras

    found: dict[str, list[np.ndarray]] = {}
    with h5py.File(path, "r") as handle:
        layers = handle.get("layers")
        if not isinstance(layers, h5py.Group):
            raise NotServableError(f"{path} holds no 'layers' group: not a Keras 3 weights file")

        def visit(name: str, item: Any) -> None:
            if not (isinstance(item, h5py.Group) and name.rsplit("/", 1)[-1] == "vars" and len(item)):
                return
            layer = item.attrs.get("name")
            if not isinstance(layer, str):
                return
            if layer in found:
                raise NotServableError(f"{path}: two layers are named {layer!r}")
            found[layer] = [np.asarray(item[str(i)], dtype=np.float32) for i in range(len(item))]

        layers.visititems(visit)
    return found


class DenseReconstruction:
    """A reconstruction detector (``ae``; ``vae`` by error) served by its dense chain in NumPy: the
    same ``score`` and ``explain`` as the Keras detector it was saved from, for scoring only."""

    learns = False

    def __init__(self, name: str, params: dict[str, Any], n_features: int, layers: list[Dense]) -> None:
        self.name = name
        self.params = params
        self.n_features_ = n_features
        self.layers = layers

    def forward(self, X: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(X, dtype=np.float32)
        # One BLAS thread: a worker scales by processes, and its Kafka threads share the cores; on a
        # busy 2-core machine OpenBLAS' spinning threads made a 5,000-row pass 6x slower (123 -> 19 ms).
        with _blas().limit(limits=1, user_api="blas"):
            for layer in self.layers:
                out = layer(out)
        return out

    def score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return reconstruction_scores(X, self.forward(X))

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float32)
        return reconstruction_explanation(X, self.forward(X))

    def get_params(self) -> dict[str, Any]:
        return dict(self.params)

    def count_params(self) -> int:
        return sum(layer.kernel.size + layer.bias.size for layer in self.layers)

    def fit(self, X: np.ndarray, X_val: np.ndarray | None = None) -> DenseReconstruction:
        raise TypeError(f"a {self.name} served by NumPy only scores: load it without inference_only to train")

    def save(self, directory: Path) -> None:
        raise TypeError(f"a {self.name} served by NumPy only scores: its registry version is its saved form")

    @classmethod
    def load(cls, directory: Path, name: str = "ae") -> DenseReconstruction:
        """The detector ``name`` saved in ``directory``, as its dense chain; :class:`NotServableError`
        when it is not one."""
        keras_class = detector_class(name)
        meta = read_params(directory, keras_class)
        chain = getattr(keras_class(**meta["params"]), "dense_layers", lambda: None)()
        if not chain:
            raise NotServableError(f"a {name} with these parameters is not a chain of dense layers")
        weights = read_keras_weights(directory / WEIGHTS_FILE)
        layers = []
        width = n_features = int(meta["n_features"])
        for layer_name, activation in chain:
            if activation not in ACTIVATIONS:
                raise NotServableError(f"activation {activation!r} of {layer_name} has no NumPy version")
            variables = weights.get(layer_name, [])
            if len(variables) != 2 or variables[0].ndim != 2 or variables[0].shape[0] != width:
                raise NotServableError(f"layer {layer_name!r} is not a dense layer of input width {width}")
            kernel, bias = variables
            layers.append(Dense(layer_name, kernel, bias, activation))
            width = kernel.shape[1]
        if width != n_features:
            raise NotServableError(f"the chain ends with width {width}, not the {n_features} features")
        return cls(name, meta["params"], n_features, layers)


def load_detector(name: str, directory: Path, inference_only: bool = False) -> Detector:
    """Load the detector ``name`` saved in ``directory``; ``inference_only``: serve a dense net in
    NumPy when it can be (no Keras import), else load it with its own class."""
    cls = detector_class(name)
    if inference_only and isinstance(cls, type) and issubclass(cls, KerasDetector):
        try:
            return cast(Detector, DenseReconstruction.load(directory, name))
        except NotServableError as why:
            log.info("%s served by Keras: %s", name, why)
    return cast(Detector, cls.load(directory))


__all__ = ["Dense", "DenseReconstruction", "NotServableError", "load_detector", "read_keras_weights"]
