"""One retrain after a drift event, Kafka-free: post-change rows in, a judged candidate out.

The live drift loop (``consumers.drift.retrain``, in a separate process) and the streaming
evaluation protocol (``models.evaluation.streaming``) both call :func:`retrain_after_change`, so
what the report measures offline is exactly what runs live::

    post-change rows (offset order) -> training part | holdout (newest)
    training part -> production ratios -> evidence (severity, campaigns, persistence) -> mode, ceiling
                  -> rows learnt (quiet, alerting below the ceiling and in no campaign, benign
                     verdicts; never malicious ones; repeats capped) -> the candidate's learnt normal
                     (benign-verdict rows vouch past the ceiling: models.retraining.judged)
    holdout + validation attacks + malicious rows -> shadow evaluation -> passed / rejected
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.retraining.candidate import (
    LabelledValidation,
    adapted_candidate,
    reference_alert_rate,
    shadow_evaluate,
    shadow_reasons,
)
from models.retraining.evidence import Evidence, select_learnt, weigh
from models.retraining.judged import judged_masks, learnt_ceilings, taught_by_verdicts
from models.retraining.policy import RetrainPolicy
from models.retraining.training_data import original_training
from models.scoring import ScoringModel
from stream.labels import is_attack

log = logging.getLogger(__name__)

PASSED, REJECTED, INSUFFICIENT = "passed", "rejected", "insufficient_data"


@dataclass(frozen=True)
class RetrainReport:
    """What a retrain did: ``outcome`` passed / rejected / insufficient_data, the candidate (None
    when there was too little to learn), its shadow results, the evidence and the row accounting."""

    outcome: str
    candidate: ScoringModel | None
    shadow: dict[str, Any]
    detail: str
    selection: dict[str, Any] = field(default_factory=dict)
    contamination: dict[str, Any] = field(default_factory=dict)  # from labels, when events carry them
    seconds: float = 0.0
    evidence: Evidence | None = None
    calibration_scores: np.ndarray | None = None  # the candidate's scores of post-change rows not learnt
    training: dict[str, Any] = field(default_factory=dict)  # the candidate's training description

    def manifest_entries(self, origin: dict[str, Any]) -> dict[str, Any]:
        """Sealed manifest entries of the candidate: its shadow results and where it came from (which
        rule let which rows in, how many)."""
        retrain = {**origin, "selection": self.selection, "outcome": self.outcome, "detail": self.detail}
        if self.evidence is not None:
            retrain["evidence"] = self.evidence.to_dict()
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


def _contamination(labels: np.ndarray | None, learnt: np.ndarray) -> dict[str, Any]:
    """Attack share of what the candidate learns, from replay labels (measured, never used to decide)."""
    if labels is None or not any(label is not None for label in labels):
        return {}
    attack = is_attack(labels)
    by_label: dict[str, int] = {}
    for label in labels[learnt][attack[learnt]]:
        by_label[str(label)] = by_label.get(str(label), 0) + 1
    return {
        "pool_attack_share": float(attack.mean()),
        "learnt_attack_rows": int(attack[learnt].sum()),
        "learnt_attack_share": float(attack[learnt].mean()) if len(learnt) else 0.0,
        "learnt_attack_labels": dict(sorted(by_label.items(), key=lambda kv: -kv[1])[:10]),
    }


def retrain_after_change(
    production: ScoringModel,
    X_post: np.ndarray,
    policy: RetrainPolicy,
    validation: LabelledValidation | None = None,
    labels: np.ndarray | None = None,
    description: dict[str, Any] | None = None,
    benign: np.ndarray | None = None,
    malicious: np.ndarray | None = None,
    confirmed_attacks: np.ndarray | None = None,
) -> RetrainReport:
    """Weigh the evidence on ``X_post`` (post-change rows, encoded by the production encoder, in
    offset order), learn what it allows into the candidate's learnt normal, shadow-evaluate it.

    ``benign`` / ``malicious``: masks over ``X_post`` from analysts' verdicts on alerts and incidents
    (learnt always, vouching past the evidence's ceiling / never, and joining the gate's attacks; a
    row in both is malicious: ``models.retraining.judged``); ``confirmed_attacks``: encoded rows
    analysts confirmed malicious elsewhere, which join the validation attacks of the gate.
    ``labels`` (replay ground truth) only measure the contamination that remains.
    """
    started = time.perf_counter()
    X_post = np.asarray(X_post, dtype=np.float32)
    n = len(X_post)
    if n < policy.min_events:
        detail = f"{n:,} post-change events, {policy.min_events:,} needed"
        return RetrainReport(INSUFFICIENT, None, {}, detail, {"pool": n})
    benign, malicious = judged_masks(n, benign, malicious)
    train_cut, hold_cut = split_post_change(n, policy)
    train_part = X_post[train_cut]
    cut = max(float(production.threshold.threshold_), 1e-12)
    ratio = production.judge(train_part) / cut
    reference = reference_alert_rate(production)
    evidence, capped, campaign, calm = weigh(
        train_part, ratio, production.threshold.ratios, policy, reference or 0.0, benign[train_cut]
    )
    learnt = select_learnt(
        train_part, ratio, evidence, capped, campaign, policy, calm, benign[train_cut], malicious[train_cut]
    )
    # A seeded share of the learnt rows is scored but not learnt: the candidate's calibration scores
    # (the drift monitor's reference once it is promoted) must come from rows it has not memorised.
    is_cal = np.random.default_rng(policy.seed).random(len(learnt.rows)) < policy.calibration_share
    fit_rows, cal_rows = learnt.rows[~is_cal], learnt.rows[is_cal]
    selection: dict[str, Any] = {"events": n, "mode": evidence.mode, "ceiling": evidence.ceiling,
                                 **learnt.counts, "learnt": int(len(fit_rows))}  # fmt: skip
    contamination = _contamination(labels[train_cut] if labels is not None else None, fit_rows)
    if len(fit_rows) < policy.min_learnt_rows:
        detail = (
            f"only {len(fit_rows):,} of {len(train_part):,} post-change events may be learnt "
            f"({policy.min_learnt_rows:,} needed; mode {evidence.mode}): an attack burst rather than drift?"
        )
        return RetrainReport(INSUFFICIENT, None, {}, detail, selection, contamination, evidence=evidence)
    judged_fit = benign[train_cut][fit_rows]
    ceilings = learnt_ceilings(judged_fit, evidence.ceiling)
    candidate = adapted_candidate(production, train_part[fit_rows], ratio[fit_rows], policy, ceilings)
    # Confirmed attacks join the gate's: from elsewhere, and every malicious post-change row (both parts).
    parts = [a for a in (confirmed_attacks, X_post[malicious]) if a is not None and len(a)]
    attacks = np.vstack(parts) if parts else None
    taught = None
    if benign.any() and candidate.learnt_normal is not None:
        judged = train_part[fit_rows][judged_fit]
        taught = taught_by_verdicts(
            X_post[hold_cut], judged, candidate.learnt_normal.radius_, benign[hold_cut]
        )
        selection["holdout_taught_by_verdicts"] = int(taught.sum())
    shadow = shadow_evaluate(
        production,
        candidate,
        X_post[hold_cut],
        validation,
        policy,
        evidence.ceiling,
        attacks,
        reference,
        taught,
    )
    outcome = PASSED if shadow["passed"] else REJECTED
    detail = "shadow evaluation passed" if shadow["passed"] else shadow_reasons(shadow, policy)
    training = {
        "data": "post-change events",
        "original": original_training(production),
        "params": (production.manifest.get("training") or {}).get("params"),
        **(description or {}),
        "learnt_normal": {"rows": int(len(fit_rows)), "calibration_rows": int(len(cal_rows))},
    }
    seconds = time.perf_counter() - started
    log.info("retrain of %s: %s (%s; mode %s, %d rows learnt) in %.1fs",
             production.stream, outcome, detail, evidence.mode, len(fit_rows), seconds)  # fmt: skip
    return RetrainReport(outcome, candidate, shadow, detail, selection, contamination, seconds, evidence,
                         candidate.judge(train_part[cal_rows]), training)  # fmt: skip
