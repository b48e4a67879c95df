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
from models.training.data import TrainingData
from models.training.train import TrainingRequest, training_data
from stream.datasets import DatasetMissingError
from stream.datasets.schema import stream_schema
from stream.settings import STREAMS

log = logging.getLogger(__name__)


def original_training(model: ScoringModel) -> dict[str, Any]:
    """The training description of the first model of this model's lineage."""
    training = model.manifest.get("training") or {}
    return dict(training.get("original") or training)


def rebuild_training_data(model: ScoringModel, data_dir: Path) -> TrainingData | None:
    """The production model's training data as ``anomstream train`` built it (the same request, read
    back from its manifest), or None when it cannot be rebuilt identically (the built-in sensor series
    carry no labels; a missing file; another encoder).

    A dataset schema's stream is rebuilt from the schema its encoder carries (its ``source.path``) with
    the recorded ``training_rows`` and seed: without it the gate would have no validation attacks and
    would promote a candidate that learnt the attacks of a labelled schema's stream unjudged. A
    built-in stream is rebuilt from its own file, through its built-in schema, with its protocol.
    """
    training = original_training(model)
    seed = int(training.get("seed", 0))
    schema = encoder_schema(model.encoder) or stream_schema(model.stream)
    if schema is None or (model.stream in STREAMS and schema.kind == "series"):
        return None
    if model.stream in STREAMS:
        request = TrainingRequest(model.stream, protocol=str(training.get("protocol", "full")), seed=seed,
                                  allow_synthetic=training.get("data") == "synthetic")  # fmt: skip
    else:
        rows, window = training.get("training_rows"), training.get("window")
        request = TrainingRequest.for_schema(schema, training_rows=rows, seed=seed,
                                             **({"window": int(window)} if window else {}))  # fmt: skip
    try:
        data = training_data(data_dir, request)
    except (DatasetMissingError, OSError, ValueError) as exc:  # a DatasetFormatError is a ValueError
        log.warning("cannot rebuild the %s training data (%s): no validation attacks", model.stream, exc)
        return None
    rebuilt = data.encoder.to_dict()
    if encoder_schema(model.encoder) is None:  # saved before encoders carried their built-in schema
        rebuilt.pop("schema", None)
    if rebuilt != model.encoder.to_dict():
        log.warning("the rebuilt %s training data has another encoder: no validation attacks", model.stream)
        return None
    return data
