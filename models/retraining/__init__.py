"""Retraining after drift, Kafka-free: which post-change rows a candidate may learn from, training it
with the production recipe, and the shadow evaluation that decides whether it is promoted.

- :mod:`models.retraining.policy`: :class:`RetrainPolicy`, every knob and its default;
- :mod:`models.retraining.filtering`: the contamination bound (non-alerting rows, a score quantile,
  a cap on repeated records);
- :mod:`models.retraining.candidate`: the production recipe, the candidate, the shadow evaluation;
- :mod:`models.retraining.reference`: the production model's training data, rebuilt from its manifest;
- :mod:`models.retraining.retrain`: :func:`retrain_after_change`, all of it in order.

The live loop runs this in a separate process (``consumers.drift.retrain``); the streaming
evaluation protocol runs it inline.
"""

from models.retraining.candidate import LabelledValidation, shadow_evaluate
from models.retraining.filtering import cap_repeats, select_normal_looking
from models.retraining.policy import RetrainPolicy
from models.retraining.reference import rebuild_training_data
from models.retraining.retrain import INSUFFICIENT, PASSED, REJECTED, RetrainReport, retrain_after_change

__all__ = [
    "INSUFFICIENT",
    "PASSED",
    "REJECTED",
    "LabelledValidation",
    "RetrainPolicy",
    "RetrainReport",
    "cap_repeats",
    "rebuild_training_data",
    "retrain_after_change",
    "select_normal_looking",
    "shadow_evaluate",
]
