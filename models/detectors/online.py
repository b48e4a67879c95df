"""Half-Space Trees (river): the online detector, also usable as a batch detector.

It honours river's protocol (``learn_one(x)`` / ``score_one(x)`` on feature dicts, high score =
anomalous) and the batch :class:`~models.detectors.Detector` protocol: ``fit(X)`` streams the rows through
``learn_one`` in a seeded shuffled order, ``score(X)`` calls ``score_one`` row by row. That Python
loop makes it the *slow comparison detector* (tens of microseconds per row and tree, against a
vectorised model call for a whole batch elsewhere): use it to compare, or where learning online
matters.

Batch ``fit`` sets the feature limits from the training rows (river assumes [0, 1] otherwise). The
reference masses describe the last complete window of ``window_size`` rows, as in river; the shuffle
makes that window a random sample of the training set rather than its newest rows.

Persistence, without pickle: ``params.json`` and ``state.json`` holding the feature keys and limits,
the window counter, and every tree node's masses in depth-first order. Loading rebuilds the trees
from the seed and limits (river draws every split from ``random.Random(seed)``), checks the rebuilt
splits against a stored fingerprint, and restores the masses, so a loaded model scores identically.

>>> import numpy as np
>>> X = np.random.default_rng(0).random((600, 4), dtype=np.float32)
>>> hst = HalfSpaceTreesDetector(n_trees=5, height=6, window_size=100).fit(X)
>>> hst.score(X).shape
(600,)
>>> hst.learn_one({0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5})
>>> 0.0 <= hst.score_one({0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5}) <= 1.0
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from models.detectors.base import PARAMS_FILE, constructor_params, read_params, write_params

STATE_FILE = "state.json"

Limits = dict[Hashable, tuple[float, float]]


def _limits_dict(limits: Limits | Iterable[Iterable[Any]] | None) -> Limits:
    """Limits as a dict, from a dict or from ``(feature, low, high)`` triples (their JSON form)."""
    if limits is None:
        return {}
    if isinstance(limits, dict):
        return {k: (float(lo), float(hi)) for k, (lo, hi) in limits.items()}
    return {k: (float(lo), float(hi)) for k, lo, hi in limits}


def _splits_fingerprint(trees: Iterable[Any]) -> str:
    """sha256 of every branch's (feature, threshold) in depth-first order."""
    digest = hashlib.sha256()
    for tree in trees:
        for node in tree.iter_dfs():
            if hasattr(node, "threshold"):
                digest.update(repr((node.feature, node.threshold)).encode())
    return digest.hexdigest()


