"""The drift watches follow the production model: a newer production version resets the stream's watch
with that model's own calibration, and scores of any other version are not watched (no broker: the
watches take score records as plain data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from consumers.drift.calibration_cache import Calibrations
from consumers.drift.following import ModelFollower
from consumers.drift.monitor_metrics import DriftMetrics
from consumers.drift.watches import MonitorStats, StreamWatches
from models.registry import Registry
from models.training import TrainingRequest, train
from stream.messages import ScoreRecord
from stream.settings import Settings
from tests.support import require_data

pytestmark = pytest.mark.data  # every test here reads the data folder


def record(version: int, offsets: range) -> ScoreRecord:
    n = len(offsets)
    scores = np.random.default_rng(version).random(n).tolist()
    return ScoreRecord("kdd", "pca", version, "kdd.connections", 0, list(offsets), scores, [False] * n,
                       [None] * n, ["2024-01-01T00:00:00.000Z"] * n)  # fmt: skip


def test_a_new_production_model_resets_the_watch_with_its_own_calibration(tmp_path: Path) -> None:
    data = require_data("kdd99").parent
    registry = Registry(tmp_path / "registry")
    train(registry, data, TrainingRequest("kdd", "pca"))
    settings = Settings(registry_dir=tmp_path / "registry", state_dir=tmp_path / "state", data_dir=data)
    calibrations = Calibrations(settings, settings.drift.detector)
    follower = ModelFollower(calibrations, ["kdd"])
    follower.start(["kdd"])
    stats = MonitorStats()
    watches = StreamWatches(follower, DriftMetrics(), stats)

    watches.watch(record(1, range(0, 500)))
    first = watches.units["kdd"]
    assert first.model == ("pca", 1) and first.watch.n == 500
    first_config = first.watch.config

    train(registry, data, TrainingRequest("kdd", "pca", seed=1), promote=True)
    # Not told yet (no model-updates read here): v1 is still production as far as it knows.
    watches.watch(record(1, range(500, 700)))
    assert first.watch.n == 700
    watched = watches.watch(record(2, range(700, 1000)))  # v2's scores: the alias is re-read
    unit = watches.units["kdd"]
    assert watched is not None and watched.unit is unit and watched.offsets.tolist() == list(range(700, 1000))
    assert unit.model == ("pca", 2) and unit.watch.n == 300
    assert unit.watch.config == calibrations.spec("kdd", "pca", 2).config != first_config
    assert watches.watch(record(1, range(1000, 1100))) is None  # a worker not yet reloaded
    assert stats.stale == 100 and unit.watch.n == 300
    assert watches.watch(record(2, range(900, 1000))) is None  # a retried batch: watched once
    assert stats.duplicates == 100 and unit.watch.n == 300
