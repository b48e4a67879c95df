"""Ensemble of registry detectors, combined by rank or by vote.

Members are given as ``(registry name, constructor params)`` pairs and fitted together in ``fit``
on the same rows. A seeded ``calibration_fraction`` of those rows is held out of every member's
training, and the members' scores on it calibrate the combination:

- ``mode="rank"`` (default): each member's score becomes its empirical CDF among the held-out
  normal scores (the fraction of held-out normal rows scoring at or below it), and the ensemble
  score is the mean over members, in [0, 1]. Scores on different scales become comparable, and a
  row's score does not depend on its batch.
- ``mode="vote"``: each member flags a row when its score reaches its own
  :class:`~models.thresholds.QuantileThreshold` (``fpr``) fitted on the held-out scores. The score
  is ``(votes + mean rank) / (members + 1)``: the vote count decides, the mean rank (< 1) breaks
  ties so the score stays continuous for thresholds and ROC curves. A majority of ``m`` members
  voted exactly when ``score >= majority_score_`` (``(m // 2 + 1) / (m + 1)``).

``explain`` averages the members' per-feature contributions, each normalised to sum to one per row;
an ensemble of which no member explains does not explain (:func:`~models.detectors.base.explainer`
is None), so the scoring pipeline falls back to scores alone.

Persistence: ``params.json``, ``calibration.json`` (the held-out scores and thresholds) and each
member in ``members/<i>-<name>/``, saved and loaded by the member's own class.

>>> import numpy as np
>>> X = np.random.default_rng(0).random((600, 5), dtype=np.float32)
>>> ens = Ensemble(members=[("iforest", {"n_estimators": 20}), ("pca", {})]).fit(X)
>>> s = ens.score(X)
>>> bool(s.min() >= 0 and s.max() <= 1)
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from models.detectors.base import (
    PARAMS_FILE,
    constructor_params,
    explainer,
    n_params,
    read_params,
    write_params,
)
from models.detectors.zoo import detector_class
from models.thresholds import QuantileThreshold, Threshold, threshold_from_dict

MODES = ("rank", "vote")
CALIBRATION_FILE = "calibration.json"
# A deep, a tree and a linear detector; the autoencoder capped at 20 epochs to keep fit under a minute.
DEFAULT_MEMBERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("ae", {"epochs": 20}),
    ("iforest", {}),
    ("pca", {}),
)


class Ensemble:
    name: ClassVar[str] = "ensemble"
    # What save() writes, beside each member's own artifacts under members/<i>-<name>/.
    ARTIFACTS: ClassVar[tuple[str, ...]] = (PARAMS_FILE, CALIBRATION_FILE)

    def __init__(
        self,
        members: Sequence[Sequence[Any]] = DEFAULT_MEMBERS,
        mode: str = "rank",
        fpr: float = 0.01,
        calibration_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.members = members
        self.mode = mode
        self.fpr = fpr
        self.calibration_fraction = calibration_fraction
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        params = constructor_params(self)
        params["members"] = [[name, dict(member_params)] for name, member_params in self._specs()]
        return params

    def _specs(self) -> list[tuple[str, dict[str, Any]]]:
        specs = [(str(name), dict(params)) for name, params in self.members]
        if not specs:
            raise ValueError("an ensemble needs at least one member")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        return specs

    # -- training -------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, X_val: np.ndarray | None = None) -> Self:
        """Fit every member on the rows not held out; calibrate on the held-out ones.

        ``X_val`` goes to the members (early stopping of deep members), not into calibration.
        """
        specs = self._specs()
        X = np.asarray(X, dtype=np.float32)
        order = np.random.default_rng(self.seed).permutation(len(X))
        cut = max(1, int(len(X) * self.calibration_fraction))
        held_out, train = X[order[:cut]], X[order[cut:]]
        self.n_features_ = X.shape[1]
        self.members_ = [
            detector_class(name)(**{"seed": self.seed, **params}).fit(train, X_val) for name, params in specs
        ]
        held_out_scores = [np.asarray(m.score(held_out), dtype=np.float64) for m in self.members_]
        self._calibrate(held_out_scores)
        return self

    def _calibrate(self, held_out_scores: list[np.ndarray]) -> None:
        self.reference_ = [np.sort(s) for s in held_out_scores]
        self.thresholds_: list[Threshold] = [QuantileThreshold(fpr=self.fpr).fit(s) for s in held_out_scores]
        m = len(held_out_scores)
        self.majority_score_ = (m // 2 + 1) / (m + 1)

    # -- scoring --------------------------------------------------------------------------------
    def ranks(self, member_scores: Sequence[np.ndarray]) -> np.ndarray:
        """(n, members): each member's score as its empirical CDF among held-out normal scores."""
        return np.column_stack(
            [
                np.searchsorted(ref, np.asarray(s, dtype=np.float64), side="right") / len(ref)
                for ref, s in zip(self.reference_, member_scores, strict=True)
            ]
        )

    def combine(self, member_scores: Sequence[np.ndarray]) -> np.ndarray:
        mean_rank = self.ranks(member_scores).mean(axis=1)
        if self.mode == "rank":
            return mean_rank
        votes = np.sum([t.classify(s) for t, s in zip(self.thresholds_, member_scores, strict=True)], axis=0)
        return (votes + mean_rank) / (len(self.members_) + 1)

    def score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return self.combine([m.score(X) for m in self.members_])

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and the explaining members' contributions, each normalised to sum to one per row,
        averaged. Only when a member explains (:func:`~models.detectors.base.explainer` says so)."""
        X = np.asarray(X, dtype=np.float32)
        member_scores, shares = [], []
        for member in self.members_:
            explain = explainer(member)
            if explain is not None:
                scores, contributions = explain(X)
                total = contributions.sum(axis=1, keepdims=True)
                shares.append(contributions / np.where(total > 0, total, 1.0))
            else:
                scores = member.score(X)
            member_scores.append(scores)
        if not shares:
            raise ValueError("no member of this ensemble explains: score it instead (see explainer())")
        return self.combine(member_scores), np.mean(shares, axis=0)

    def count_params(self) -> int:
        return sum(n_params(m) for m in self.members_)

    # -- persistence ----------------------------------------------------------------------------
    @staticmethod
    def _member_dir(directory: Path, index: int, name: str) -> Path:
        return directory / "members" / f"{index}-{name}"

    def save(self, directory: Path) -> None:
        names = [name for name, _ in self._specs()]
        write_params(directory, self, n_features=self.n_features_, member_names=names)
        calibration = {
            "reference": [r.tolist() for r in self.reference_],
            "thresholds": [t.to_dict() for t in self.thresholds_],
        }
        (directory / CALIBRATION_FILE).write_text(json.dumps(calibration))
        for i, (name, member) in enumerate(zip(names, self.members_, strict=True)):
            member.save(self._member_dir(directory, i, name))

    @classmethod
    def load(cls, directory: Path) -> Self:
        meta = read_params(directory, cls)
        ensemble = cls(**meta["params"])
        ensemble.n_features_ = int(meta["n_features"])
        # Member classes come from the registry's name table only: a name outside it cannot
        # make this import anything.
        ensemble.members_ = [
            detector_class(name).load(cls._member_dir(directory, i, name))
            for i, name in enumerate(meta["member_names"])
        ]
        calibration = json.loads((directory / CALIBRATION_FILE).read_text())
        ensemble.reference_ = [np.asarray(r, dtype=np.float64) for r in calibration["reference"]]
        ensemble.thresholds_ = [threshold_from_dict(t) for t in calibration["thresholds"]]
        m = len(ensemble.members_)
        ensemble.majority_score_ = (m // 2 + 1) / (m + 1)
        return ensemble
