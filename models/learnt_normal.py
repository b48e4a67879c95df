"""Normal traffic learnt after a drift: records a model vouches for, beside its detector.

When normal traffic shifts, the production detector raises false alarms on the new normal. Retraining
the detector itself on the new traffic does not fix that on KDD (measured: an autoencoder trained on
old + new normal needs a threshold so loose that it misses the smurf flood, or keeps alerting on the
new normal's tail), so a candidate keeps the production detector and threshold unchanged and adds
a :class:`LearntNormal`: the post-change records the adaptation judged normal
(``models.retraining.evidence`` decides which), each with the severity ratio the detector gave it.

Scoring: a row the detector alerts on (score at or above the threshold) is *vouched for* when its
nearest learnt record lies within ``radius_`` of it **and** its own ratio (score / threshold) is below
that record's *reach*: ``vouch_ratio`` times the record's own ratio (at least 1), and never past the
ceiling it was learnt under (the severities the adaptation did not learn stay alerting). A learnt
record only vouches for rows about as unusual as itself. The vouched row's score is divided by the
reach, so it falls below the threshold; every other score is left as it is. So:

- the old normal is still judged by the untouched detector (nothing is forgotten);
- a new-normal row near a learnt record stops alerting, at the severity it was learnt at, not more;
- an attack far from every learnt record, or far more anomalous than its nearest one, still alerts;
- only alerting rows are looked up (a few per cent of traffic once adapted), so scoring stays lean.

``radius_`` is the ``radius_quantile`` of the learnt records' distances to their nearest other
record: how far apart records of the learnt normal are. The records are stored raw (``records.npy``,
``ratios.npy``, ``reach.npy``, ``params.json``), never pickled; the neighbour index is rebuilt when
loaded.

>>> rng = np.random.default_rng(0)
>>> learnt = LearntNormal().fit(rng.random((200, 4), dtype=np.float32), np.full(200, 3.0))
>>> X = np.vstack([learnt.records_[:2], np.full((1, 4), 9.0, np.float32)])
>>> learnt.adjust(X, np.array([2.5, 9.0, 2.5]), threshold=1.0).round(3).tolist()
[0.556, 9.0, 2.5]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import numpy as np

PARAMS, RECORDS, RATIOS, REACH = "params.json", "records.npy", "ratios.npy", "reach.npy"
ARTIFACTS = (PARAMS, RECORDS, RATIOS, REACH)


class LearntNormal:
    """Learnt-normal records and how far each vouches; see the module docstring."""

    def __init__(
        self, vouch_ratio: float = 1.5, radius_quantile: float = 0.99, max_records: int = 30_000
    ) -> None:
        if vouch_ratio < 1.0:
            raise ValueError(f"vouch_ratio must be at least 1, got {vouch_ratio}")
        if not 0.0 < radius_quantile <= 1.0:
            raise ValueError(f"radius_quantile must lie in (0, 1], got {radius_quantile}")
        if max_records < 2:
            raise ValueError(f"max_records must be at least 2, got {max_records}")
        self.vouch_ratio = vouch_ratio
        self.radius_quantile = radius_quantile
        self.max_records = max_records

    def params(self) -> dict[str, Any]:
        return {
            "vouch_ratio": self.vouch_ratio,
            "radius_quantile": self.radius_quantile,
            "max_records": self.max_records,
        }

    # -- learning ---------------------------------------------------------------------------------
    def fit(
        self, records: np.ndarray, ratios: np.ndarray, seed: int = 0, ceiling: float | np.ndarray = np.inf
    ) -> Self:
        """Learn ``records`` (encoded rows) with the severity ratios the detector gave them, none to
        vouch past ``ceiling`` (a ratio, or one per record). Identical records are kept once; past
        ``max_records`` a seeded sample is kept, the alerting records (the learnt false alarms,
        fewest and most needed) first."""
        records = np.ascontiguousarray(records, dtype=np.float32)
        ratios = np.asarray(ratios, dtype=np.float64)
        if records.ndim != 2 or len(records) != len(ratios):
            raise ValueError("records must be a 2-d array with one ratio per row")
        reach = np.minimum(self.vouch_ratio * np.maximum(ratios, 1.0), np.broadcast_to(ceiling, ratios.shape))
        unique, first = np.unique(records, axis=0, return_index=True)
        ratios, reach = ratios[first], reach[first]
        if len(unique) < 2:
            raise ValueError(f"a learnt normal needs at least 2 distinct records, got {len(unique)}")
        if len(unique) > self.max_records:
            rng = np.random.default_rng(seed)
            order = np.lexsort(
                (rng.random(len(unique)), (ratios < 1.0).astype(np.int8))
            )  # alerting ones first
            keep = np.sort(order[: self.max_records])
            unique, ratios, reach = unique[keep], ratios[keep], reach[keep]
        self.records_, self.ratios_, self.reach_ = unique, ratios, reach
        self._index()
        gaps = self._nn_.kneighbors(self.records_, n_neighbors=2)[0][:, 1]
        self.radius_ = float(np.quantile(gaps, self.radius_quantile))
        return self

    def extended(
        self, records: np.ndarray, ratios: np.ndarray, seed: int = 0, ceiling: float | np.ndarray = np.inf
    ) -> LearntNormal:
        """A new learnt normal: these records and the ones learnt before, each with its own reach (an
        adapted model adapting again keeps what it learnt; alerting records first at the cap)."""
        both = np.vstack([np.asarray(records, np.float32), self.records_])
        ratios = np.asarray(ratios, np.float64)
        ceilings = np.r_[np.broadcast_to(ceiling, ratios.shape), self.reach_]  # old records keep their reach
        return LearntNormal(**self.params()).fit(both, np.r_[ratios, self.ratios_], seed, ceilings)

    def _index(self) -> None:
        # Imported here: every worker imports this module, and only an adapted model needs the index
        # (scikit-learn and SciPy cost a new worker ~60 MB and a second of CPU to import).
        from sklearn.neighbors import NearestNeighbors

        self._nn_ = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(self.records_)

    # -- scoring ----------------------------------------------------------------------------------
    def adjust(self, X: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
        """``scores`` with every vouched-for alerting row divided below ``threshold`` (pure)."""
        scores = np.asarray(scores, dtype=np.float64)
        cut = max(float(threshold), 1e-12)
        rows = np.flatnonzero(scores >= cut)
        if rows.size == 0:
            return scores
        distance, nearest = self._nn_.kneighbors(np.asarray(X, np.float32)[rows], n_neighbors=1)
        reach = self.reach_[nearest[:, 0]]
        ratio = scores[rows] / cut
        vouched = (distance[:, 0] <= self.radius_) & (ratio < reach)
        if not vouched.any():
            return scores
        out = scores.copy()
        out[rows[vouched]] = scores[rows[vouched]] / reach[vouched]
        return out

    def summary(self) -> dict[str, Any]:
        """What the manifest records: how many records, how many of them alerted, the radius."""
        return {
            **self.params(),
            "records": int(len(self.records_)),
            "alerting_records": int(np.sum(self.ratios_ >= 1.0)),
            "radius": self.radius_,
        }

    # -- persistence ------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / PARAMS).write_text(json.dumps({**self.params(), "radius": self.radius_}, indent=2))
        np.save(directory / RECORDS, self.records_, allow_pickle=False)
        np.save(directory / RATIOS, self.ratios_, allow_pickle=False)
        np.save(directory / REACH, self.reach_, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> LearntNormal:
        params = json.loads((directory / PARAMS).read_text())
        learnt = cls(
            float(params["vouch_ratio"]), float(params["radius_quantile"]), int(params["max_records"])
        )
        learnt.records_ = np.load(directory / RECORDS, allow_pickle=False).astype(np.float32, copy=False)
        learnt.ratios_ = np.load(directory / RATIOS, allow_pickle=False).astype(np.float64, copy=False)
        learnt.reach_ = np.load(directory / REACH, allow_pickle=False).astype(np.float64, copy=False)
        if learnt.records_.ndim != 2 or not len(learnt.records_) == len(learnt.ratios_) == len(learnt.reach_):
            raise ValueError("learnt normal: records and ratios do not match")
        learnt.radius_ = float(params["radius"])
        learnt._index()
        return learnt
