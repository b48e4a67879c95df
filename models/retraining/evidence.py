"""Label-free evidence on post-change traffic: is it a new normal, an attack, or both?

A retrain after drift must learn the rows a shift of normal traffic makes the model alert on (or the
false alarms stay forever) and never learn an attack. Without labels, the evidence is the traffic's
own shape (measured on KDD, the 10% file's model against NSL-KDD's normal traffic and its attacks):

- **severity**: a shifted normal alerts mostly just above the threshold (NSL normal: 6.3% alert, 99%
  of them below 20 thresholds); attacks far above (NSL attacks: median 21 thresholds);
- **campaigns**: an attack repeats near-identical records (a flood repeats one record thousands of
  times; NSL's neptune rows are distinct but lie within a hair of each other), a new normal is as
  diverse as the old one. An alerting row with ``campaign_size`` or more alerting rows within
  ``radius`` (the median distance between neighbouring quiet rows) is a *campaign* row;
- **persistence**: the excess alert rate (above the model's own rate on its validation normal)
  holds across the post-change windows, not in bursts: at least ``persistence`` of the windows carry
  half the mean excess or more.

The evidence decides a **mode** and with it the highest severity ratio an alerting row may be
learnt at (the *ceiling*); campaign rows, their *halo* (rows within a learnt record's reach of a
campaign record: its variants, which would vouch for it), repeated records past their share and
confirmed-malicious rows are never learnt, analysts' confirmed-benign rows always are (the shadow
gate still judges the result):

=============  ==================================================  =================================
mode           evidence                                            alerting rows learnt
=============  ==================================================  =================================
``new_normal`` persistent, campaign rows <= ``max_campaign_share``  below "critical" (20 thresholds)
               of the alerting rows
``mixed``      persistent, campaigns present (attacks in the new   below "medium" (2 thresholds):
               traffic)                                            "low" severity only
``bursts``     the alert rate comes in bursts                      below "high", from the calm windows
                                                                   only (alert rate at most twice the
                                                                   median window's)
=============  ==================================================  =================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.neighbors import NearestNeighbors

from models.retraining.filtering import cap_repeats
from models.retraining.judged import unjudged_campaign
from models.retraining.policy import RetrainPolicy

NEW_NORMAL, MIXED, BURSTS = "new_normal", "mixed", "bursts"


@dataclass(frozen=True)
class Evidence:
    """What the post-change rows say, and the learning mode it leads to (recorded in the manifest and
    the drift loop's outcome)."""

    events: int
    alert_share: float  # of the rows left once repeated records are capped
    window_alert_rates: list[float]  # per consecutive window of the post-change rows
    persistent: bool
    campaign_share: float  # of the (capped) alerting rows: rows in campaigns
    radius: float  # the neighbourhood a campaign is counted in
    mode: str
    ceiling: float  # alerting rows below this severity ratio may be learnt
    calm_windows: int = 0  # bursts: the windows alerting rows may still be learnt from

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Learnt:
    """The rows to learn (indices into the post-change rows, in order) and what each rule did."""

    rows: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)


