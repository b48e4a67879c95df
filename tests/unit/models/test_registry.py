"""Registry: versioned atomic writes, checksums verified before loading, promote and rollback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.detectors.autoencoder import DenseAutoencoder
from models.features import WindowEncoder
from models.registry import Registry, RegistryError, RegistryIntegrityError
from models.thresholds import QuantileThreshold


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.random((400, 8))
    encoder = WindowEncoder(8).fit(X)
    Xs = encoder.transform(X)
    detector = DenseAutoencoder(hidden=(6, 3), epochs=2, verbose=0).fit(Xs)
    threshold = QuantileThreshold(0.05).fit(detector.score(Xs))
    return X, encoder, detector, threshold


def _save(registry: Registry, fitted, promote=None):
    X, encoder, detector, threshold = fitted
    return registry.save(
        "ecg", detector, encoder, threshold, {"data": "random", "rows": len(X)}, promote=promote
    )


def test_save_then_load_scores_identically(tmp_path: Path, fitted) -> None:
    X, encoder, detector, _ = fitted
    registry = Registry(tmp_path)
    ref = _save(registry, fitted)
    assert (ref.version, ref.path.name) == (1, "v0001")
    model = registry.load("ecg")
    np.testing.assert_allclose(model.score(X).scores, detector.score(encoder.transform(X)), rtol=1e-6)
    manifest = model.manifest
    assert manifest["training"]["rows"] == 400 and set(manifest["artifacts"]) >= {
        "encoder.json",
        "threshold.json",
    }
    assert not list(tmp_path.rglob(".staging-*")), "staging folders must not be left behind"


def test_tampered_artifact_is_refused(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    ref = _save(registry, fitted)
    weights = ref.path / "detector" / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(RegistryIntegrityError, match="sha256"):
        registry.load("ecg")


def test_missing_artifact_is_refused(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    ref = _save(registry, fitted)
    (ref.path / "threshold.json").unlink()
    with pytest.raises(RegistryIntegrityError, match="missing"):
        registry.load("ecg")


def test_first_version_is_promoted_later_ones_only_when_asked(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    _save(registry, fitted)
    _save(registry, fitted)
    assert registry.production("ecg").version == 1
    _save(registry, fitted, promote=True)
    assert registry.production("ecg").version == 3
    assert registry.rollback("ecg").version == 1
    with pytest.raises(RegistryError, match="roll back"):
        registry.rollback("ecg")
    rows = registry.list("ecg")
    assert [r["version"] for r in rows] == [1, 2, 3] and [r["is_production"] for r in rows] == [
        True,
        False,
        False,
    ]


def test_failed_save_leaves_no_version_behind(tmp_path: Path, fitted) -> None:
    X, encoder, _, threshold = fitted

    class Broken(DenseAutoencoder):
        def save(self, directory: Path) -> None:
            directory.mkdir(parents=True)
            (directory / "partial").write_text("half a model")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        Registry(tmp_path).save("ecg", Broken(), encoder, threshold, {})
    assert Registry(tmp_path).versions("ecg", "ae") == []
    assert not list(tmp_path.rglob("partial"))


def test_unknown_model_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="anomstream train --stream kdd"):
        Registry(tmp_path).load("kdd")
