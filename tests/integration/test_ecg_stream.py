"""ECG5000 heartbeats through a real broker and the scoring worker: the live AUC is the offline AUC."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import orjson
import pytest
from sklearn.metrics import roc_auc_score

from consumers.worker import ScoringWorker
from models.registry import Registry
from models.training import TrainingRequest, train
from producers.ecg import ecg_events, load_ecg_replay
from producers.replay import ReplayProducer
from stream.kafka import create_topics, read_all
from stream.labels import is_attack
from stream.signals import StopFlag
from tests.support import make_settings, measure, require_data

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ecg_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sequence autoencoder trained on the training beats of ecg.csv (20 epochs: a fixture)."""
    data = require_data("ecg5000")
    root = tmp_path_factory.mktemp("ecg-registry")
    request = TrainingRequest("ecg", "seq_ae", detector_params={"epochs": 20, "verbose": 0})
    train(Registry(root), data.parent, request)
    return root


def test_held_out_beats_streamed_auc_equals_offline(kafka_bootstrap: str, ecg_registry: Path) -> None:
    settings = make_settings(kafka_bootstrap, ecg_registry)
    create_topics(settings)
    beats = load_ecg_replay(settings.data_dir, holdout=True)
    replay = ReplayProducer(settings, settings.topic("ecg"), progress=False, stop=StopFlag(False))
    stats = replay.run(ecg_events(beats))
    assert stats.delivered == len(beats) == 2747 and stats.failed == 0

    stop = StopFlag(install=False)
    timer = threading.Timer(180, stop.set)
    timer.start()
    try:
        worker = ScoringWorker(settings, ["ecg"], worker_id="ecg-test", stop=stop).run(max_events=len(beats))
    finally:
        timer.cancel()
    assert worker.events == len(beats) and worker.dead_letters == 0

    # Every beat's streamed score, found through its offset -> key -> file row.
    row_of = {
        (m.partition(), m.offset()): int(m.key().decode().rsplit("-", 1)[1])
        for m in read_all(settings, settings.topic("ecg"))
    }
    streamed: dict[int, tuple[float, str]] = {}
    for message in read_all(settings, settings.topic("scores")):
        record = orjson.loads(message.value())
        for offset, score, label in zip(record["offsets"], record["scores"], record["labels"], strict=True):
            streamed[row_of[(record["partition"], offset)]] = (score, label)
    assert sorted(streamed) == beats.rows.tolist()

    live_scores = np.array([streamed[row][0] for row in beats.rows.tolist()])
    live_y = is_attack([streamed[row][1] for row in beats.rows.tolist()])
    live_auc = roc_auc_score(live_y, live_scores)

    model = Registry(ecg_registry).load("ecg")
    offline_scores = model.score(beats.values).scores
    offline_auc = roc_auc_score(beats.labels != 1, offline_scores)
    measure(
        f"ECG5000 held-out beats ({len(beats)}): streamed ROC AUC {live_auc:.4f}, offline {offline_auc:.4f}"
    )
    np.testing.assert_array_equal(live_y, beats.labels != 1)  # labels survived the header round trip
    np.testing.assert_allclose(live_scores, offline_scores, rtol=1e-5, atol=1e-7)
    assert round(live_auc, 3) == round(offline_auc, 3)
    assert live_auc >= 0.98
