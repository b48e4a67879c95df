"""The detector protocol and the deep-learning base class that owns the training loop.

Every batch detector honours::

    detector.fit(X_train, X_val=None) -> detector     # X: float32 (n, d), normal data
    detector.score(X) -> ndarray (n,)                  # higher = more anomalous
    detector.save(directory); Cls.load(directory)

Reconstruction-based detectors also offer ``explain(X) -> (scores, contributions (n, d))``, whose
per-feature contributions feed the ``top_features`` of alerts. ``__init__`` only stores parameters;
fitted attributes end in ``_`` (scikit-learn's convention).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from models.backend import Forward, compiled_forward, keras_module


@runtime_checkable
class Detector(Protocol):
    name: ClassVar[str]

    def fit(self, X: np.ndarray, X_val: np.ndarray | None = None) -> Detector: ...
    def score(self, X: np.ndarray) -> np.ndarray: ...
    def save(self, directory: Path) -> None: ...
    @classmethod
    def load(cls, directory: Path) -> Detector: ...


@runtime_checkable
class Explainer(Protocol):
    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def n_params(detector: Any) -> int:
    """Number of learnt parameters, when the detector can tell (Keras models can)."""
    model = getattr(detector, "model_", None)
    return int(model.count_params()) if model is not None and hasattr(model, "count_params") else 0


class KerasDetector:
    """Base for Keras detectors: subclasses build the network; this class trains, saves, loads.

    Persistence writes ``params.json`` (constructor arguments and input width) and the weights as
    ``model.weights.h5``: loading rebuilds the network from our own code and reads arrays only,
    so a model file can never execute code.
    """

    name: ClassVar[str] = "keras"

    def __init__(
        self,
        epochs: int = 60,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        patience: int = 6,
        validation_fraction: float = 0.1,
        seed: int = 0,
        verbose: int | str = "auto",
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.verbose = verbose

    # -- subclass hooks -------------------------------------------------------------------------
    def build(self, n_features: int) -> Any:
        """Return an uncompiled ``keras.Model`` mapping (batch, n_features) to its training target."""
        raise NotImplementedError

    def training_target(self, X: np.ndarray) -> np.ndarray:
        return X

    def score_from_output(self, X: np.ndarray, output: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- training -------------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def fit(self, X: np.ndarray, X_val: np.ndarray | None = None) -> Self:
        keras = keras_module()
        keras.utils.set_random_seed(self.seed)
        X = np.asarray(X, dtype=np.float32)
        if X_val is None:
            # Hold out a seeded slice for early stopping (Keras' validation_split takes the tail,
            # which would be the newest rows of a time-ordered file).
            order = np.random.default_rng(self.seed).permutation(len(X))
            cut = max(1, int(len(X) * self.validation_fraction))
            X, X_val = X[order[cut:]], X[order[:cut]]
        self.n_features_ = X.shape[1]
        self.model_ = self.build(self.n_features_)
        self.model_.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="mse")
        stop = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True
        )
        verbose = self.verbose
        if verbose == "auto":
            verbose = 1 if sys.stderr.isatty() else 2
        history = self.model_.fit(
            X,
            self.training_target(X),
            validation_data=(X_val, self.training_target(np.asarray(X_val, np.float32))),
            epochs=self.epochs,
            batch_size=self.batch_size,
            callbacks=[stop],
            verbose=verbose,
            shuffle=True,
        )
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self._forward: Forward | None = None
        return self

    # -- inference ------------------------------------------------------------------------------
    def forward(self, X: np.ndarray) -> np.ndarray:
        if getattr(self, "_forward", None) is None:
            self._forward = compiled_forward(self.model_, self.n_features_)
        assert self._forward is not None
        return self._forward(X)

    def score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return self.score_from_output(X, self.forward(X))

    # -- persistence ----------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        params = {"class": type(self).__name__, "params": self.get_params(), "n_features": self.n_features_}
        (directory / "params.json").write_text(json.dumps(params, indent=2))
        self.model_.save_weights(directory / "model.weights.h5")

    @classmethod
    def load(cls, directory: Path) -> Self:
        meta = json.loads((directory / "params.json").read_text())
        if meta["class"] != cls.__name__:
            raise ValueError(f"{directory} holds a {meta['class']}, not a {cls.__name__}")
        detector = cls(**meta["params"])
        detector.n_features_ = int(meta["n_features"])
        detector.model_ = detector.build(detector.n_features_)
        detector.model_.load_weights(directory / "model.weights.h5")
        detector._forward = None
        return detector
