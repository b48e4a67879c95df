"""Detectors: the protocol every batch detector honours, the zoo of names, one module per family.

- :mod:`models.detectors.base`: the detector contract (:class:`Detector`, :class:`Explainer`,
  :class:`OnlineDetector`, :class:`SequentialDetector`, :class:`MemberHolder`) and the Keras base
  class that owns the training loop (subclasses only build the network);
- :mod:`models.detectors.backend`: the one place that knows which Keras backend runs;
- families: ``autoencoder`` (ae), ``vae``, ``sequence`` (seq_ae), ``bigan``, ``classical`` (ocsvm,
  iforest, pca), ``online`` (hst), ``ensemble``.
"""

from models.detectors.base import (
    Detector,
    Explainer,
    MemberHolder,
    OnlineDetector,
    SequentialDetector,
    explainer,
)
from models.detectors.zoo import DETECTORS, detector_class, is_deep

__all__ = [
    "DETECTORS",
    "Detector",
    "Explainer",
    "MemberHolder",
    "OnlineDetector",
    "SequentialDetector",
    "detector_class",
    "explainer",
    "is_deep",
]
