"""One contract for every detector in the registry's name table (``models.detectors.zoo.DETECTORS``).

Each detector is fitted once per module on small seeded data (a 3-dimensional manifold in 12
features, or sine-wave windows of 32 samples for the sequence model) with anomalies shifted off it,
then checked for: the fit/score protocol, anomalies scoring higher, batch-independent scores,
identical scores after save/load (twice) and after a registry round trip, refusal of any tampered
artifact before anything is deserialised, and, where offered, explanations that point at the
corrupted feature.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import models.registry
from models.detectors.base import (
    Detector,
    MemberHolder,
    OnlineDetector,
    SequentialDetector,
    explainer,
    n_params,
)
from models.detectors.zoo import DETECTORS, detector_class
from models.features import WindowEncoder
from models.registry import Registry, RegistryIntegrityError
from models.thresholds import QuantileThreshold

# Keras' TensorFlow backend converts variables with np.array(copy=False) when saving weights; not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

N_FEATURES, WINDOW = 12, 32
KERAS_FAST: dict[str, Any] = {"epochs": 3, "batch_size": 32, "verbose": 0}
AE_SMALL: dict[str, Any] = {**KERAS_FAST, "hidden": (16, 8, 4)}

# Small, fast settings per registry name; a name missing here is tested with its defaults.
TEST_PARAMS: dict[str, dict[str, Any]] = {
    "ae": AE_SMALL,
    "vae": {**KERAS_FAST, "hidden": (16,), "latent": 3, "n_samples": 8},
    "seq_ae": {**KERAS_FAST, "filters": (16, 8), "latent": 8, "batch_size": 16, "learning_rate": 5e-3},
    "bigan": {**KERAS_FAST, "hidden": 16, "latent": 4, "disc_hidden": 32, "learning_rate": 1e-3},
    "ocsvm": {"nu": 0.05},
    "iforest": {"n_estimators": 50},
    "pca": {"n_components": 3},
    "hst": {"n_trees": 25, "height": 8, "window_size": 250},
    # It learns the stream as it comes (fit learns nothing): a test set of 160 rows must settle at once.
    "context": {"gap": 0, "settle": 0},
    "ensemble": {
        "members": [["ae", AE_SMALL], ["iforest", {"n_estimators": 50}], ["pca", {"n_components": 3}]]
    },
}
# Other modes of the same detectors, tested on top of each registry name's default mode.
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("vae", "probability", {"score_kind": "probability"}),
    # An LSTM decoder needs ~150 steps before it does better than the mean window.
    ("seq_ae", "lstm", {"cell": "lstm", "units": 32, "batch_size": 8, "learning_rate": 1e-2}),
    ("ensemble", "vote", {"mode": "vote"}),
]
WINDOW_DETECTORS = {"seq_ae"}
# Detectors whose explanations are reconstruction residuals: a corrupted feature must top them.
RECONSTRUCTION = {"ae", "vae", "seq_ae", "bigan", "pca", "ensemble"}

CASES = [pytest.param((name, {}), id=name) for name in DETECTORS] + [
    pytest.param((name, extra), id=f"{name}-{tag}") for name, tag, extra in VARIANTS
]


@dataclass(frozen=True)
class Data:
    train: np.ndarray  # normal rows only
    test: np.ndarray
    labels: np.ndarray  # 1 = anomaly


def tabular_data(seed: int = 0) -> Data:
    """Normal rows on a smooth 3-d manifold in 12 features; anomalies have 3 features shifted by 0.5."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(3, N_FEATURES))

    def manifold(n: int) -> np.ndarray:
        latent = rng.uniform(-1, 1, (n, 3))
        return 0.5 + 0.25 * np.tanh(latent @ mixing / np.sqrt(3)) + rng.normal(0, 0.02, (n, N_FEATURES))

    normal, anomalies = manifold(600), manifold(60)
    for row in anomalies:
        row[rng.choice(N_FEATURES, 3, replace=False)] += 0.5
    return _split(normal, anomalies)


def window_data(seed: int = 0) -> Data:
    """Sine windows of random phase and amplitude; anomalies have an 8-sample block shifted by 0.4."""
    rng = np.random.default_rng(seed)
    steps = np.arange(WINDOW) / WINDOW

    def beats(n: int) -> np.ndarray:
        phase, amplitude = rng.uniform(0, 1, (n, 1)), rng.uniform(0.25, 0.35, (n, 1))
        noise = rng.normal(0, 0.02, (n, WINDOW))
        return 0.5 + amplitude * np.sin(2 * np.pi * (steps + phase)) + noise

    normal, anomalies = beats(600), beats(60)
    for row in anomalies:
        start = rng.integers(0, WINDOW - 8)
        row[start : start + 8] += 0.4
    return _split(normal, anomalies)


