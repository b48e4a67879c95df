"""Detector names (as used by ``anomstream train --detector NAME`` and the registry) -> classes.

Classes are imported lazily so that listing names does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> "module:Class"
DETECTORS: dict[str, str] = {
    "ae": "models.autoencoder:DenseAutoencoder",
    "vae": "models.vae:VariationalAutoencoder",
    "seq_ae": "models.sequence:SequenceAutoencoder",
    "bigan": "models.bigan:BiGAN",
    "ocsvm": "models.classical:OneClassSVMDetector",
    "iforest": "models.classical:IsolationForestDetector",
    "pca": "models.classical:PCADetector",
    "hst": "models.online:HalfSpaceTreesDetector",
    "ensemble": "models.ensemble:Ensemble",
}


def detector_class(name: str) -> Any:
    if name not in DETECTORS:
        raise KeyError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}")
    module, _, cls = DETECTORS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def is_deep(name: str) -> bool:
    """Whether detector ``name`` is a Keras network (takes ``epochs`` and ``verbose``)."""
    from models.base import KerasDetector

    cls = detector_class(name)
    return isinstance(cls, type) and issubclass(cls, KerasDetector)
