"""Issue 12, defects 3-5: a confined registry that verifies before it switches, one clear error for
every malformed file, and training that refuses to save an untrained model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.detectors.autoencoder import DenseAutoencoder
from models.features import WindowEncoder
from models.registry import (
    ModelRef,
    Registry,
    RegistryError,
    RegistryIntegrityError,
    required_artifacts,
)
from models.thresholds import QuantileThreshold
from models.training import TrainingRequest, train
from models.training.fit import check_params


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.random((300, 6))
    encoder = WindowEncoder(6).fit(X)
    detector = DenseAutoencoder(hidden=(4, 2), epochs=1, verbose=0).fit(encoder.transform(X))
    threshold = QuantileThreshold(0.05).fit(detector.score(encoder.transform(X)))
    return X, encoder, detector, threshold


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``anomstream ARGS`` in this process, as the console script runs it: exit code and output."""
    from anomstream.cli import main

    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out + captured.err


def _save(registry: Registry, fitted, promote=None) -> ModelRef:
    X, encoder, detector, threshold = fitted
    return registry.save("kdd", detector, encoder, threshold, {"data": "random"}, promote=promote)


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_manifest(ref: ModelRef, change) -> None:  # noqa: ANN001
    path = ref.path / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


# -- defect 3: promotion verifies before it switches -------------------------------------------------
def test_promoting_a_tampered_copy_is_refused_and_production_stays(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    v1 = _save(registry, fitted)
    # The repro: copy v0001 to v0002 (manifest renumbered so only the bytes are wrong), flip a byte.
    copy = tmp_path / "kdd" / "ae" / "v0002"
    shutil.copytree(v1.path, copy)
    _edit_manifest(ModelRef("kdd", "ae", 2, copy), lambda m: m.update(version=2))
    _flip_byte(copy / "detector" / "model.weights.h5")
    with pytest.raises(RegistryIntegrityError, match="sha256"):
        registry.promote("kdd", "ae", 2)
    assert registry.production("kdd").version == 1
    assert registry.status("kdd", "ae", 1)["status"] == "production"


def test_a_version_folder_copied_under_another_number_is_refused(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    v1 = _save(registry, fitted)
    shutil.copytree(v1.path, tmp_path / "kdd" / "ae" / "v0002")
    with pytest.raises(RegistryIntegrityError, match="copied or renamed"):
        registry.promote("kdd", "ae", 2)


def test_cli_promote_of_a_tampered_version_exits_1_with_one_line(
    tmp_path: Path, fitted, monkeypatch, capsys
) -> None:
    registry = Registry(tmp_path)
    _save(registry, fitted)
    v2 = _save(registry, fitted)
    _flip_byte(v2.path / "detector" / "model.weights.h5")
    monkeypatch.setenv("ANOMSTREAM_REGISTRY_DIR", str(tmp_path))
    code, output = run_cli(["models", "promote", "kdd", "ae", "2"], capsys)
    assert code == 1 and "sha256" in output and "Traceback" not in output, output
    assert registry.production("kdd").version == 1


def test_rollback_verifies_the_version_it_returns_to(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    v1 = _save(registry, fitted)
    _save(registry, fitted, promote=True)
    _flip_byte(v1.path / "threshold.json")
    with pytest.raises(RegistryIntegrityError, match="sha256"):
        registry.rollback("kdd")
    assert registry.production("kdd").version == 2


# -- defect 4: confined paths, required artifacts, malformed files --------------------------------
@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "detector/../../v0001/x"])
def test_artifact_names_outside_the_version_folder_are_refused(tmp_path: Path, fitted, name: str) -> None:
    registry = Registry(tmp_path)
    ref = _save(registry, fitted)
    outside = tmp_path / "outside.txt"
    outside.write_text("not a model")
    digest = __import__("hashlib").sha256(outside.read_bytes()).hexdigest()
    _edit_manifest(ref, lambda m: m["artifacts"].update({name: digest}))
    with pytest.raises(RegistryIntegrityError, match="leaves its version folder"):
        registry.load("kdd")


def test_a_symlink_leading_outside_is_refused_even_with_the_right_hash(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    ref = _save(registry, fitted)
    weights = ref.path / "detector" / "model.weights.h5"
    outside = tmp_path / "elsewhere.h5"
    shutil.copy(weights, outside)
    weights.unlink()
    weights.symlink_to(outside)
    with pytest.raises(RegistryIntegrityError, match="outside its version folder"):
        registry.load("kdd")


def test_deleting_a_checksum_entry_does_not_let_tampered_weights_load(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    ref = _save(registry, fitted)
    _flip_byte(ref.path / "detector" / "model.weights.h5")
    _edit_manifest(ref, lambda m: m["artifacts"].pop("detector/model.weights.h5"))
    with pytest.raises(RegistryIntegrityError, match="does not list detector/model.weights.h5"):
        registry.load("kdd")


def test_an_unlisted_calibration_file_is_never_read(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    ref = _save(registry, fitted)  # saved without calibration scores
    np.save(ref.path / "calibration_scores.npy", np.arange(3.0))
    assert registry.load("kdd").calibration_scores is None


def test_detector_outside_the_registry_in_the_alias_is_a_registry_error(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    _save(registry, fitted)
    alias = tmp_path / "kdd" / "production.json"
    alias.write_text(json.dumps({"detector": "../../outside/ae", "version": 1}))
    with pytest.raises(RegistryError, match="unknown detector '../../outside/ae'"):
        registry.load("kdd")


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("kdd/production.json", '{"detector": "ae", "vers', "not valid JSON"),
        ("kdd/production.json", '{"detector": "ae", "version": "1"}', "not a positive integer"),
        ("kdd/production.json", '{"detector": "ae", "version": true}', "not a positive integer"),
        ("kdd/production.json", "[1, 2]", "must hold a JSON object"),
        ("kdd/production.json", '{"detector": "ae", "version": 1, "history": [3]}', "history"),
        ("kdd/ae/v0001/manifest.json", '{"stream": "kdd", "artif', "not valid JSON"),
        (
            "kdd/ae/v0001/manifest.json",
            '{"stream": "kdd", "artifacts": ["encoder.json"]}',
            "lists no artifacts",
        ),
    ],
)
def test_every_malformed_registry_file_is_one_registry_error(
    tmp_path: Path, fitted, file: str, content: str, message: str
) -> None:
    registry = Registry(tmp_path)
    _save(registry, fitted)
    (tmp_path / file).write_text(content)
    with pytest.raises(RegistryError, match=message):
        registry.load("kdd")


def test_malformed_sha256_and_status_files_are_registry_errors(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    ref = _save(registry, fitted)
    _save(registry, fitted)
    (ref.path.parent / "v0002" / "status.json").write_text('{"status": "golden"}')
    with pytest.raises(RegistryError, match="not one of"):
        registry.list("kdd")
    _edit_manifest(ref, lambda m: m["artifacts"].update({"encoder.json": 42}))
    with pytest.raises(RegistryIntegrityError, match="sha256 of encoder.json is malformed"):
        registry.load("kdd")


def test_stream_and_detector_names_are_plain(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    with pytest.raises(RegistryError, match="not a stream name"):
        registry.production("../kdd")
    with pytest.raises(RegistryError, match="unknown detector"):
        registry.promote("kdd", "../ae", 1)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("pca", {"n_components": 2}),
        ("iforest", {"n_estimators": 5}),
        ("hst", {"n_trees": 2, "height": 3, "window_size": 20}),
        ("ensemble", {"members": [["pca", {"n_components": 2}], ["iforest", {"n_estimators": 5}]]}),
    ],
)
def test_each_detector_kind_declares_exactly_what_it_saves(tmp_path: Path, name: str, params: dict) -> None:
    from models.detectors import detector_class

    X = np.random.default_rng(1).random((200, 4)).astype(np.float32)
    encoder = WindowEncoder(4).fit(X)
    detector = detector_class(name)(**params).fit(encoder.transform(X))
    threshold = QuantileThreshold(0.05).fit(detector.score(encoder.transform(X)))
    registry = Registry(tmp_path)
    ref = registry.save("ecg", detector, encoder, threshold, {})
    saved = set(registry.manifest("ecg", name, 1)["artifacts"])
    assert set(required_artifacts(name, lambda rel: json.loads((ref.path / rel).read_text()))) == saved
    registry.load("ecg")


def test_every_detector_in_the_zoo_declares_its_artifacts() -> None:
    from models.detectors import DETECTORS, detector_class

    for name in DETECTORS:
        artifacts = detector_class(name).ARTIFACTS
        assert "params.json" in artifacts and all(isinstance(a, str) for a in artifacts), name


# -- statuses ---------------------------------------------------------------------------------------
def test_statuses_follow_promotions_rejections_and_rollbacks(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    for _ in range(3):
        _save(registry, fitted)
    assert [r["status"] for r in registry.list("kdd")] == ["production", "candidate", "candidate"]
    registry.set_status("kdd", "ae", 3, "rejected", "shadow: alert rate did not fall")
    registry.promote("kdd", "ae", 2, reason="drift:abc")
    rows = registry.list("kdd")
    assert [r["status"] for r in rows] == ["retired", "production", "rejected"]
    assert rows[1]["status_reason"] == "drift:abc" and "alert rate" in rows[2]["status_reason"]
    registry.rollback("kdd")
    assert [r["status"] for r in registry.list("kdd")] == ["production", "rejected", "rejected"]
    assert registry.status("kdd", "ae", 2)["reason"] == "rollback"
    with pytest.raises(RegistryError, match="production is set by"):
        registry.set_status("kdd", "ae", 3, "production")
    sealed = registry.verify(registry.resolve("kdd", "ae", 2))  # statuses never touch the seal
    assert "status.json" not in sealed["artifacts"]


def test_a_registry_without_status_files_reads_as_before(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    _save(registry, fitted)
    _save(registry, fitted, promote=True)
    for status in tmp_path.rglob("status.json"):
        status.unlink()
    assert [r["status"] for r in registry.list("kdd")] == ["retired", "production"]


# -- defect 5: no untrained model is ever saved -------------------------------------------------------
@pytest.mark.parametrize("epochs", [-1, 0])
def test_training_with_no_epochs_is_refused_before_anything_is_saved(tmp_path: Path, epochs: int) -> None:
    request = TrainingRequest("kdd", "ae", detector_params={"epochs": epochs, "verbose": 0})
    with pytest.raises(ValueError, match="epochs must be a whole number of at least 1"):
        train(Registry(tmp_path), tmp_path / "no-data-needed", request)
    assert not list(tmp_path.rglob("manifest.json")) and Registry(tmp_path).production("kdd") is None


@pytest.mark.parametrize("epochs", ["-1", "0"])
def test_cli_train_with_no_epochs_exits_1_and_saves_nothing(
    tmp_path: Path, monkeypatch, capsys, epochs: str
) -> None:
    monkeypatch.setenv("ANOMSTREAM_REGISTRY_DIR", str(tmp_path))
    code, output = run_cli(["train", "--stream", "kdd", "--epochs", epochs], capsys)
    assert code == 1 and "--epochs must be at least 1" in output
    assert "Traceback" not in output and not list(tmp_path.rglob("manifest.json"))


def test_ensemble_member_params_are_checked_too() -> None:
    with pytest.raises(ValueError, match="member ae: epochs"):
        check_params("ensemble", {"members": [["ae", {"epochs": -1}], ["pca", {}]]})