def _split(normal: np.ndarray, anomalies: np.ndarray) -> Data:
    test = np.vstack([normal[500:], anomalies]).astype(np.float32)
    labels = np.r_[np.zeros(len(normal) - 500), np.ones(len(anomalies))]
    return Data(normal[:500].astype(np.float32), test, labels)


@dataclass(frozen=True)
class Case:
    name: str
    detector: Any
    fit_result: Any
    data: Data
    scores: np.ndarray  # detector.score(data.test), computed once


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest) -> Case:
    name, extra = request.param
    data = window_data() if name in WINDOW_DETECTORS else tabular_data()
    detector = detector_class(name)(**{**TEST_PARAMS.get(name, {}), **extra})
    fit_result = detector.fit(data.train)
    return Case(name, detector, fit_result, data, detector.score(data.test))


# -- protocol -------------------------------------------------------------------------------------
def test_every_registry_name_is_a_detector_of_that_name() -> None:
    for name in DETECTORS:
        cls = detector_class(name)
        assert cls.name == name
        assert all(callable(getattr(cls, verb, None)) for verb in ("fit", "score", "save", "load"))


ONLINE, SEQUENTIAL, HOLDERS = {"hst", "context"}, {"context"}, {"ensemble"}


def test_the_contract_says_what_each_detector_can_do(case: Case) -> None:
    """Capabilities are the contract's protocols (models/detectors/base.py), checked with isinstance;
    the worker (models/scoring.py) asks nothing else."""
    detector = case.detector
    assert isinstance(detector, OnlineDetector) == (case.name in ONLINE)
    assert isinstance(detector, SequentialDetector) == (case.name in SEQUENTIAL)
    assert isinstance(detector, MemberHolder) == (case.name in HOLDERS)
    assert (explainer(detector) is not None) == (case.name in RECONSTRUCTION)


def test_an_ensemble_explains_only_when_a_member_does() -> None:
    data = tabular_data()
    members = [["iforest", {"n_estimators": 20}], ["ocsvm", {"nu": 0.05}]]
    ensemble = detector_class("ensemble")(members=members).fit(data.train)
    assert explainer(ensemble) is None
    with pytest.raises(ValueError, match="no member of this ensemble explains"):
        ensemble.explain(data.test)


def test_fit_returns_self_and_scores_are_finite(case: Case) -> None:
    assert case.fit_result is case.detector
    assert isinstance(case.detector, Detector)
    scores = case.scores
    assert scores.shape == (len(case.data.test),)
    assert np.issubdtype(scores.dtype, np.floating)
    assert np.all(np.isfinite(scores))
    assert n_params(case.detector) > 0


def test_anomalies_score_higher(case: Case) -> None:
    auc = roc_auc_score(case.data.labels, case.scores)
    assert auc > 0.8, f"{case.name}: ROC AUC {auc:.3f} on the toy data"


def test_scores_do_not_depend_on_the_batch(case: Case) -> None:
    if isinstance(case.detector, SequentialDetector):
        pytest.skip("scores each row after the rows before it; its own batching contract (score_next "
                    "then learn, any batch sizes) is pinned in test_context_detector.py")  # fmt: skip
    some = case.data.test[[3, 70, 150, 4, 5, 6, 7]]
    np.testing.assert_allclose(
        case.detector.score(some), case.scores[[3, 70, 150, 4, 5, 6, 7]], rtol=1e-5, atol=1e-6
    )


# -- persistence ----------------------------------------------------------------------------------
def test_save_load_round_trip_scores_identically(case: Case, tmp_path: Path) -> None:
    cls = type(case.detector)
    case.detector.save(tmp_path / "model")
    case.detector.save(tmp_path / "model")  # saving again over the same folder works
    loaded = cls.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.score(case.data.test), case.scores, rtol=1e-6)
    assert not [p for p in (tmp_path / "model").rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]


def _registry_save(case: Case, root: Path) -> Path:
    encoder = WindowEncoder(case.data.train.shape[1]).fit(case.data.train)
    threshold = QuantileThreshold(fpr=0.05).fit(case.detector.score(case.data.train))
    return Registry(root).save("kdd", case.detector, encoder, threshold, training={}).path


def test_registry_round_trip_scores_identically(case: Case, tmp_path: Path) -> None:
    _registry_save(case, tmp_path)
    model = Registry(tmp_path).load("kdd")
    assert model.detector_name == case.name and type(model.detector) is type(case.detector)
    np.testing.assert_allclose(model.detector.score(case.data.test), case.scores, rtol=1e-6)


