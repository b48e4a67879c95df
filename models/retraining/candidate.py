"""A candidate model trained with the production model's own recipe, and its shadow evaluation.

The candidate keeps the production model's encoder (so its scores and the validation split are in
the same feature space), its detector parameters (the manifest records every constructor argument)
and its threshold kind and parameters; only the rows it learns from are new.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.detectors import is_deep
from models.retraining.filtering import MOVED, NORMAL, cap_repeats
from models.retraining.policy import RetrainPolicy
from models.scoring import ScoringModel
from models.training.data import TrainingData
from models.training.fit import FittedModel, fit_model
from models.training.recipes import Recipe, resolve


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


def production_recipe(model: ScoringModel) -> Recipe:
    """The detector and every constructor argument the production model was trained with (from its
    manifest; the fitted detector's own parameters when an old manifest lacks them)."""
    params = dict((model.manifest.get("training") or {}).get("params") or model.detector.get_params())
    if is_deep(model.detector_name):
        params["verbose"] = 0  # a background process: no progress bar
    repeat = resolve(model.stream, model.detector_name).repeat_rows
    return Recipe(model.detector_name, params, repeat)


def _threshold_spec(model: ScoringModel) -> tuple[str, float, dict[str, Any]]:
    params = model.threshold.params()
    fpr = float(params.pop("fpr", 0.01))
    return model.threshold.kind, fpr, params


def train_candidate(
    production: ScoringModel,
    fit: np.ndarray,
    early_stop: np.ndarray,
    calibration: np.ndarray,
    validation: LabelledValidation | None,
    description: dict[str, Any],
) -> FittedModel:
    """Fit the production recipe on ``fit`` (early stopping on ``early_stop``), its threshold kind on
    ``calibration`` (or, for ``fbeta``, the labelled validation split)."""
    data = TrainingData(
        production.stream,
        production.encoder,
        fit,
        early_stop,
        calibration,
        validation.X if validation is not None else None,
        validation.y if validation is not None else None,
        description,
    )
    kind, fpr, params = _threshold_spec(production)
    return fit_model(data, production_recipe(production), kind, fpr, params)


def _rate(flags: np.ndarray) -> float:
    return float(np.mean(flags)) if len(flags) else 0.0


def shadow_evaluate(
    production: ScoringModel,
    candidate: FittedModel,
    holdout: np.ndarray,
    validation: LabelledValidation | None,
    policy: RetrainPolicy,
    mode: str = NORMAL,
) -> dict[str, Any]:
    """Both models on the same held-out recent rows and validation attacks; ``passed`` when the
    alert rate on normal-looking rows falls and recall on the attacks holds (see RetrainPolicy).

    Normal-looking holdout rows: repeated records capped (no flood), and below severity "high" of
    the production model, or, when its baseline moved (``mode``), below the ``moved_quantile`` of
    its holdout scores, as the training rows were chosen.

    Without a labelled validation split (sensor series have none) only the alert-rate criterion
    decides, and ``recall`` is None.
    """
    prod_scores = np.asarray(production.detector.score(holdout), dtype=np.float64)
    cand_scores = np.asarray(candidate.detector.score(holdout), dtype=np.float64)
    prod_alert = production.threshold.classify(prod_scores)
    cand_alert = candidate.threshold.classify(cand_scores)
    # Normal-looking: no flood (repeated records capped as for training), below severity "high".
    band = np.zeros(len(holdout), dtype=bool)
    band[cap_repeats(holdout, np.arange(len(holdout)), policy.max_record_share)] = True
    if mode == MOVED:
        band &= prod_scores < np.quantile(prod_scores[band], policy.moved_quantile)
    else:
        band &= prod_scores < policy.normal_band * float(production.threshold.threshold_)
    rate_prod, rate_cand = _rate(prod_alert[band]), _rate(cand_alert[band])
    alert_falls = bool(band.any() and rate_prod > 0 and rate_cand <= (1 - policy.min_alert_drop) * rate_prod)
    shadow: dict[str, Any] = {
        "holdout_events": int(len(holdout)),
        "mode": mode,
        "normal_looking_events": int(band.sum()),
        "alert_rate": {"production": rate_prod, "candidate": rate_cand},
        "alert_rate_all": {"production": _rate(prod_alert), "candidate": _rate(cand_alert)},
        "threshold": {
            "production": float(production.threshold.threshold_),
            "candidate": float(candidate.threshold.threshold_),
        },
        "recall": None,
        "criteria": {"alert_rate_falls": alert_falls},
    }
    recall_holds = True
    if validation is not None and validation.y.any():
        attacks, normal = validation.X[validation.y], validation.X[~validation.y]
        recall_prod = _rate(production.threshold.classify(production.detector.score(attacks)))
        recall_cand = _rate(candidate.threshold.classify(candidate.detector.score(attacks)))
        recall_holds = recall_cand >= recall_prod - policy.recall_margin
        shadow["recall"] = {"production": recall_prod, "candidate": recall_cand, "attacks": int(len(attacks))}
        shadow["validation_fpr"] = {
            "production": _rate(production.threshold.classify(production.detector.score(normal))),
            "candidate": _rate(candidate.threshold.classify(candidate.detector.score(normal))),
        }
        shadow["criteria"]["recall_holds"] = bool(recall_holds)
    shadow["passed"] = bool(alert_falls and recall_holds)
    return shadow


def shadow_reasons(shadow: dict[str, Any], policy: RetrainPolicy) -> str:
    """Why a shadow evaluation failed, in one line (empty when it passed)."""
    reasons = []
    rate = shadow["alert_rate"]
    if not shadow["criteria"].get("alert_rate_falls", False):
        reasons.append(
            f"alert rate on normal-looking data {rate['production']:.2%} -> {rate['candidate']:.2%} "
            f"(must fall by {policy.min_alert_drop:.0%})"
        )
    if not shadow["criteria"].get("recall_holds", True):
        recall = shadow["recall"]
        reasons.append(
            f"recall on validation attacks {recall['production']:.3f} -> {recall['candidate']:.3f} "
            f"(may drop {policy.recall_margin:.2f} at most)"
        )
    return "; ".join(reasons)
