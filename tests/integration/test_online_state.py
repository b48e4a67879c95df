"""What a model learns while scoring (a sliding threshold, Half-Space Trees) is learnt from committed
batches only, checkpointed outside the sealed artifacts, and resumed by a restarted worker."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from consumers.worker import ScoringWorker
from models.registry import Registry
from models.training import TrainingRequest, train
from stream.kafka import create_topics
from stream.signals import StopFlag
from tests.support import corrected_sample, make_settings, replay

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def online_registry(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("online-registry")
    request = TrainingRequest(
        "kdd", "hst", detector_params={"n_trees": 10, "height": 6, "window_size": 250},
        threshold="sliding", threshold_params={"window": 400, "percentile": 99},
    )  # fmt: skip
    train(Registry(root), data_dir.parent, request)
    return root


def _run(settings, worker_id: str, max_events: int) -> ScoringWorker:  # noqa: ANN001
    stop = StopFlag(install=False)
    worker = ScoringWorker(settings, ["kdd"], worker_id=worker_id, stop=stop)
    timer = threading.Timer(120, stop.set)
    timer.start()
    try:
        worker.run(max_events=max_events)
    finally:
        timer.cancel()
    return worker


def test_a_restarted_worker_resumes_what_its_model_learnt(
    kafka_bootstrap: str, online_registry: Path, tmp_path: Path
) -> None:
    settings = make_settings(kafka_bootstrap, online_registry, state_dir=tmp_path / "state", batch_size=250)
    create_topics(settings)
    replay(settings, corrected_sample(settings.data_dir, 3000, seed=11))
    trained = Registry(online_registry).load("kdd")

    first = _run(settings, "replica-0", 1500)
    model = first.models["kdd"]
    key = first.online.key(model)
    assert (settings.state_dir / key).is_file(), "checkpointed in the state folder (no state URL set)"
    saved = first.online.store.read(key)
    assert saved is not None
    assert saved["committed_events"] == first.stats.events >= 1500
    assert saved["threshold"] == model.threshold.state() != trained.threshold.state(), "it learnt"
    assert saved["detector"] == model.detector.state() != trained.detector.state()
    assert not any(online_registry.rglob("*.json.*")), "nothing written inside the sealed registry"

    second = ScoringWorker(settings, ["kdd"], worker_id="replica-0", stop=StopFlag(install=False))
    resumed = second.models["kdd"]
    assert resumed.threshold.state() == saved["threshold"] and resumed.detector.state() == saved["detector"]
    stranger = ScoringWorker(settings, ["kdd"], worker_id="replica-9", stop=StopFlag(install=False))
    assert stranger.models["kdd"].threshold.state() == trained.threshold.state(), "no one else's state"

    rest = 3000 - first.stats.events
    finished = _run(settings, "replica-0", rest)
    final = first.online.store.read(key)
    assert final is not None
    # The second run learnt only what it committed itself, on top of what it resumed: every event
    # of the stream learnt exactly once across the restart.
    assert finished.stats.events == rest and final["committed_events"] == 3000
