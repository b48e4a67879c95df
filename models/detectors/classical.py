"""scikit-learn detectors: One-Class SVM, Isolation Forest and PCA reconstruction error.

Each wraps one estimator behind the :class:`~models.detectors.Detector` protocol (higher = more anomalous)
and persists it with skops, never pickle: ``params.json`` plus ``model.skops``. Loading lists the
types in the file that skops does not trust by default (:func:`skops.io.get_untrusted_types`),
refuses the file if any of them is outside :data:`ALLOWED_TYPES` (a short list of scikit-learn and
NumPy types these estimators need), and only then loads it, trusting exactly that vetted list.

>>> import numpy as np
>>> X = np.random.default_rng(0).random((500, 6), dtype=np.float32)
>>> IsolationForestDetector(n_estimators=20).fit(X).score(X).shape
(500,)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from models.detectors.base import PARAMS_FILE, constructor_params, read_params, write_params

MODEL_FILE = "model.skops"

# Types skops does not trust by default that we accept in our own files: plain data containers.
ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",  # IsolationForest's fitted trees
        "numpy.random.mtrand.RandomState",
        "numpy.random._mt19937.MT19937",
    }
)


class UntrustedModelError(ValueError):
    """A skops file holds a type outside the allow-list: it is not loaded."""


def load_skops(path: Path) -> Any:
    """Load a skops file, trusting only vetted types; raise :class:`UntrustedModelError` otherwise."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise UntrustedModelError(
            f"{path} contains types outside the allow-list ({', '.join(refused)}): refusing to load it. "
            "Retrain the model with anomstream, or restore the registry folder from a trusted copy."
        )
    return sio.load(path, trusted=untrusted)


class SklearnDetector:
    """Base: subclasses make the estimator and turn its output into an anomaly score."""

    name: ClassVar[str] = "sklearn"
    ARTIFACTS: ClassVar[tuple[str, ...]] = (PARAMS_FILE, MODEL_FILE)  # what save() writes

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def make_estimator(self) -> Any:
        raise NotImplementedError

    def score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        return constructor_params(self)

    def training_rows(self, X: np.ndarray) -> np.ndarray:
        return X

    def fit(self, X: np.ndarray, X_val: np.ndarray | None = None) -> Self:
        """Fit on normal rows; ``X_val`` is accepted for the protocol and not needed."""
        X = np.asarray(X, dtype=np.float32)
        self.n_features_ = X.shape[1]
        self.estimator_ = self.make_estimator().fit(self.training_rows(X))
        return self

    def save(self, directory: Path) -> None:
        import skops.io as sio

        write_params(directory, self, n_features=self.n_features_)
        sio.dump(self.estimator_, directory / MODEL_FILE)

    @classmethod
    def load(cls, directory: Path) -> Self:
        meta = read_params(directory, cls)
        detector = cls(**meta["params"])
        detector.n_features_ = int(meta["n_features"])
        detector.estimator_ = load_skops(directory / MODEL_FILE)
        return detector


class OneClassSVMDetector(SklearnDetector):
    """One-Class SVM (RBF kernel); score = ``-decision_function``.

    The fit is O(n^2) in memory and time, so it uses a seeded subsample of ``max_samples`` rows.
    Scoring costs one kernel evaluation per support vector (about ``nu * max_samples`` of them).
    """

    name: ClassVar[str] = "ocsvm"

    def __init__(
        self,
        nu: float = 0.05,
        kernel: str = "rbf",
        gamma: str | float = "scale",
        max_samples: int = 10_000,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.nu = nu
        self.kernel = kernel
        self.gamma = gamma
        self.max_samples = max_samples

    def make_estimator(self) -> Any:
        from sklearn.svm import OneClassSVM

        return OneClassSVM(nu=self.nu, kernel=self.kernel, gamma=self.gamma, cache_size=500)

    def training_rows(self, X: np.ndarray) -> np.ndarray:
        if len(X) <= self.max_samples:
            return X
        rows = np.random.default_rng(self.seed).choice(len(X), self.max_samples, replace=False)
        return X[np.sort(rows)]

    def score(self, X: np.ndarray) -> np.ndarray:
        return -self.estimator_.decision_function(np.asarray(X, dtype=np.float32))

    def count_params(self) -> int:
        return int(self.estimator_.support_vectors_.size + self.estimator_.dual_coef_.size)


class IsolationForestDetector(SklearnDetector):
    """Isolation Forest; score = ``-score_samples`` (short average path length = anomalous)."""

    name: ClassVar[str] = "iforest"

    def __init__(
        self,
        n_estimators: int = 200,
        max_samples: int | str = "auto",
        max_features: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features

    def make_estimator(self) -> Any:
        from sklearn.ensemble import IsolationForest

        return IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            max_features=self.max_features,
            random_state=self.seed,
        )

    def score(self, X: np.ndarray) -> np.ndarray:
        return -self.estimator_.score_samples(np.asarray(X, dtype=np.float32))

    def count_params(self) -> int:
        return int(sum(tree.tree_.node_count for tree in self.estimator_.estimators_))


class PCADetector(SklearnDetector):
    """PCA reconstruction error: mean squared residual after projecting on the main components.

    ``n_components`` is a count, or a fraction of variance to keep. ``explain`` returns the squared
    residual of each feature divided by d, so a row's contributions sum to its score.
    """

    name: ClassVar[str] = "pca"

    def __init__(self, n_components: int | float = 0.95, whiten: bool = False, seed: int = 0) -> None:
        super().__init__(seed)
        self.n_components = n_components
        self.whiten = whiten

    def make_estimator(self) -> Any:
        from sklearn.decomposition import PCA

        return PCA(n_components=self.n_components, whiten=self.whiten, random_state=self.seed)

    def _residuals(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        pca = self.estimator_
        return X - pca.inverse_transform(pca.transform(X))

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.mean(np.square(self._residuals(X)), axis=1)

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and per-feature contributions (squared residual / d)."""
        residuals = self._residuals(X)
        contributions = np.square(residuals) / residuals.shape[1]
        return contributions.sum(axis=1), contributions

    def count_params(self) -> int:
        return int(self.estimator_.components_.size + self.estimator_.mean_.size)
