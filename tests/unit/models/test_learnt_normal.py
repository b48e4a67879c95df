"""The learnt normal of an adapted model: what it vouches for, what it never does, and its seal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.detectors import detector_class
from models.features import WindowEncoder
from models.learnt_normal import LearntNormal
from models.registry import Registry, RegistryIntegrityError
from models.scoring import ScoringModel
from models.thresholds import QuantileThreshold


def _learnt(n: int = 500, ratio: float = 3.0, seed: int = 0) -> tuple[LearntNormal, np.ndarray]:
    records = np.random.default_rng(seed).random((n, 4), dtype=np.float32)
    return LearntNormal().fit(records, np.full(n, ratio)), records


def test_a_learnt_record_vouches_for_rows_about_as_unusual_as_itself_and_no_more() -> None:
    learnt, records = _learnt(ratio=3.0)
    near = records[:3] + 1e-4
    # 1.5 x 3.0 = 4.5 thresholds at most: 2.0 and 4.4 are vouched for (divided below 1), 4.6 is not.
    adjusted = learnt.adjust(near, np.array([2.0, 4.4, 4.6]), threshold=1.0)
    assert adjusted[0] < 1.0 and adjusted[1] < 1.0 and adjusted[2] == 4.6
    # Far from every record: never vouched for, whatever its score.
    far = np.full((2, 4), 5.0, np.float32)
    assert learnt.adjust(far, np.array([1.2, 50.0]), threshold=1.0).tolist() == [1.2, 50.0]


def test_scores_below_the_threshold_are_never_touched_and_adjust_is_pure() -> None:
    learnt, records = _learnt()
    scores = np.array([0.1, 0.99, 2.0])
    before = scores.copy()
    first = learnt.adjust(records[:3], scores, threshold=1.0)
    assert first[:2].tolist() == [0.1, 0.99] and np.array_equal(scores, before)
    assert np.array_equal(learnt.adjust(records[:3], scores, threshold=1.0), first)


def test_quiet_records_vouch_only_just_above_the_threshold() -> None:
    learnt, records = _learnt(ratio=0.4)  # records the model did not alert on
    adjusted = learnt.adjust(records[:2], np.array([1.4, 1.6]), threshold=1.0)
    assert adjusted[0] < 1.0 and adjusted[1] == 1.6


def test_extending_keeps_what_was_learnt_and_caps_the_records() -> None:
    learnt, records = _learnt(n=300)
    more = np.random.default_rng(1).random((300, 4), dtype=np.float32) + 10
    both = learnt.extended(more, np.full(300, 2.0))
    assert len(both.records_) == 600 and len(learnt.records_) == 300
    small = LearntNormal(max_records=100).fit(
        np.vstack([records, more]), np.r_[np.full(300, 0.5), np.full(300, 2.0)]
    )
    assert len(small.records_) == 100 and (small.ratios_ >= 1.0).all(), "alerting records kept first"


def test_save_and_load_give_the_same_adjustments(tmp_path: Path) -> None:
    learnt, records = _learnt()
    learnt.save(tmp_path / "learnt")
    loaded = LearntNormal.load(tmp_path / "learnt")
    X = np.vstack([records[:50] + 1e-3, np.full((5, 4), 3.0, np.float32)])
    scores = np.linspace(1.0, 6.0, len(X))
    np.testing.assert_array_equal(loaded.adjust(X, scores, 1.0), learnt.adjust(X, scores, 1.0))
    assert loaded.summary() == learnt.summary()


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        LearntNormal(vouch_ratio=0.9)
    with pytest.raises(ValueError):
        LearntNormal().fit(np.zeros((5, 2), np.float32), np.ones(5))  # one distinct record


@pytest.fixture()
def adapted(tmp_path: Path) -> tuple[Registry, ScoringModel, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (2000, 6))
    encoder = WindowEncoder(6).fit(X)
    detector = detector_class("pca")(n_components=2).fit(encoder.transform(X))
    threshold = QuantileThreshold(0.01).fit(detector.score(encoder.transform(X)))
    shifted = encoder.transform(rng.normal(0, 1, (1000, 6)) + 1.0)
    ratio = detector.score(shifted) / threshold.threshold_
    learnt = LearntNormal().fit(shifted, ratio)
    registry = Registry(tmp_path / "registry")
    registry.save("ecg", detector, encoder, threshold, {"data": "toy"})
    registry.save("ecg", detector, encoder, threshold, {"data": "toy"}, promote=True, learnt_normal=learnt)
    return registry, ScoringModel("ecg", "pca", 1, encoder, detector, threshold), shifted


def test_the_registry_seals_the_learnt_normal_and_the_worker_path_applies_it(adapted) -> None:
    registry, plain, shifted = adapted
    model = registry.load("ecg")
    assert model.version == 2 and model.learnt_normal is not None
    assert model.manifest["learnt_normal"]["records"] == len(model.learnt_normal.records_)
    # What the worker publishes (score_encoded) is what the gate compared (judge).
    np.testing.assert_allclose(model.score_encoded(shifted).scores, model.judge(shifted), rtol=1e-5)
    assert model.score_encoded(shifted).is_alert.sum() < plain.score_encoded(shifted).is_alert.sum()


def test_a_tampered_or_unlisted_learnt_normal_is_refused(adapted) -> None:
    registry, _, _ = adapted
    folder = registry.resolve("ecg", "pca", 2).path
    records = folder / "learnt_normal" / "records.npy"
    records.write_bytes(records.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(RegistryIntegrityError, match="sha256"):
        registry.load("ecg")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["artifacts"]["learnt_normal/records.npy"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RegistryIntegrityError, match="learnt_normal/records.npy"):
        registry.load("ecg")


def test_no_record_vouches_at_or_past_the_ceiling_it_was_learnt_under() -> None:
    records = np.random.default_rng(3).random((200, 4), dtype=np.float32)
    learnt = LearntNormal().fit(records, np.full(200, 4.0), ceiling=5.0)  # reach min(1.5 x 4, 5) = 5
    adjusted = learnt.adjust(records[:2], np.array([4.9, 5.5]), threshold=1.0)
    assert adjusted[0] < 1.0 and adjusted[1] == 5.5
    # Extended with records learnt under no ceiling, the old ones keep theirs.
    more = LearntNormal().fit(records, np.full(200, 4.0), ceiling=5.0).extended(records[:0], np.zeros(0))
    assert more.adjust(records[:1], np.array([5.5]), threshold=1.0)[0] == 5.5
