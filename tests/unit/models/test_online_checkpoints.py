"""Online-state checkpoints resume only onto the model they were learnt on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.checkpoints import OnlineStateStore, learning_copy
from models.scoring import ScoringModel
from models.thresholds import SlidingPercentileThreshold
from stream.state_store import FolderStateStore


def _model(created_at: str, artifacts: dict[str, str]) -> ScoringModel:
    threshold = SlidingPercentileThreshold(window=4, percentile=75).fit(np.array([1.0, 2.0, 3.0, 4.0]))
    manifest = {"created_at": created_at, "artifacts": artifacts}
    return ScoringModel("kdd", "ae", 2, None, None, threshold, manifest)  # type: ignore[arg-type]


def test_a_checkpoint_resumes_onto_the_same_model(tmp_path: Path) -> None:
    store = OnlineStateStore(FolderStateStore(tmp_path))
    learnt = _model("2026-11-30T10:00:00Z", {"threshold.json": "aa"})
    learnt.learn(np.array([9.0, 9.5]))
    store.save(learnt, "kdd", 0, committed_events=2)

    again = _model("2026-11-30T10:00:00Z", {"threshold.json": "aa"})
    assert store.restore(again, "kdd", 0) == 2
    assert again.threshold.threshold_ == learnt.threshold.threshold_


def test_a_checkpoint_of_another_model_with_the_same_version_number_is_not_resumed(tmp_path: Path) -> None:
    """Version numbers repeat (another registry, a registry rebuilt): the CI run that failed resumed a
    'v2' checkpoint left in ~/.local/state by an earlier run and learnt every event twice."""
    store = OnlineStateStore(FolderStateStore(tmp_path))
    learnt = _model("2026-11-30T10:00:00Z", {"threshold.json": "aa"})
    learnt.learn(np.array([9.0, 9.5]))
    store.save(learnt, "kdd", 0, committed_events=2)

    as_trained = _model("2026-11-30T10:00:00Z", {"threshold.json": "aa"})
    for other in (
        _model("2026-11-30T11:00:00Z", {"threshold.json": "aa"}),  # same artifacts, written again later
        _model("2026-11-30T10:00:00Z", {"threshold.json": "bb"}),  # different artifacts
    ):
        assert store.restore(other, "kdd", 0) is None
        assert other.threshold.threshold_ == as_trained.threshold.threshold_


def test_each_partition_learns_on_its_own_copy_and_resumes_only_its_own_state(tmp_path: Path) -> None:
    """A worker keeps one learning copy per input partition: what one partition teaches moves neither
    the production model nor another partition's copy, and each checkpoint resumes onto its partition."""
    trained = _model("2026-11-30T10:00:00Z", {"threshold.json": "aa"})
    as_trained = trained.threshold.threshold_
    first, second = learning_copy(trained), learning_copy(trained)
    first.learn(np.array([9.0, 9.5]))
    assert first.threshold.threshold_ != as_trained
    assert trained.threshold.threshold_ == second.threshold.threshold_ == as_trained
    assert first.encoder is trained.encoder and first.manifest is trained.manifest  # shared, not copied

    store = OnlineStateStore(FolderStateStore(tmp_path))
    store.save(first, "t.kdd", 0, committed_events=2)
    elsewhere = learning_copy(trained)
    assert store.restore(elsewhere, "t.kdd", 1) is None and elsewhere.threshold.threshold_ == as_trained
    here = learning_copy(trained)
    assert store.restore(here, "t.kdd", 0) == 2 and here.threshold.threshold_ == first.threshold.threshold_