class HalfSpaceTreesDetector:
    name: ClassVar[str] = "hst"
    ARTIFACTS: ClassVar[tuple[str, ...]] = (PARAMS_FILE, STATE_FILE)  # what save() writes
    # It keeps learning while it scores: a worker calls learn() with the rows of committed batches.
    learns: ClassVar[bool] = True

    def __init__(
        self,
        n_trees: int = 25,
        height: int = 8,
        window_size: int = 1000,
        limits: Limits | Iterable[Iterable[Any]] | None = None,
        seed: int = 0,
    ) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.limits = limits
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        params = constructor_params(self)
        if self.limits is not None:  # JSON object keys are strings: keep int feature keys as triples
            params["limits"] = [[k, lo, hi] for k, (lo, hi) in _limits_dict(self.limits).items()]
        return params

    def _new_model(self, limits: Limits) -> Any:
        from river.anomaly import HalfSpaceTrees

        return HalfSpaceTrees(
            n_trees=self.n_trees,
            height=self.height,
            window_size=self.window_size,
            limits=limits,
            seed=self.seed,
        )

    # -- river protocol -------------------------------------------------------------------------
    def learn_one(self, x: dict[Hashable, float]) -> None:
        if not hasattr(self, "model_"):
            self.limits_ = _limits_dict(self.limits)
            self.model_ = self._new_model(self.limits_)
        self.model_.learn_one(x)
        if not hasattr(self, "features_"):
            self.features_ = sorted(x)  # type: ignore[type-var]  # river sorts them too

    def score_one(self, x: dict[Hashable, float]) -> float:
        return float(self.model_.score_one(x)) if hasattr(self, "model_") else 0.0

    # -- batch protocol -------------------------------------------------------------------------
    def fit(self, X: np.ndarray, X_val: np.ndarray | None = None) -> Self:
        """Learn the rows of ``X`` one by one, in a seeded shuffled order; ``X_val`` is not needed."""
        X = np.asarray(X, dtype=np.float64)
        if len(X) < self.window_size:
            raise ValueError(
                f"Half-Space Trees score against a complete window of {self.window_size} rows, and only "
                f"{len(X)} were given: pass more rows or a smaller window_size"
            )
        low, high = X.min(axis=0), X.max(axis=0)
        if not np.any(high > low):
            raise ValueError("every feature is constant in the training rows: Half-Space Trees cannot split")
        self.n_features_ = X.shape[1]
        self.limits_ = {i: (float(lo), float(hi)) for i, (lo, hi) in enumerate(zip(low, high, strict=True))}
        self.limits_.update(_limits_dict(self.limits))
        self.model_ = self._new_model(self.limits_)
        self.features_ = list(range(self.n_features_))
        learn = self.model_.learn_one
        for row in X[np.random.default_rng(self.seed).permutation(len(X))].tolist():
            learn(dict(enumerate(row)))
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        score_one = self.model_.score_one
        rows = np.asarray(X, dtype=np.float64).tolist()
        return np.fromiter((score_one(dict(enumerate(row))) for row in rows), np.float64, len(rows))

    def learn(self, X: np.ndarray) -> None:
        """Learn committed rows, in order (river's learn_one for each)."""
        learn = self.model_.learn_one
        for row in np.asarray(X, dtype=np.float64).tolist():
            learn(dict(enumerate(row)))

    def count_params(self) -> int:
        return int(sum(len(nodes) for nodes in self.model_._tree_nodes))

    # -- persistence ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What the trees have learnt (JSON-ready): the window position and every node's masses."""
        model = self.model_
        return {
            "counter": model.counter,
            "first_window": model._first_window,
            "fingerprint": _splits_fingerprint(model.trees),
            # One [l_mass..., r_mass...] pair of lists per tree, nodes in depth-first order.
            "masses": [[[n.l_mass for n in nodes], [n.r_mass for n in nodes]] for nodes in model._tree_nodes],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, onto trees with the same splits."""
        model = self.model_
        if _splits_fingerprint(model.trees) != state["fingerprint"]:
            raise ValueError("the state belongs to Half-Space Trees with other splits")
        for nodes, (l_mass, r_mass) in zip(model._tree_nodes, state["masses"], strict=True):
            for node, left, right in zip(nodes, l_mass, r_mass, strict=True):
                node.l_mass, node.r_mass = left, right
        model.counter = state["counter"]
        model._first_window = state["first_window"]

    def save(self, directory: Path) -> None:
        write_params(directory, self, n_features=getattr(self, "n_features_", None))
        state = {
            "features": self.features_,
            "limits": [[k, *self.limits_[k]] for k in self.features_ if k in self.limits_],
            **self.state(),
        }
        (directory / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, directory: Path) -> Self:
        meta = read_params(directory, cls)
        state = json.loads((directory / STATE_FILE).read_text())
        detector = cls(**meta["params"])
        if meta.get("n_features") is not None:
            detector.n_features_ = int(meta["n_features"])
        detector.features_ = state["features"]
        detector.limits_ = {k: (lo, hi) for k, lo, hi in state["limits"]}
        model = detector._new_model(detector.limits_)
        # river grows the trees on the first learn_one, drawing splits from random.Random(seed):
        # replay that with any row, then overwrite every mass and the window position.
        model.learn_one(dict.fromkeys(detector.features_, 0.0))
        detector.model_ = model
        try:
            detector.set_state(state)
        except ValueError:
            raise ValueError(
                f"{directory}: the rebuilt Half-Space Trees do not match the saved ones (river changed "
                "how it draws splits?): retrain this model with the installed river version"
            ) from None
        return detector
