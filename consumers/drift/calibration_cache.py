"""Calibrated watch settings per production model, computed once and kept in the state store
(:mod:`stream.state_store`: the state folder, or an object store every host shares).

Calibrating ADWIN to one false alarm per 1,000,000 scores simulates ~13 million scores (a few
seconds); a model version is sealed, so its calibration is cached by the sha256 of its validation
scores, the detector kind, the target and the seed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from models.drift import DriftConfig, ModelReference, WatchConfig, calibrate, ert_for_risk, model_reference
from models.model_id import ModelId
from models.registry import open_registry
from stream.settings import Settings
from stream.state_store import state_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchSpec:
    """What a stream's units watch: the production model's scores, through this calibrated watch."""

    stream: str
    model: ModelId
    config: WatchConfig
    checksum: str = ""  # sha256 of the model's calibration scores: this exact sealed version


class Calibrations:
    def __init__(self, settings: Settings, kind: str) -> None:
        self.settings = settings
        self.kind = kind
        self.registry = open_registry(settings)
        self.store = state_store(settings)

    def production(self, stream: str) -> ModelId | None:
        alias = self.registry.production(stream)
        return None if alias is None else alias.model

    def spec(self, stream: str, detector: str | None = None, version: int | None = None) -> WatchSpec:
        """The watch for ``stream``'s production model (or a given version), calibrated or cached."""
        reference = model_reference(self.registry, stream, detector, version)
        score = self._score_config(reference)
        d = self.settings.drift
        max_burst = d.max_burst.get(stream, WatchConfig.max_burst)
        config = WatchConfig(score, d.burst_window, d.burst_rate, max_burst, d.cooldown)
        return WatchSpec(stream, ModelId(reference.detector, reference.version), config, reference.checksum)

    def _score_config(self, reference: ModelReference) -> DriftConfig:
        d = self.settings.drift
        # "At most one false alarm per target_ert scores", with a false_alarm_risk chance of one.
        ert = ert_for_risk(d.target_ert, d.false_alarm_risk)
        name = f"{reference.checksum[:16]}-{self.kind}-ert{ert}-seed{d.calibration_seed}.json"
        key = f"drift/calibrations/{name}"
        cached = self.store.read(key)
        if cached is not None:
            return DriftConfig.from_dict(cached)
        started = time.monotonic()
        log.info("calibrating %s for %s/%s v%d on %d validation scores (expected run time %d)...",
                 self.kind, reference.stream, reference.detector, reference.version, len(reference.scores),
                 ert)  # fmt: skip
        config = calibrate(self.kind, reference.scores, ert, d.calibration_seed)
        log.info("calibrated %s for %s v%d: %s, simulated expected run time %s, in %.1fs", self.kind,
                 reference.stream, reference.version, _params(config), config.estimated_ert,
                 time.monotonic() - started)  # fmt: skip
        self.store.write(key, config.to_dict())
        return config


def _params(config: DriftConfig) -> str:
    keys = {"adwin": "delta", "kswin": "alpha", "page_hinkley": "threshold"}
    return f"{keys[config.kind]}={config.params[keys[config.kind]]:.4g}, stride {config.stride}"
