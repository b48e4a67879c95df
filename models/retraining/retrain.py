"""One retrain after a drift event, Kafka-free: post-change rows in, a judged candidate out.

The live drift loop (``consumers.drift.retrain``, in a separate process) and the streaming
evaluation protocol (``models.evaluation.streaming``) both call :func:`retrain_after_change`, so
what the report measures offline is exactly what runs live.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.retraining.candidate import LabelledValidation, shadow_evaluate, shadow_reasons, train_candidate
from models.retraining.filtering import MOVED, NORMAL, cap_repeats, capped_alert_share, select_normal_looking
from models.retraining.policy import RetrainPolicy
from models.retraining.reference import original_training
from models.scoring import ScoringModel
from models.training.fit import FittedModel

log = logging.getLogger(__name__)

PASSED, REJECTED, INSUFFICIENT = "passed", "rejected", "insufficient_data"
MIN_CALIBRATION_ROWS = 50


@dataclass(frozen=True)
class RetrainReport:
    """What a retrain did: ``outcome`` passed / rejected / insufficient_data, the candidate (None
    when there was too little data), its shadow results and the row accounting."""

    outcome: str
    fitted: FittedModel | None
    shadow: dict[str, Any]
    detail: str
    selection: dict[str, Any] = field(default_factory=dict)
    contamination: dict[str, Any] = field(default_factory=dict)  # from labels, when events carry them
    seconds: float = 0.0

    def manifest_entries(self, origin: dict[str, Any]) -> dict[str, Any]:
        """Sealed manifest entries of the candidate: its shadow results and where it came from."""
        retrain = {**origin, "selection": self.selection, "outcome": self.outcome, "detail": self.detail}
        if self.contamination:
            retrain["contamination"] = self.contamination
        return {"shadow": self.shadow, "retrain": retrain}


def split_post_change(n: int, policy: RetrainPolicy) -> tuple[slice, slice]:
    """Offset-ordered cuts of ``n`` post-change rows: the training part, and the holdout (newest),
    which only the shadow evaluation sees.

    >>> split_post_change(100, RetrainPolicy(min_events=10, max_events=100))
    (slice(0, 75, None), slice(75, 100, None))
    """
    n_hold = int(n * policy.holdout_share)
    return slice(0, n - n_hold), slice(n - n_hold, n)


def _is_attack(labels: np.ndarray) -> np.ndarray:
    return np.array([label is not None and label != "normal" for label in labels], dtype=bool)


def _contamination(labels: np.ndarray | None, fit_rows: np.ndarray, cal_rows: np.ndarray) -> dict[str, Any]:
    """Attack share of what the candidate learns, from replay labels (measured, never used to decide)."""
    if labels is None or not any(label is not None for label in labels):
        return {}
    attack = _is_attack(labels)
    return {
        "pool_attack_share": float(attack.mean()),
        "fit_attack_rows": int(attack[fit_rows].sum()),
        "fit_attack_share": float(attack[fit_rows].mean()) if len(fit_rows) else 0.0,
        "calibration_attack_share": float(attack[cal_rows].mean()) if len(cal_rows) else 0.0,
    }


def retrain_after_change(
    production: ScoringModel,
    X_post: np.ndarray,
    policy: RetrainPolicy,
    validation: LabelledValidation | None = None,
    reference: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    description: dict[str, Any] | None = None,
) -> RetrainReport:
    """Filter ``X_post`` (post-change rows, encoded by the production encoder, in offset order),
    train a candidate with the production recipe, shadow-evaluate it on the newest rows.

    ``reference``: rows the production model was trained on; ``rehearsal_share`` of the fit rows
    come from them so the candidate does not forget the normal traffic it knew. ``labels`` (replay
    ground truth) only measure the contamination that remains.
    """
    started = time.perf_counter()
    X_post = np.asarray(X_post, dtype=np.float32)
    if len(X_post) < policy.min_events:
        detail = f"{len(X_post):,} post-change events, {policy.min_events:,} needed"
        return RetrainReport(INSUFFICIENT, None, {}, detail, {"pool": int(len(X_post))})
    train_cut, hold_cut = split_post_change(len(X_post), policy)
    train_part = X_post[train_cut]
    scores = np.asarray(production.detector.score(train_part), dtype=np.float64)
    alerts = production.threshold.classify(scores)
    if policy.learn_below > 1.0:  # rows alerting at low severity are learnt too (see RetrainPolicy)
        alerts = scores >= policy.learn_below * float(production.threshold.threshold_)
    # A seeded share of the training part calibrates the candidate's threshold (a time-ordered cut
    # could fall entirely inside a flood); it is filtered like the rest, minus the quantile cut,
    # which would bias the threshold low.
    rng = np.random.default_rng(policy.seed)
    is_cal = rng.random(len(train_part)) < policy.calibration_share
    fit_pool, cal_pool = np.flatnonzero(~is_cal), np.flatnonzero(is_cal)
    alert_share = capped_alert_share(train_part, alerts, policy.max_record_share)
    mode = MOVED if alert_share > policy.moved_alert_share else NORMAL
    cap, moved_q = policy.max_record_share, policy.moved_quantile
    fit_sel = select_normal_looking(
        train_part[fit_pool], scores[fit_pool], alerts[fit_pool], policy.keep_quantile, cap, mode, moved_q
    )
    cal_sel = select_normal_looking(
        train_part[cal_pool], scores[cal_pool], alerts[cal_pool], None, cap, mode, moved_q
    )
    selection: dict[str, Any] = {
        "events": int(len(X_post)),
        "mode": mode,
        "capped_alert_share": alert_share,
        "fit": fit_sel.counts,
        "calibration": cal_sel.counts,
    }
    fit_rows, cal_rows = fit_pool[fit_sel.rows], cal_pool[cal_sel.rows]
    contamination = _contamination(labels, fit_rows, cal_rows)
    if len(fit_rows) < policy.min_fit_rows or len(cal_rows) < MIN_CALIBRATION_ROWS:
        detail = (
            f"only {len(fit_rows):,} of {len(fit_pool):,} post-change events look normal to the production "
            f"model ({policy.min_fit_rows:,} needed): an attack burst rather than drift of normal traffic?"
        )
        return RetrainReport(INSUFFICIENT, None, {}, detail, selection, contamination)
    fit = train_part[fit_rows]
    if reference is not None and len(reference) and policy.rehearsal_share > 0:
        wanted = int(len(fit) * policy.rehearsal_share / (1 - policy.rehearsal_share))
        ref_rows = cap_repeats(reference, np.arange(len(reference)), policy.max_record_share)
        picked = rng.choice(ref_rows, min(wanted, len(ref_rows)), replace=False)
        fit = np.vstack([fit, np.asarray(reference, dtype=np.float32)[np.sort(picked)]])
        selection["rehearsal_rows"] = int(len(picked))
    order = rng.permutation(len(fit))
    n_stop = max(1, int(len(fit) * policy.early_stop_share))
    early_stop, fit = fit[order[:n_stop]], fit[order[n_stop:]]
    info = {
        "data": "post-change events",
        "original": original_training(production),
        **(description or {}),
        "rows": {"fit": int(len(fit)), "early_stop": int(n_stop), "calibration": int(len(cal_rows))},
    }
    fitted = train_candidate(production, fit, early_stop, train_part[cal_rows], validation, info)
    shadow = shadow_evaluate(production, fitted, X_post[hold_cut], validation, policy, mode)
    outcome = PASSED if shadow["passed"] else REJECTED
    detail = "shadow evaluation passed" if shadow["passed"] else shadow_reasons(shadow, policy)
    seconds = time.perf_counter() - started
    log.info("retrain of %s: %s (%s) in %.0fs", production.stream, outcome, detail, seconds)
    return RetrainReport(outcome, fitted, shadow, detail, selection, contamination, seconds)
