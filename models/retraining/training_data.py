"""The production model's own training data, rebuilt from its manifest: the labelled validation
split (the original validation attacks a candidate must still detect) and the normal rows it learnt
(what it vouched for before).

A retrained model records the description of the data its lineage started from (``original``), so
a candidate of a candidate is still judged against the same validation attacks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from models.scoring import ScoringModel
from models.training.data import TrainingData, ecg_training_data, kdd_training_data, load_kdd_training
from stream.datasets import DatasetMissingError

log = logging.getLogger(__name__)


def original_training(model: ScoringModel) -> dict[str, Any]:
    """The training description of the first model of this model's lineage."""
    training = model.manifest.get("training") or {}
    return dict(training.get("original") or training)


def rebuild_training_data(model: ScoringModel, data_dir: Path) -> TrainingData | None:
    """The production model's training data as ``anomstream train`` built it, or None when it cannot
    be rebuilt identically (sensor series carry no labels; a missing file; another encoder)."""
    training = original_training(model)
    seed = int(training.get("seed", 0))
    try:
        if model.stream == "kdd":
            frame, source = load_kdd_training(data_dir, allow_synthetic=training.get("data") == "synthetic")
            data = kdd_training_data(frame, source, str(training.get("protocol", "full")), seed)
        elif model.stream == "ecg":
            data = ecg_training_data(data_dir, seed, str(training.get("scaling", "global")))
        else:
            return None
    except (DatasetMissingError, OSError, ValueError) as exc:
        log.warning("cannot rebuild the %s training data (%s): no validation attacks", model.stream, exc)
        return None
    if data.encoder.to_dict() != model.encoder.to_dict():
        log.warning("the rebuilt %s training data has another encoder: no validation attacks", model.stream)
        return None
    return data
