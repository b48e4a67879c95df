"""The detector contract, and the deep-learning base class that owns the training loop.

The contract, in this file and checked by mypy (the block at the end of the protocols assigns each
zoo class to the parts it claims), is a few protocols; a detector is what it implements, never
what it happens to have (no ``getattr`` probing)::

    Detector            fit(X_train, X_val=None) -> self   X: float32 (n, d), normal data
                        score(X) -> ndarray (n,)           higher = more anomalous; changes nothing
                        get_params(); save(directory); Cls.load(directory); name; ARTIFACTS
    Explainer           explain(X) -> (scores, contributions (n, d)): per-feature contributions that
                        feed the ``top_features`` of alerts (reconstruction detectors, iforest, ...)
    OnlineDetector      a Detector that keeps learning while it serves: learn(X) with the rows of
                        committed batches, in stream order (river's learn_one, batched), and
                        state() / set_state() for its checkpoints: hst
    SequentialDetector  an OnlineDetector that scores each row in the context of the rows before it:
                        score_next(X) scores the batch after every batch scored so far, and it
                        learns every row it scored, anomalies too: context
    MemberHolder        holds fitted member detectors (``members_``): ensemble. It explains when
                        one of its members does (:func:`explainer`).

``__init__`` only stores parameters; fitted attributes end in ``_`` (scikit-learn's convention), so
the registry can check them (:func:`fitted_arrays`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from models.detectors.backend import Forward, compiled_forward, keras_module
from models.detectors.progress import training_progress


@runtime_checkable
class Detector(Protocol):
    name: ClassVar[str]

    def fit(self, X: np.ndarray, X_val: np.ndarray | None = None) -> Detector: ...
    def score(self, X: np.ndarray) -> np.ndarray: ...
    def get_params(self) -> dict[str, Any]: ...
    def save(self, directory: Path) -> None: ...
    @classmethod
    def load(cls, directory: Path) -> Detector: ...


@runtime_checkable
class Explainer(Protocol):
    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class OnlineDetector(Detector, Protocol):
    """Learns while it serves: ``learn`` is called with committed rows only, in stream order, and
    only with the rows that did not alert (an attack never becomes normal by being seen). What it
    learnt is checkpointed (``state``, JSON-ready) and restored (``set_state``) by the worker."""

    def learn(self, X: np.ndarray) -> None: ...
    def state(self) -> dict[str, Any]: ...
    def set_state(self, state: dict[str, Any], /) -> None: ...


@runtime_checkable
class SequentialDetector(OnlineDetector, Protocol):
    """Scores each row after the rows before it: ``score_next`` scores the batch that follows every
    batch scored so far (learnt or still in flight); ``learn`` then gets every row it scored, in
    order, so an anomaly that repeats stops being new."""

    def score_next(self, X: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class MemberHolder(Protocol):
    """A detector made of fitted member detectors (an ensemble)."""

    members_: list[Any]


Explain = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def explainer(detector: object) -> Explain | None:
    """The detector's ``explain``, or None when it does not explain: not an :class:`Explainer`, or a
    :class:`MemberHolder` none of whose members explains."""
    if not isinstance(detector, Explainer):
        return None
    if isinstance(detector, MemberHolder) and not any(explainer(m) for m in detector.members_):
        return None
    return detector.explain


if TYPE_CHECKING:  # mypy holds each zoo class to the parts of the contract it claims
    from models.detectors.autoencoder import DenseAutoencoder
    from models.detectors.context import ContextDetector
    from models.detectors.ensemble import Ensemble
    from models.detectors.online import HalfSpaceTreesDetector

    _explains: type[Explainer] = DenseAutoencoder
    _detector: type[Detector] = DenseAutoencoder
    _online: type[OnlineDetector] = HalfSpaceTreesDetector
    _sequential: type[SequentialDetector] = ContextDetector
    _ensemble: type[Detector] = Ensemble
    _explaining_ensemble: type[Explainer] = Ensemble


def n_params(detector: Any) -> int:
    """Number of learnt parameters, when the detector can tell.

    Keras models count their weights; other detectors may offer ``count_params()`` (fitted arrays,
    tree nodes, ensemble members' sum).
    """
    if hasattr(detector, "count_params"):
        return int(detector.count_params())
    model = getattr(detector, "model_", None)
    return int(model.count_params()) if model is not None and hasattr(model, "count_params") else 0


def fitted_arrays(detector: Any) -> Iterator[tuple[str, np.ndarray]]:
    """The fitted numbers of a detector, by the contract's convention (fitted attributes end in
    ``_``): float arrays and scalars, a Keras network's weights, a scikit-learn estimator's or a
    member detector's own fitted attributes. The registry refuses to write a model if any is not
    finite.

    >>> class Toy:
    ...     name = "toy"
    ...     def __init__(self): self.alpha, self.mean_ = 1.0, np.array([0.5, np.nan])
    >>> [(name, values.tolist()) for name, values in fitted_arrays(Toy())]
    [('mean_', [0.5, nan])]
    """
    yield from _fitted(detector, "", 0)


def _fitted(owner: Any, prefix: str, depth: int) -> Iterator[tuple[str, np.ndarray]]:
    if isinstance(owner, KerasDetector) and getattr(owner, "model_", None) is not None:
        for i, weights in enumerate(owner.model_.get_weights()):
            yield f"{prefix}weights[{i}]", np.asarray(weights)
        return
    for name, value in vars(owner).items():
        if name.endswith("_") and not name.startswith("_"):
            yield from _numbers(value, f"{prefix}{name}", depth)


def _numbers(value: Any, name: str, depth: int) -> Iterator[tuple[str, np.ndarray]]:
    if isinstance(value, bool | int | str | None):
        return
    if isinstance(value, float | np.floating):
        yield name, np.asarray(value, dtype=np.float64)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind in "fc":
            yield name, value
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{name}[{i}]", depth)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{name}[{key!r}]", depth)
    elif depth < 2 and _holds_fitted(value):  # a member detector, a scikit-learn estimator
        yield from _fitted(value, f"{name}.", depth + 1)


def _holds_fitted(value: Any) -> bool:
    from sklearn.base import BaseEstimator

    return isinstance(value, Detector | BaseEstimator)


PARAMS_FILE = "params.json"
WEIGHTS_FILE = "model.weights.h5"


def constructor_params(detector: Any) -> dict[str, Any]:
    """The constructor arguments stored on ``detector`` (fitted ``x_`` and private ``_x`` left out)."""
    return {k: v for k, v in vars(detector).items() if not k.endswith("_") and not k.startswith("_")}


def write_params(directory: Path, detector: Any, **extra: Any) -> None:
    """Write ``params.json``: the detector's class, constructor arguments and any fitted scalars.

    Every detector persists this way (plus arrays in a non-executable format), so loading rebuilds
    the object from our own code and never unpickles anything.
    """
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"class": type(detector).__name__, "params": detector.get_params(), **extra}
    (directory / PARAMS_FILE).write_text(json.dumps(meta, indent=2))


def read_params(directory: Path, cls: type) -> dict[str, Any]:
    """Read ``params.json`` written by :func:`write_params`, checking it belongs to ``cls``."""
    meta: dict[str, Any] = json.loads((directory / PARAMS_FILE).read_text())
    if meta.get("class") != cls.__name__:
        raise ValueError(f"{directory} holds a {meta.get('class')}, not a {cls.__name__}")
    return meta


class KerasDetector:
    """Base for Keras detectors: subclasses build the network; this class trains, saves, loads.

    Persistence writes ``params.json`` (constructor arguments and input width) and the weights as
    ``model.weights.h5``: loading rebuilds the network from our own code and reads arrays only,
    so a model file can never execute code.
    """

    name: ClassVar[str] = "keras"
    # What save() writes: the registry requires each listed and checksummed (models.registry).
    ARTIFACTS: ClassVar[tuple[str, ...]] = (PARAMS_FILE, WEIGHTS_FILE)

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

    def compile_model(self, model: Any) -> None:
        """Compile the training model; override for another loss or an adversarial set-up."""
        keras = keras_module()
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="mse")

    def inference_model(self) -> Any:
        """The model whose output ``score_from_output`` reads (by default the trained one).

        Detectors whose training graph differs from what scoring needs (a VAE samples its latent
        code while training but scores from its mean) build a second model on the same layers.
        """
        return self.model_

    # -- training -------------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return constructor_params(self)

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
        self.compile_model(self.model_)
        stop = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True
        )
        callbacks = [stop]
        verbose = self.verbose
        if verbose == "auto":
            # One progress bar (epoch, loss, val_loss) instead of Keras' line per epoch; in a log
            # file (no terminal) rich prints the bar once at the end.
            callbacks.append(training_progress(f"training {self.name}", self.epochs))
            verbose = 0
        history = self.model_.fit(
            X,
            self.training_target(X),
            validation_data=(X_val, self.training_target(np.asarray(X_val, np.float32))),
            epochs=self.epochs,
            batch_size=self.batch_size,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=True,
        )
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self._forward: Forward | None = None
        return self

    # -- inference ------------------------------------------------------------------------------
    def forward(self, X: np.ndarray) -> np.ndarray:
        if getattr(self, "_forward", None) is None:
            self._forward = compiled_forward(self.inference_model(), self.n_features_)
        assert self._forward is not None
        return self._forward(X)

    def score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return self.score_from_output(X, self.forward(X))

    # -- persistence ----------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        write_params(directory, self, n_features=self.n_features_)
        self.model_.save_weights(directory / WEIGHTS_FILE)

    @classmethod
    def load(cls, directory: Path) -> Self:
        meta = read_params(directory, cls)
        detector = cls(**meta["params"])
        detector.n_features_ = int(meta["n_features"])
        detector.model_ = detector.build(detector.n_features_)
        detector.model_.load_weights(directory / WEIGHTS_FILE)
        detector._forward = None
        return detector


class ReconstructionDetector(KerasDetector):
    """A Keras detector scored by the mean squared error between a row and its reconstruction.

    ``explain`` splits that score into per-column contributions (squared error / d), so each row's
    contributions sum to its score: features of a KDD row, time steps of a window.
    """

    def score_from_output(self, X: np.ndarray, output: np.ndarray) -> np.ndarray:
        return reconstruction_scores(X, output)

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float32)
        return reconstruction_explanation(X, self.forward(X))


# The arithmetic of reconstruction scores, shared by the Keras detectors and the NumPy forward pass
# that serves them in workers (models.detectors.light), so both judge and explain a row alike.
def reconstruction_scores(X: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Mean squared error of each row against its reconstruction."""
    return np.mean(np.square(X - output), axis=1)


def reconstruction_explanation(X: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and per-column contributions (squared error / d; each row's contributions sum to its score)."""
    contributions = np.square(X - output) / X.shape[1]
    return contributions.sum(axis=1), contributions
