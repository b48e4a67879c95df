"""A promotion announced on model-updates is picked up by a running worker between batches."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import orjson
import pytest

from consumers.model_updates import promote
from consumers.worker import ScoringWorker
from models.registry import Registry
from models.training import TrainingRequest, train
from stream.kafka import read_all
from stream.settings import Settings
from stream.signals import StopFlag
from tests.support import corrected_sample, replay, schema_validator, score_records, wait_until

pytestmark = pytest.mark.integration


def test_worker_hot_reloads_a_promoted_model(kafka_settings: Settings, tmp_path: Path) -> None:
    registry_dir = tmp_path / "registry"
    shutil.copytree(kafka_settings.registry_dir, registry_dir)
    settings = kafka_settings.model_copy(update={"registry_dir": registry_dir})
    registry = Registry(registry_dir)
    request = TrainingRequest("kdd", "ae", detector_params={"epochs": 2, "verbose": 0})
    new = train(registry, settings.data_dir, request, promote=False)
    assert registry.production("kdd")["version"] == 1 and new.version == 2

    stop = StopFlag(install=False)
    worker = ScoringWorker(settings, ["kdd"], worker_id="reloader", stop=stop)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        frame = corrected_sample(settings.data_dir, 2000, seed=7)
        replay(settings, frame.head(1000))
        assert wait_until(lambda: sum(len(r["offsets"]) for r in score_records(settings)) == 1000, 60)

        assert promote(settings, "kdd", "ae", new.version).announced
        assert wait_until(lambda: worker.models["kdd"].version == new.version, 30)

        replay(settings, frame.tail(1000))
        assert wait_until(lambda: sum(len(r["offsets"]) for r in score_records(settings)) == 2000, 60)
    finally:
        stop.set()
        thread.join(30)
    versions = [r["model_version"] for r in score_records(settings)]
    assert versions[0] == 1 and versions[-1] == new.version
    updates = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("model_updates"))]
    assert [(u["stream"], u["version"], u["reason"]) for u in updates] == [("kdd", new.version, "manual")]
    schema_validator("model-update").validate(updates[0])