def test_any_tampered_artifact_is_refused_before_loading(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _registry_save(case, tmp_path)

    def must_not_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a model file was deserialised before its checksum was verified")

    monkeypatch.setattr(models.registry, "load_detector", must_not_run)
    monkeypatch.setattr(pickle, "load", must_not_run)
    monkeypatch.setattr(pickle, "loads", must_not_run)
    artifacts = sorted(p for p in (folder / "detector").rglob("*") if p.is_file())
    assert artifacts
    for path in [*artifacts, folder / "encoder.json", folder / "threshold.json"]:
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(RegistryIntegrityError, match="sha256"):
            Registry(tmp_path).load("kdd")
        path.write_bytes(original)


# -- explanations ---------------------------------------------------------------------------------
def test_explanations_are_per_feature_and_point_at_the_corrupted_feature(case: Case) -> None:
    explain = explainer(case.detector)
    if case.name not in RECONSTRUCTION:
        assert explain is None, f"{case.name} explains: add it to RECONSTRUCTION or test its explanations"
        return
    assert explain is not None
    X = case.data.test
    scores, contributions = explain(X)
    assert contributions.shape == X.shape
    assert np.all(contributions >= 0)
    np.testing.assert_allclose(scores, case.scores, rtol=1e-5, atol=1e-7)
    # One normal row per feature, that feature pushed far off: it must carry the largest share.
    d = X.shape[1]
    rows = np.arange(d)
    corrupted = X[rows % 100].copy()
    corrupted[rows, rows] += 1.5
    _, contributions = explain(corrupted)
    np.testing.assert_array_equal(contributions.argmax(axis=1), rows)


# -- detector-specific promises -------------------------------------------------------------------
def test_skops_file_with_an_untrusted_type_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from models.detectors.classical import MODEL_FILE, IsolationForestDetector, UntrustedModelError

    data = tabular_data()
    detector = IsolationForestDetector(n_estimators=10).fit(data.train)
    folder = _registry_save(Case("iforest", detector, detector, data, detector.score(data.test)), tmp_path)
    # The registry's checksum is the first line; this is the second, for a folder whose manifest
    # was rewritten to match: a model file that would call os.system is not loaded.
    model_file = folder / "detector" / MODEL_FILE
    sio.dump(FunctionTransformer(func=os.system), model_file)
    with pytest.raises(UntrustedModelError, match="allow-list"):
        IsolationForestDetector.load(folder / "detector")
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["artifacts"][f"detector/{MODEL_FILE}"] = hashlib.sha256(model_file.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    monkeypatch.setattr(sio, "load", lambda *a, **k: pytest.fail("skops.io.load ran on an untrusted file"))
    with pytest.raises(UntrustedModelError):
        Registry(tmp_path).load("kdd")


def test_half_space_trees_learn_online_and_round_trip(tmp_path: Path) -> None:
    from models.detectors.online import HalfSpaceTreesDetector

    rng = np.random.default_rng(1)
    hst = HalfSpaceTreesDetector(n_trees=5, height=5, window_size=50, seed=3)
    assert hst.score_one({"a": 0.5, "b": 0.5}) == 0.0  # nothing learnt yet
    for a, b in rng.uniform(0.4, 0.6, (175, 2)):  # 3.5 windows: the reference window is complete
        hst.learn_one({"a": float(a), "b": float(b)})
    inside, outside = hst.score_one({"a": 0.5, "b": 0.5}), hst.score_one({"a": 0.05, "b": 0.95})
    assert outside > inside
    hst.save(tmp_path)
    loaded = HalfSpaceTreesDetector.load(tmp_path)
    assert loaded.model_.counter == hst.model_.counter == 25
    probes = [{"a": float(a), "b": float(b)} for a, b in rng.uniform(0, 1, (50, 2))]
    assert [loaded.score_one(x) for x in probes] == [hst.score_one(x) for x in probes]
    # Both keep learning the same way after the round trip.
    for x in probes:
        hst.learn_one(x)
        loaded.learn_one(x)
    assert [loaded.score_one(x) for x in probes] == [hst.score_one(x) for x in probes]


def test_ensemble_vote_score_orders_by_votes_and_marks_the_majority() -> None:
    from models.detectors.ensemble import Ensemble

    data = tabular_data()
    members = [["iforest", {"n_estimators": 30}], ["pca", {"n_components": 3}], ["ocsvm", {}]]
    ensemble = Ensemble(members=members, mode="vote", fpr=0.05).fit(data.train)
    member_scores = [m.score(data.test) for m in ensemble.members_]
    votes = np.sum([t.classify(s) for t, s in zip(ensemble.thresholds_, member_scores, strict=True)], axis=0)
    scores = ensemble.score(data.test)
    np.testing.assert_array_equal(scores >= ensemble.majority_score_, votes >= 2)
    for k in range(len(members)):  # more votes always means a higher score
        fewer, more = scores[votes == k], scores[votes == k + 1]
        if fewer.size and more.size:
            assert more.min() > fewer.max()
    assert len(set(votes.tolist())) >= 2 and len(np.unique(scores)) > 4 * len(members)
