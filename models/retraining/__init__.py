"""Retraining after drift, Kafka-free: which post-change rows a candidate learns, the candidate,
and the shadow evaluation that decides whether it is promoted.

- :mod:`models.retraining.policy`: :class:`RetrainPolicy`, every knob and its default;
- :mod:`models.retraining.evidence`: label-free evidence (severity, campaigns, persistence) and the
  rows it lets a candidate learn;
- :mod:`models.retraining.filtering`: the cap on repeated records;
- :mod:`models.retraining.candidate`: the adapted candidate (production + learnt normal) and the
  shadow evaluation;
- :mod:`models.retraining.training_data`: the production model's training data, rebuilt from its manifest
  (the validation attacks every candidate must still detect);
- :mod:`models.retraining.retrain`: :func:`retrain_after_change`, all of it in order.

The live loop runs this in a separate process (``consumers.drift.retrain``); the streaming
evaluation protocol runs it inline.
"""

from models.retraining.candidate import LabelledValidation, adapted_candidate, shadow_evaluate
from models.retraining.evidence import BURSTS, MIXED, NEW_NORMAL, Evidence, select_learnt, weigh
from models.retraining.filtering import cap_repeats
from models.retraining.policy import RetrainPolicy
from models.retraining.retrain import INSUFFICIENT, PASSED, REJECTED, RetrainReport, retrain_after_change
from models.retraining.training_data import rebuild_training_data

__all__ = [
    "BURSTS",
    "INSUFFICIENT",
    "MIXED",
    "NEW_NORMAL",
    "PASSED",
    "REJECTED",
    "Evidence",
    "LabelledValidation",
    "RetrainPolicy",
    "RetrainReport",
    "adapted_candidate",
    "cap_repeats",
    "rebuild_training_data",
    "retrain_after_change",
    "select_learnt",
    "shadow_evaluate",
    "weigh",
]
