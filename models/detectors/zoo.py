"""Detector names (as used by ``anomstream train --detector NAME`` and the registry) -> classes.

Classes are imported lazily so that listing names does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> "module:Class"
DETECTORS: dict[str, str] = {
    "ae": "models.detectors.autoencoder:DenseAutoencoder",
    "vae": "models.detectors.vae:VariationalAutoencoder",
    "seq_ae": "models.detectors.sequence:SequenceAutoencoder",
    "bigan": "models.detectors.bigan:BiGAN",
    "ocsvm": "models.detectors.classical:OneClassSVMDetector",
    "iforest": "models.detectors.classical:IsolationForestDetector",
    "pca": "models.detectors.classical:PCADetector",
    "hst": "models.detectors.online:HalfSpaceTreesDetector",
    "context": "models.detectors.context:ContextDetector",
    "ensemble": "models.detectors.ensemble:Ensemble",
}


def detector_class(name: str) -> Any:
    if name not in DETECTORS:
        raise KeyError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}")
    module, _, cls = DETECTORS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def is_deep(name: str) -> bool:
    """Whether detector ``name`` is a Keras network (takes ``epochs`` and ``verbose``)."""
    from models.detectors.base import KerasDetector

    cls = detector_class(name)
    return isinstance(cls, type) and issubclass(cls, KerasDetector)
