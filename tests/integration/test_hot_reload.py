"""A promotion announced on model-updates is picked up by a running worker between batches."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from models.registry import Registry
from models.training import TrainingRequest, train
from stream.kafka import read_all
from stream.settings import Settings
from tests.support import corrected_sample, schema_validator
from tests.support.streams import score_across_promotion

pytestmark = pytest.mark.integration


def test_worker_hot_reloads_a_promoted_model(kafka_settings: Settings, tmp_path: Path) -> None:
    registry_dir = tmp_path / "registry"
    shutil.copytree(kafka_settings.registry_dir, registry_dir)
    settings = kafka_settings.model_copy(update={"registry_dir": registry_dir})
    registry = Registry(registry_dir)
    request = TrainingRequest("kdd", "ae", detector_params={"epochs": 2, "verbose": 0})
    new = train(registry, settings.data_dir, request, promote=False)
    assert registry.production("kdd").version == 1 and new.version == 2

    versions = score_across_promotion(
        settings, corrected_sample(settings.data_dir, 2000, seed=7), "ae", new.version
    )
    assert versions[0] == 1 and versions[-1] == new.version
    updates = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("model_updates"))]
    assert [(u["stream"], u["version"], u["reason"]) for u in updates] == [("kdd", new.version, "manual")]
    schema_validator("model-update").validate(updates[0])
