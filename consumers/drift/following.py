"""Which model each stream's drift watch follows: the registry's production model, and no other.

The monitor learns of a new production model three ways: a stream seen for the first time (adopted
when it has one), score records of a version it does not watch (the alias is re-read, at most every
``recheck_s`` per stream), and a notification on ``model-updates``. Each way ends in the same switch:
the stream's watch spec (the calibrated settings of that model) is replaced, and the caller resets the
stream's watch with it. No Kafka client here: the registry's alias is the truth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from consumers.drift.calibration_cache import WatchSpec
from models.model_id import ModelId

log = logging.getLogger(__name__)

ALIAS_RECHECK_S = 2.0


class CalibrationSource(Protocol):
    """What the follower asks of the registry (:class:`consumers.drift.calibration_cache.Calibrations`)."""

    def production(self, stream: str) -> ModelId | None: ...

    def spec(self, stream: str, detector: str | None = None, version: int | None = None) -> WatchSpec: ...


class ModelFollower:
    """The watch spec of each stream's production model; ``fixed_streams`` None means every stream."""

    def __init__(
        self,
        calibrations: CalibrationSource,
        fixed_streams: Sequence[str] | None,
        clock: Callable[[], float] = time.monotonic,
        recheck_s: float = ALIAS_RECHECK_S,
    ) -> None:
        self.calibrations = calibrations
        self.fixed_streams = list(fixed_streams) if fixed_streams else None
        self.clock = clock
        self.recheck_s = recheck_s
        self.specs: dict[str, WatchSpec] = {}
        self._checked: dict[str, float] = {}  # stream -> when its alias was last read

    def start(self, streams: Sequence[str]) -> None:
        """The specs of those of ``streams`` (or of the fixed ones) that have a production model."""
        for stream in self.fixed_streams or streams:
            if self.calibrations.production(stream) is not None:
                self.specs[stream] = self.calibrations.spec(stream)
            elif self.fixed_streams:
                log.warning("stream %s has no production model yet: watching for one", stream)

    def wanted(self, stream: str) -> bool:
        return self.fixed_streams is None or stream in self.fixed_streams

    def adopt(self, stream: str) -> WatchSpec | None:
        """A stream seen for the first time: its spec when it is wanted and has a production model."""
        if not self.wanted(stream) or not self._due(stream):
            return None
        if self.calibrations.production(stream) is None:
            return None
        return self._switch(stream, None)

    def refresh(self, stream: str, seen: ModelId) -> WatchSpec | None:
        """Scores of model ``seen``, not the one watched: the new spec when the alias moved."""
        if seen == self.specs[stream].model or not self._due(stream):
            return None
        production = self.calibrations.production(stream)
        if production is None or production == self.specs[stream].model:
            return None
        return self._switch(stream, production)

    def updated(self, stream: str) -> WatchSpec | None:
        """A notification on ``model-updates``: the new spec when the production model changed."""
        production = self.calibrations.production(stream)
        current = self.specs.get(stream)
        if not self.wanted(stream) or production is None or (current and current.model == production):
            return None
        return self._switch(stream, production)

    def _due(self, stream: str) -> bool:
        now = self.clock()
        if now - self._checked.get(stream, float("-inf")) < self.recheck_s:
            return False
        self._checked[stream] = now
        return True

    def _switch(self, stream: str, model: ModelId | None) -> WatchSpec:
        spec = self.calibrations.spec(stream, *(model or (None, None)))
        self.specs[stream] = spec
        log.info("watching %s/%s (detectors reset with its calibration)", stream, spec.model)
        return spec
