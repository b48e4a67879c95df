"""The scores a stream's drift detectors are calibrated on: its production model's own validation
scores of held-out normal rows (kept by the registry beside the model), minus those that alert."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from models.registry import CALIBRATION, Registry, RegistryError
from models.thresholds import threshold_from_dict


@dataclass(frozen=True)
class ModelReference:
    """A model version's non-alerting validation scores, and the share of them that alerted."""

    stream: str
    detector: str
    version: int
    scores: np.ndarray
    alert_share: float
    checksum: str  # sha256 of the calibration scores (from the sealed manifest)


def model_reference(
    registry: Registry, stream: str, detector: str | None = None, version: int | None = None
) -> ModelReference:
    """The reference of ``stream``'s production model (or of ``detector`` v``version``), verified
    against its manifest. Raises RegistryError when the model kept no calibration scores."""
    ref = registry.resolve(stream, detector, version)
    manifest = registry.verify(ref)
    checksum = manifest["artifacts"].get(CALIBRATION)
    if checksum is None:
        raise RegistryError(
            f"{stream}/{ref.detector} v{ref.version} has no calibration scores, so its drift detectors "
            f"cannot be calibrated: retrain it with `anomstream train --stream {stream}`"
        )
    scores = np.load(ref.path / CALIBRATION, allow_pickle=False).astype(np.float64)
    threshold = threshold_from_dict(json.loads((ref.path / "threshold.json").read_text()))
    alerting = threshold.classify(scores)
    return ModelReference(
        stream, ref.detector, ref.version, scores[~alerting], float(alerting.mean()), checksum
    )
