"""Drift detection on a model's score stream, calibrated on the model's own validation scores.

The public surface, shared by the drift monitor (``anomstream drift``) and the offline streaming
evaluation::

    config = calibrate("adwin", model.calibration_scores, target_ert=1_000_000)
    drift = ScoreDrift(config)
    for i in drift.update_many(scores):      # indices of the scores that completed a detection
        print(drift.change_index(), drift.statistic, drift.threshold)
    saved = drift.state()                    # JSON-able; ScoreDrift(config).set_state(saved) resumes

Detectors (river): ``adwin`` (default), ``kswin``, ``page_hinkley``. See
:mod:`models.drift.calibration` for how a target expected run time between false alarms becomes each
detector's sensitivity.
"""

from models.drift.calibration import calibrate, false_alarms, library_defaults
from models.drift.config import DETECTORS, DriftConfig, ReferenceCDF
from models.drift.score_drift import ScoreDrift

DEFAULT_DETECTOR = "adwin"

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "DriftConfig",
    "ReferenceCDF",
    "ScoreDrift",
    "calibrate",
    "false_alarms",
    "library_defaults",
]
