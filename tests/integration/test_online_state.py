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


def _saved(worker: ScoringWorker, settings, trained) -> dict[int, dict]:  # noqa: ANN001
    """The checkpoint of each input partition of ``kdd`` (None where none was written)."""
    topic = settings.topic("kdd")
    found = {
        p: worker.online.store.read(worker.online.key(trained, topic, p))
        for p in range(settings.topic_partitions)
    }
    return {p: saved for p, saved in found.items() if saved is not None}


def test_what_a_model_learnt_from_a_partition_is_resumed_by_whoever_holds_it_next(
    kafka_bootstrap: str, online_registry: Path, tmp_path: Path
) -> None:
    """Online state is keyed by input partition (issue 26): a worker with another id (a replica on
    another host, a rescheduled pod) resumes it, and every event is learnt exactly once across the
    change of hands."""
    settings = make_settings(kafka_bootstrap, online_registry, state_dir=tmp_path / "state", batch_size=250)
    create_topics(settings)
    replay(settings, corrected_sample(settings.data_dir, 3000, seed=11))
    trained = Registry(online_registry).load("kdd")

    first = _run(settings, "replica-0", 1500)
    saved = _saved(first, settings, trained)
    assert saved, "a checkpoint per partition it learnt from"
    assert all(
        (settings.state_dir / first.online.key(trained, settings.topic("kdd"), p)).is_file() for p in saved
    )
    assert sum(s["committed_events"] for s in saved.values()) == first.stats.events >= 1500
    for state in saved.values():
        assert state["threshold"] != trained.threshold.state(), "it learnt"
        assert state["detector"] != trained.detector.state()
    assert not any(online_registry.rglob("*.json.*")), "nothing written inside the sealed registry"

    rest = 3000 - first.stats.events
    finished = _run(settings, "replica-9", rest)
    assert finished.stats.events == rest
    final = _saved(finished, settings, trained)
    # The second worker learnt only what it committed itself, on top of what it resumed for each
    # partition: every event of the stream learnt exactly once across the change of hands.
    assert sum(s["committed_events"] for s in final.values()) == 3000
    assert all(final[p]["committed_events"] >= saved[p]["committed_events"] for p in saved)
