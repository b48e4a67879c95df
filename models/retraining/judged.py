"""Rows analysts judged: what a benign or malicious verdict (on an alert, or on an incident: every
one of its alerts) changes in a retrain, Kafka-free.

An analyst's word outranks the label-free evidence (``models.retraining.evidence``), within bounds:

- a row judged **benign** is learnt even where the evidence would not learn it (above the mode's
  ceiling, in a campaign or its halo, in a burst), and it vouches up to ``vouch_ratio`` times its own
  severity (:func:`learnt_ceilings`), not only up to the mode's ceiling: a verdict on a cluster of
  medium-severity new normal would otherwise teach nothing in ``mixed`` mode (2 thresholds);
- judged-benign campaign rows are no evidence of an attack: they leave the campaign share that
  decides the mode, and cast no halo (:func:`unjudged_campaign`);
- a row judged **malicious** is never learnt, also where a benign verdict (its incident's) covers it
  (:func:`judged_masks`), and joins the shadow gate's attacks wherever it lies (training part or
  holdout): the candidate must still detect it;
- the gate's "never-learnt alerts kept" criterion (alerts at or above the ceiling must keep alerting)
  is judged on the holdout rows no verdict taught: neither judged benign nor within the learnt
  normal's radius of a judged-benign record (:func:`taught_by_verdicts`); the recall criterion on the
  validation attacks and the confirmed-malicious rows still holds everything to ``recall_margin``.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors


def judged_masks(
    n: int, benign: np.ndarray | None, malicious: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over ``n`` rows: benign, malicious; a row in both is malicious only.

    >>> judged_masks(3, np.array([True, True, False]), np.array([False, True, False]))
    (array([ True, False, False]), array([False,  True, False]))
    """
    b = np.zeros(n, dtype=bool) if benign is None else np.asarray(benign, dtype=bool)
    m = np.zeros(n, dtype=bool) if malicious is None else np.asarray(malicious, dtype=bool)
    if len(b) != n or len(m) != n:
        raise ValueError(f"verdict masks must have one entry per row ({n}), got {len(b)} and {len(m)}")
    return b & ~m, m


def unjudged_campaign(campaign: np.ndarray, benign: np.ndarray | None) -> np.ndarray:
    """Campaign rows that no analyst judged benign: the ones that count as evidence of an attack.

    >>> unjudged_campaign(np.array([True, True, False]), np.array([True, False, False])).tolist()
    [False, True, False]
    """
    campaign = np.asarray(campaign, dtype=bool)
    return campaign if benign is None else campaign & ~np.asarray(benign, dtype=bool)


def learnt_ceilings(judged: np.ndarray, ceiling: float) -> np.ndarray:
    """The ceiling each learnt row vouches under: the evidence's for rows it let in, none (infinity:
    ``vouch_ratio`` times its own severity bounds it) for rows an analyst judged benign.

    >>> learnt_ceilings(np.array([False, True]), 2.0).tolist()
    [2.0, inf]
    """
    return np.where(np.asarray(judged, dtype=bool), np.inf, float(ceiling))


def taught_by_verdicts(
    holdout: np.ndarray, judged_records: np.ndarray, radius: float, judged_holdout: np.ndarray | None = None
) -> np.ndarray:
    """Holdout rows an analyst's benign verdict covers (``judged_holdout``) or reaches: within
    ``radius`` (the learnt normal's) of a judged-benign record the candidate learnt.

    >>> records = np.array([[0.0, 0.0], [5.0, 5.0]], dtype=np.float32)
    >>> taught_by_verdicts(np.array([[0.1, 0.0], [2.0, 2.0]], np.float32), records, 0.5).tolist()
    [True, False]
    """
    holdout = np.asarray(holdout, dtype=np.float32)
    taught = np.zeros(len(holdout), dtype=bool)
    if judged_holdout is not None:
        taught |= np.asarray(judged_holdout, dtype=bool)
    if len(judged_records) and len(holdout):
        index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(np.asarray(judged_records, np.float32))
        taught |= index.kneighbors(holdout)[0][:, 0] <= radius
    return taught