def _distinct(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows, each row's index among them, and how often each occurs."""
    distinct, inverse, counts = np.unique(X, axis=0, return_inverse=True, return_counts=True)
    return distinct, inverse.ravel(), counts


def _nearest_gap(D: np.ndarray) -> np.ndarray:
    """Each distinct row's distance to its nearest other row."""
    return NearestNeighbors(n_neighbors=2, algorithm="brute").fit(D).kneighbors(D)[0][:, 1]


def _neighbours_within(D: np.ndarray, weights: np.ndarray, radius: float, chunk: int = 1024) -> np.ndarray:
    """For each distinct row, the weighted count of rows (itself included) within ``radius``."""
    sq = np.einsum("ij,ij->i", D, D)
    near = np.empty(len(D))
    r2 = radius * radius
    for start in range(0, len(D), chunk):
        block = D[start : start + chunk]
        d2 = sq[start : start + chunk, None] + sq[None, :] - 2.0 * block @ D.T
        near[start : start + chunk] = (d2 <= r2 + 1e-9) @ weights
    return near


def _nearest_distance(X: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Each row of ``X``'s distance to its nearest row of ``D``."""
    return NearestNeighbors(n_neighbors=1, algorithm="brute").fit(D).kneighbors(X)[0][:, 0]


def campaign_rows(X: np.ndarray, alerting: np.ndarray, policy: RetrainPolicy) -> tuple[np.ndarray, float]:
    """Which rows of ``X`` are alerting rows in a campaign (see the module docstring), and the radius.

    Distinct records count: a record repeated many times is a flood, which :func:`weigh` finds by the
    repeat cap; a new normal's records may recur (a replay's passes, a daily job) without being one.

    >>> near = np.arange(6)[:, None] * 0.01  # six distinct records within a hair of each other
    >>> X = np.r_[near, np.arange(10, 20)[:, None] * 1.0, np.arange(0, 30, 3)[:, None] + 100.0]
    >>> alerting = np.r_[np.ones(6, bool), np.zeros(10, bool), np.ones(10, bool)]
    >>> rows, radius = campaign_rows(X.astype(np.float32), alerting, RetrainPolicy(campaign_size=5))
    >>> rows.tolist() == [True] * 6 + [False] * 20, radius
    (True, 1.0)
    """
    X = np.asarray(X, dtype=np.float32)
    alerting = np.asarray(alerting, dtype=bool)
    out = np.zeros(len(X), dtype=bool)
    if alerting.sum() < policy.campaign_size:
        return out, 0.0
    quiet, _, _ = _distinct(X[~alerting]) if (~alerting).any() else (np.zeros((0, X.shape[1])), None, None)
    alerts, inverse, counts = _distinct(X[alerting])
    reference = quiet if len(quiet) >= 2 else alerts
    radius = float(np.quantile(_nearest_gap(reference.astype(np.float64)), policy.campaign_radius_quantile))
    near = _neighbours_within(alerts.astype(np.float64), np.ones(len(alerts)), radius)
    out[np.flatnonzero(alerting)] = (near[inverse] - 1) >= policy.campaign_size
    return out, radius


def weigh(
    X: np.ndarray,
    ratio: np.ndarray,
    severity_ratios: tuple[float, ...],
    policy: RetrainPolicy,
    reference_rate: float = 0.0,
    benign: np.ndarray | None = None,
) -> tuple[Evidence, np.ndarray, np.ndarray, np.ndarray]:
    """The evidence on post-change rows ``X`` (offset order) whose severity ratios (score / threshold)
    the production model gave as ``ratio``; ``reference_rate``: its alert rate on its own validation
    normal; ``benign``: rows analysts judged benign, whose campaigns are no evidence of an attack
    (they leave the campaign share). Also returns the capped rows, the campaign mask and the calm
    mask (rows outside bursts)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    alerting = ratio >= 1.0
    capped = cap_repeats(X, np.arange(len(X)), policy.max_record_share)
    alert_share = float(alerting[capped].mean()) if capped.size else 0.0
    windows = [w for w in np.array_split(alerting, policy.evidence_windows) if len(w)]
    rates = [float(w.mean()) for w in windows]
    excess = np.maximum(np.asarray(rates) - reference_rate, 0.0)
    mean_excess = float(excess.mean()) if len(excess) else 0.0
    persistent = bool(mean_excess > 0 and np.mean(excess >= 0.5 * mean_excess) >= policy.persistence)
    campaign = np.zeros(len(X), dtype=bool)
    in_capped, radius = campaign_rows(X[capped], alerting[capped], policy)
    campaign[capped[in_capped]] = True
    # Floods: records the repeat cap had to cut. Their alerting copies are campaign rows too.
    cut = np.setdiff1d(np.arange(len(X)), capped)
    if cut.size:
        flood = np.unique(np.ascontiguousarray(X[cut]), axis=0)
        both = np.ascontiguousarray(np.vstack([flood, X[capped]]))
        _, inverse = np.unique(both, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        is_flood = np.isin(inverse[len(flood) :], inverse[: len(flood)])
        campaign[capped[is_flood & alerting[capped]]] = True
        in_capped = campaign[capped]
    alerting_capped = int(alerting[capped].sum())
    suspect = unjudged_campaign(campaign, benign)[capped]
    share = float(suspect.sum() / alerting_capped) if alerting_capped else 0.0
    high, critical = severity_ratios[2], severity_ratios[3]
    calm = np.ones(len(X), dtype=bool)
    if not persistent:
        # Bursts: what alerts in the calm windows between them is the traffic's own tail, not the burst.
        mode, ceiling = BURSTS, high
        limit = policy.burst_factor * float(np.median(rates))
        calm = np.concatenate([np.full(len(w), r <= limit) for w, r in zip(windows, rates, strict=True)])
    elif share <= policy.max_campaign_share:
        mode, ceiling = NEW_NORMAL, critical
    else:
        mode, ceiling = MIXED, severity_ratios[1]
    calm_windows = (
        int(sum(r <= policy.burst_factor * float(np.median(rates)) for r in rates)) if not persistent else 0
    )
    evidence = Evidence(len(X), alert_share, rates, persistent, share, radius, mode, ceiling, calm_windows)
    return evidence, capped, campaign, calm


def select_learnt(
    X: np.ndarray,
    ratio: np.ndarray,
    evidence: Evidence,
    capped: np.ndarray,
    campaign: np.ndarray,
    policy: RetrainPolicy,
    calm: np.ndarray | None = None,
    benign: np.ndarray | None = None,
    malicious: np.ndarray | None = None,
) -> Learnt:
    """Rows to learn: quiet rows, alerting rows below the evidence's ceiling that are no campaign's,
    analysts' benign rows; never a malicious one; repeated records capped again on what is kept."""
    n = len(X)
    ratio = np.asarray(ratio, dtype=np.float64)
    benign = np.zeros(n, bool) if benign is None else np.asarray(benign, bool)
    malicious = np.zeros(n, bool) if malicious is None else np.asarray(malicious, bool)
    in_pool = np.zeros(n, dtype=bool)
    in_pool[capped] = True
    quiet = in_pool & (ratio < 1.0)
    alerting = in_pool & (ratio >= 1.0)
    calm = np.ones(n, dtype=bool) if calm is None else np.asarray(calm, bool)
    # A campaign's halo: rows within a learnt record's reach of a campaign record (its variants, the
    # few copies of a flood the model does not alert on) would vouch for the campaign: not learnt.
    halo = np.zeros(n, dtype=bool)
    suspect = unjudged_campaign(campaign, benign)  # a campaign judged benign casts no halo
    if suspect.any() and in_pool.any():
        quiet_rows = np.unique(np.ascontiguousarray(X[quiet]), axis=0).astype(np.float64)
        if len(quiet_rows) >= 2:
            reach = float(np.quantile(_nearest_gap(quiet_rows), policy.radius_quantile))
            records = np.unique(np.ascontiguousarray(X[suspect]), axis=0).astype(np.float64)
            pool = np.flatnonzero(in_pool & ~campaign)
            halo[pool] = _nearest_distance(X[pool].astype(np.float64), records) <= reach
    learnable = alerting & (ratio < evidence.ceiling) & ~campaign & calm & ~halo
    keep = ((quiet & ~halo) | learnable | benign) & ~malicious
    final = cap_repeats(X, np.flatnonzero(keep), policy.max_record_share)
    counts = {
        "pool": n,
        "repeats_capped": int(n - capped.size),
        "quiet": int(quiet.sum()),
        "alerting": int(alerting.sum()),
        "alerting_learnt": int((learnable & ~malicious).sum()),
        "above_ceiling": int((alerting & (ratio >= evidence.ceiling)).sum()),
        "campaign": int((alerting & campaign & (ratio < evidence.ceiling)).sum()),
        "in_bursts": int((alerting & ~campaign & ~calm & (ratio < evidence.ceiling)).sum()),
        "campaign_halo": int(halo.sum()),
        "benign_verdicts": int(benign.sum()),
        # Rows learnt only because an analyst said benign: what the evidence alone would have left out.
        "benign_verdicts_beyond_evidence": int((benign & ~malicious & ~((quiet & ~halo) | learnable)).sum()),
        "benign_verdicts_kept": int((benign & ~malicious)[final].sum()),  # after the repeat cap
        "malicious_verdicts": int(malicious.sum()),
        "kept": int(final.size),
    }
    return Learnt(final, counts)
