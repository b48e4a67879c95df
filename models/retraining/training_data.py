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

from models.features import encoder_schema
from models.scoring import ScoringModel
from models.training.data import TrainingData, ecg_training_data, kdd_training_data, load_kdd_training
from models.training.schema_data import schema_training_data
from stream.datasets import DatasetMissingError

log = logging.getLogger(__name__)


def original_training(model: ScoringModel) -> dict[str, Any]:
    """The training description of the first model of this model's lineage."""
    training = model.manifest.get("training") or {}
    return dict(training.get("original") or training)


def rebuild_training_data(model: ScoringModel, data_dir: Path) -> TrainingData | None:
    """The production model's training data as ``anomstream train`` built it, or None when it cannot
    be rebuilt identically (sensor series carry no labels; a missing file; another encoder).

    A dataset schema's stream is rebuilt from the schema its encoder carries (its ``source.path``) with
    the recorded ``training_rows`` and seed: without it the gate would have no validation attacks and
    would promote a candidate that learnt the attacks of a labelled schema's stream unjudged.
    """
    training = original_training(model)
    seed = int(training.get("seed", 0))
    schema = encoder_schema(model.encoder)
    try:
        if schema is not None:
            rows, window = training.get("training_rows"), training.get("window")
            data = schema_training_data(schema, None, rows, seed, int(window) if window else None)
        elif model.stream == "kdd":
            frame, source = load_kdd_training(data_dir, allow_synthetic=training.get("data") == "synthetic")
            data = kdd_training_data(frame, source, str(training.get("protocol", "full")), seed)
        elif model.stream == "ecg":
            data = ecg_training_data(data_dir, seed, str(training.get("scaling", "global")))
        else:
            return None
    except (DatasetMissingError, OSError, ValueError) as exc:  # a DatasetFormatError is a ValueError
        log.warning("cannot rebuild the %s training data (%s): no validation attacks", model.stream, exc)
        return None
    if data.encoder.to_dict() != model.encoder.to_dict():
        log.warning("the rebuilt %s training data has another encoder: no validation attacks", model.stream)
        return None
    return data
