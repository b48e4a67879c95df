"""A promotion announced on model-updates is picked up by a running worker between batches."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from rich.console import Console

from consumers.model_updates import announce_promotion
from consumers.worker import ScoringWorker
from models.registry import Registry
from models.train import train_kdd
from stream.kafka import StopFlag
from stream.settings import Settings
from tests.support import corrected_sample, replay, score_records, wait_until

pytestmark = pytest.mark.integration


def test_worker_hot_reloads_a_promoted_model(kafka_settings: Settings, tmp_path: Path) -> None:
    registry_dir = tmp_path / "registry"
    shutil.copytree(kafka_settings.registry_dir, registry_dir)
    settings = kafka_settings.model_copy(update={"registry_dir": registry_dir})
    registry = Registry(registry_dir)
    new = train_kdd(
        registry, settings.data_dir, "ae", detector_params={"epochs": 2, "verbose": 0}, promote=False
    )
    assert registry.production("kdd")["version"] == 1 and new.version == 2

    stop = StopFlag(install=False)
    worker = ScoringWorker(settings, ["kdd"], worker_id="reloader", stop=stop)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        frame = corrected_sample(settings.data_dir, 2000, seed=7)
        replay(settings, frame.head(1000))
        assert wait_until(lambda: sum(len(r["offsets"]) for r in score_records(settings)) == 1000, 60)

        registry.promote("kdd", "ae", new.version)
        assert announce_promotion(settings, "kdd", "ae", new.version, Console(quiet=True))
        assert wait_until(lambda: worker.models["kdd"].version == new.version, 30)

        replay(settings, frame.tail(1000))
        assert wait_until(lambda: sum(len(r["offsets"]) for r in score_records(settings)) == 2000, 60)
    finally:
        stop.set()
        thread.join(30)
    versions = [r["model_version"] for r in score_records(settings)]
    assert versions[0] == 1 and versions[-1] == new.version
