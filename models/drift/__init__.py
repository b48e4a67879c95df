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
detector's sensitivity. :class:`DriftWatch` puts one in front of a stream's scores and alert flags,
telling attack bursts from a change of normal traffic (see :mod:`models.drift.watch`).
"""

from models.drift.calibration import calibrate, ert_for_risk, false_alarms, library_defaults
from models.drift.config import DETECTORS, DriftConfig, ReferenceCDF
from models.drift.feature_test import FeatureDrift, FeatureTestResult, feature_alpha
from models.drift.reference_scores import ModelReference, model_reference
from models.drift.score_drift import Detection, ScoreDrift
from models.drift.watch import ALERT_RATE, DriftWatch, WatchConfig, WatchEvent

DEFAULT_DETECTOR = "adwin"

__all__ = [
    "ALERT_RATE",
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "Detection",
    "DriftConfig",
    "DriftWatch",
    "FeatureDrift",
    "FeatureTestResult",
    "ModelReference",
    "ReferenceCDF",
    "ScoreDrift",
    "WatchConfig",
    "WatchEvent",
    "calibrate",
    "ert_for_risk",
    "false_alarms",
    "feature_alpha",
    "library_defaults",
    "model_reference",
]
