"""``anomstream evaluate`` outputs and ECG registry versions, on a small synthetic ECG file.

Fast detectors only (pca, iforest): these tests check the files and their contract, not detection
quality (tests/quality does that on the real data).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.evaluation.run import METRIC_KEYS, evaluate
from models.registry import Registry
from models.thresholds import SlidingPercentileThreshold
from models.training import TrainingRequest, train


@pytest.fixture(scope="module")
def ecg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``ecg5000/ecg.csv`` of 600 beats: normal sine beats and abnormal ones with a spike."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 140)
    normal = np.sin(t) + rng.normal(0, 0.05, (400, 140))
    abnormal = np.sin(t) + rng.normal(0, 0.05, (200, 140))
    abnormal[:, 60:70] += rng.uniform(1.0, 2.0, (200, 1))
    rows = np.vstack([normal, abnormal])
    labels = np.r_[np.ones(400), np.zeros(200)]
    folder = tmp_path_factory.mktemp("data")
    (folder / "ecg5000").mkdir()
    np.savetxt(folder / "ecg5000" / "ecg.csv", np.column_stack([rows, labels]), delimiter=",", fmt="%.6f")
    return folder


def test_evaluate_writes_the_contract(ecg_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    metrics = evaluate("ecg", None, ["pca", "iforest"], out, ecg_dir, seed=0)
    stored = json.loads((out / "metrics.json").read_text())
    assert stored == metrics
    assert stored["stream"] == "ecg" and stored["protocol"] == "holdout"
    assert set(stored["detectors"]) == {"pca", "iforest"}
    for row in stored["detectors"].values():
        assert list(row) == list(METRIC_KEYS)
        assert all(isinstance(v, int | float) for v in row.values())
        assert 0.0 <= row["roc_auc"] <= 1.0 and row["size_kb"] > 0 and row["n_params"] > 0
    assert stored["detectors"]["pca"]["roc_auc"] > 0.95  # the spike is obvious
    for name in ("roc.png", "pr.png", "hist_pca.png", "hist_iforest.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (out / "report.md").read_text()
    assert "| pca |" in report and "0.96" in report  # our row and the published Anomagram figure
    assert "never saw a test label" in report


def test_evaluate_refuses_unknown_names(ecg_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="nope"):
        evaluate("ecg", None, ["nope"], tmp_path, ecg_dir)
    with pytest.raises(ValueError, match="protocol"):
        evaluate("kdd", "half", ["pca"], tmp_path, ecg_dir)


def test_train_ecg_stores_a_sliding_threshold_with_its_window(ecg_dir: Path, tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    request = TrainingRequest("ecg", "pca", threshold="sliding", threshold_params={"window": 50})
    ref = train(registry, ecg_dir, request)
    manifest = registry.manifest("ecg", "pca", ref.version)
    rows = manifest["training"]["rows"]
    # 400 normal beats: 120 test, 280 cut 70/10/20; 200 abnormal: 20 validation, 180 test
    assert rows == {
        "fit": 196,
        "early_stop": 28,
        "calibration": 56,
        "labelled_validation": {"normal": 56, "abnormal": 20},
        "held_out_test": 300,
    }
    assert manifest["training"]["data"] == "ecg.csv" and manifest["threshold"]["kind"] == "sliding"
    model = registry.load("ecg")
    assert isinstance(model.threshold, SlidingPercentileThreshold)
    assert len(model.threshold.state()["recent"]) == 50
    assert model.threshold.threshold_ == manifest["threshold"]["threshold"]


def test_train_ecg_fbeta_threshold_uses_the_labelled_training_split(ecg_dir: Path, tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    request = TrainingRequest("ecg", "pca", threshold="fbeta", threshold_params={"beta": 2.0})
    ref = train(registry, ecg_dir, request)
    state = registry.manifest("ecg", "pca", ref.version)["threshold"]["state"]
    assert state["n_validation"] == 76 and state["n_anomalies"] == 20 and state["fbeta"] > 0.9
