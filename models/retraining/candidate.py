"""The adapted candidate, and its shadow evaluation against production.

The candidate is the production model (same encoder, detector, threshold) with the post-change rows
the evidence let in added to its learnt normal (``models.learnt_normal``); only alerting rows near a
learnt record, and about as unusual as it, change their score. The shadow evaluation runs both
models on the same held-out newest rows and on the attacks a candidate must still detect.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from models.learnt_normal import LearntNormal
from models.retraining.filtering import cap_repeats
from models.retraining.policy import RetrainPolicy
from models.scoring import ScoringModel
from models.training.data import TrainingData


@dataclass(frozen=True)
class LabelledValidation:
    """Held-out labelled rows from training data, encoded with the production encoder: the original
    validation attacks a candidate must still detect (normal rows are reported, not judged)."""

    X: np.ndarray
    y: np.ndarray  # True = attack
    source: str = "labelled validation split of the training data"

    @classmethod
    def of(cls, data: TrainingData) -> LabelledValidation | None:
        if data.labelled is None or data.labelled_anomaly is None:
            return None
        return cls(data.labelled, np.asarray(data.labelled_anomaly, dtype=bool))


def adapted_candidate(
    production: ScoringModel,
    records: np.ndarray,
    ratios: np.ndarray,
    policy: RetrainPolicy,
    ceiling: float | np.ndarray,
) -> ScoringModel:
    """Production with ``records`` (severity ``ratios``) added to what its learnt normal holds; none
    vouches at or past ``ceiling`` (the severities this adaptation did not learn; one per record
    where analysts' verdicts lifted it, ``models.retraining.judged.learnt_ceilings``)."""
    if production.learnt_normal is not None:
        learnt = production.learnt_normal.extended(records, ratios, policy.seed, ceiling)
    else:
        learnt = LearntNormal(policy.vouch_ratio, policy.radius_quantile, policy.max_learnt_records)
        learnt = learnt.fit(records, ratios, policy.seed, ceiling)
    return replace(production, version=0, learnt_normal=learnt)


def reference_alert_rate(production: ScoringModel) -> float | None:
    """The production model's alert rate on its own validation normal (its calibration scores): the
    rate its false alarms are judged against; None when it kept no calibration scores."""
    scores = production.calibration_scores
    if scores is None or not len(scores):
        return None
    return float(np.mean(production.threshold.classify(np.asarray(scores, dtype=np.float64))))


def _rate(flags: np.ndarray) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


def _recall(production: ScoringModel, candidate: ScoringModel, X: np.ndarray) -> dict[str, Any]:
    prod = _rate(production.threshold.classify(production.judge(X)))
    cand = _rate(candidate.threshold.classify(candidate.judge(X)))
    return {"production": prod, "candidate": cand, "attacks": int(len(X))}


def shadow_evaluate(
    production: ScoringModel,
    candidate: ScoringModel,
    holdout: np.ndarray,
    validation: LabelledValidation | None,
    policy: RetrainPolicy,
    ceiling: float,
    malicious: np.ndarray | None = None,
    reference_rate: float | None = None,
    taught: np.ndarray | None = None,
) -> dict[str, Any]:
    """Both models on the same held-out newest rows and on the attacks; ``passed`` when all of the
    policy's criteria hold (see :class:`RetrainPolicy`).

    Normal-looking holdout rows: repeated records capped (no flood), production ratio below
    ``normal_band``. Never-learnt alerts: holdout rows production alerted on at or above ``ceiling``
    thresholds. Attacks: the validation attacks and analysts' ``malicious`` rows. ``reference_rate``:
    production's alert rate on its validation normal; its rate on the normal-looking holdout must be
    ``min_elevation`` times that, or there are no false alarms to remove. ``taught``: holdout rows
    analysts' benign verdicts cover or reach (``models.retraining.judged.taught_by_verdicts``), left
    out of the never-learnt alerts: a verdict taught their severity. A criterion with nothing to
    judge (no labelled split on sensor series, too few never-learnt alerts, no reference) is None.
    """
    cut = float(production.threshold.threshold_)
    prod_scores, cand_scores = production.judge(holdout), candidate.judge(holdout)
    prod_alert = production.threshold.classify(prod_scores)
    cand_alert = candidate.threshold.classify(cand_scores)
    ratio = prod_scores / max(cut, 1e-12)
    band = np.zeros(len(holdout), dtype=bool)
    band[cap_repeats(holdout, np.arange(len(holdout)), policy.max_record_share)] = True
    band &= ratio < policy.normal_band
    rate_prod, rate_cand = _rate(prod_alert[band]) or 0.0, _rate(cand_alert[band]) or 0.0
    alert_falls = bool(band.any() and rate_prod > 0 and rate_cand <= (1 - policy.min_alert_drop) * rate_prod)
    criteria: dict[str, bool | None] = {"alert_rate_falls": alert_falls}
    if reference_rate is not None:
        criteria["alert_rate_elevated"] = bool(rate_prod >= policy.min_elevation * reference_rate)
    kept = ratio >= ceiling
    if taught is not None:
        kept &= ~np.asarray(taught, dtype=bool)
    kept_alerts = None
    if ceiling > 1.0 and kept.sum() >= policy.min_kept_alerts:
        kept_rate = float(np.mean(cand_alert[kept]))
        kept_alerts = {"production": 1.0, "candidate": kept_rate, "alerts": int(kept.sum())}
        criteria["never_learnt_alerts_kept"] = bool(kept_rate >= 1.0 - policy.recall_margin)
    attack_parts = []
    if validation is not None and validation.y.any():
        attacks = validation.X[validation.y]
        if len(attacks) > policy.max_gate_attacks:  # a seeded sample: recall to about 0.5 points
            rows = np.random.default_rng(policy.seed).choice(
                len(attacks), policy.max_gate_attacks, replace=False
            )
            attacks = attacks[np.sort(rows)]
        attack_parts.append(attacks)
    if malicious is not None and len(malicious):
        attack_parts.append(np.asarray(malicious, dtype=np.float32))
    recall = None
    if attack_parts:
        recall = _recall(production, candidate, np.vstack(attack_parts))
        criteria["recall_holds"] = bool(
            (recall["candidate"] or 0.0) >= (recall["production"] or 0.0) - policy.recall_margin
        )
    shadow: dict[str, Any] = {
        "holdout_events": int(len(holdout)),
        "normal_looking_events": int(band.sum()),
        "alert_rate": {"production": rate_prod, "candidate": rate_cand},
        "alert_rate_all": {"production": _rate(prod_alert) or 0.0, "candidate": _rate(cand_alert) or 0.0},
        "threshold": {"production": cut, "candidate": float(candidate.threshold.threshold_)},
        "recall": recall,
        "never_learnt_alerts": kept_alerts,
        "ceiling": ceiling,
        "reference_alert_rate": reference_rate,
        "criteria": criteria,
    }
    if validation is not None and (~validation.y).any():
        normal = validation.X[~validation.y]
        shadow["validation_fpr"] = {
            "production": _rate(production.threshold.classify(production.judge(normal))),
            "candidate": _rate(candidate.threshold.classify(candidate.judge(normal))),
        }
    shadow["passed"] = all(value is not False for value in criteria.values()) and alert_falls
    return shadow


def shadow_reasons(shadow: dict[str, Any], policy: RetrainPolicy) -> str:
    """Why a shadow evaluation failed, in one line (empty when it passed)."""
    reasons = []
    criteria = shadow["criteria"]
    if not criteria.get("alert_rate_falls", False) and criteria.get("alert_rate_elevated") is not False:
        rate = shadow["alert_rate"]
        reasons.append(
            f"alert rate on normal-looking data {rate['production']:.2%} -> {rate['candidate']:.2%} "
            f"(must fall by {policy.min_alert_drop:.0%})"
        )
    if criteria.get("alert_rate_elevated") is False:
        reasons.append(
            f"alert rate on normal-looking data {shadow['alert_rate']['production']:.2%} is within "
            f"{policy.min_elevation:g}x of the model's own {shadow['reference_alert_rate']:.2%}: "
            "no false alarms to remove"
        )
    if criteria.get("recall_holds") is False:
        recall = shadow["recall"]
        reasons.append(
            f"recall on validation and confirmed attacks {recall['production']:.3f} -> "
            f"{recall['candidate']:.3f} "
            f"(may drop {policy.recall_margin:.2f} at most)"
        )
    if criteria.get("never_learnt_alerts_kept") is False:
        kept = shadow["never_learnt_alerts"]
        reasons.append(
            f"alerts at or above {shadow['ceiling']:g} thresholds kept {kept['candidate']:.3f} of "
            f"{kept['alerts']:,} (may drop {policy.recall_margin:.2f} at most)"
        )
    return "; ".join(reasons)
