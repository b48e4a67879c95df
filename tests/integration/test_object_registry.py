"""The registry in a real S3-compatible store (s3proxy from Maven Central, one per session): what s3proxy
enforces, sealed versions, verified downloads cached by digest, and promotions racing for the alias."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from models.detectors.classical import PCADetector
from models.features import WindowEncoder
from models.object_registry import BLOBS, S3Store
from models.registry import (
    Registry,
    RegistryConflictError,
    RegistryError,
    RegistryIntegrityError,
    open_registry,
)
from models.thresholds import QuantileThreshold
from stream.objectstore import ObjectStore, PreconditionFailed
from stream.settings import Settings
from tests.support.objectstore import S3Endpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).random((300, 8))
    encoder = WindowEncoder(8).fit(X)
    detector = PCADetector(n_components=3).fit(encoder.transform(X))
    threshold = QuantileThreshold(0.05).fit(detector.score(encoder.transform(X)))
    return X, encoder, detector, threshold


def registry(s3: S3Endpoint, url: str, cache: Path) -> Registry:
    made = open_registry(Settings(registry_url=url, s3=s3.settings(), state_dir=cache))
    assert isinstance(made.store, S3Store)
    return made


def cache_of(reg: Registry) -> Path:
    assert isinstance(reg.store, S3Store)
    return reg.store.cache


def save(reg: Registry, fitted, promote: bool | None = None):  # noqa: ANN001, ANN201
    X, encoder, detector, threshold = fitted
    return reg.save("ecg", detector, encoder, threshold, {"rows": len(X)}, promote=promote)


def test_s3proxy_enforces_create_only_and_compare_and_swap(s3: S3Endpoint, s3_registry_url: str) -> None:
    store = ObjectStore(s3_registry_url, s3.settings())
    first = store.put_new("k", b"one")
    with pytest.raises(PreconditionFailed):
        store.put_new("k", b"two")
    with pytest.raises(PreconditionFailed):
        store.put_if("k", b"three", '"00000000000000000000000000000000"')
    assert store.get("k") == (b"one", first)
    second = store.put_if("k", b"four", first)
    assert store.get("k") == (b"four", second) and second != first


def test_a_version_in_s3_loads_verified_from_a_cache_named_by_its_digest(
    s3: S3Endpoint, s3_registry_url: str, fitted, tmp_path: Path
) -> None:
    X, encoder, detector, _ = fitted
    ref = save(registry(s3, s3_registry_url, tmp_path / "trainer"), fitted)
    assert ref.version == 1
    worker = registry(s3, s3_registry_url, tmp_path / "worker")  # another host: an empty cache
    model = worker.load("ecg")
    np.testing.assert_allclose(model.score(X).scores, detector.score(encoder.transform(X)), rtol=1e-9)
    store = ObjectStore(s3_registry_url, s3.settings())
    manifest, _ = store.get("ecg/pca/v0001/manifest.json") or (b"", "")
    cached = worker.resolve("ecg").path
    assert cached.name == f"v0001-{hashlib.sha256(manifest).hexdigest()[:16]}"
    assert (cached / "manifest.json").read_bytes() == manifest
    assert sorted(store.list(BLOBS)) == sorted(f"{BLOBS}/{d}" for d in model.manifest["artifacts"].values())
    assert worker.production("ecg").version == 1
    assert [row["status"] for row in worker.list()] == ["production"]


def test_a_half_published_version_is_never_listed_or_loaded(
    s3: S3Endpoint, s3_registry_url: str, fitted, tmp_path: Path
) -> None:
    reg = registry(s3, s3_registry_url, tmp_path)
    save(reg, fitted)
    store = ObjectStore(s3_registry_url, s3.settings())
    # A trainer that died after its artifacts and before its manifest:
    store.put_new("ecg/pca/v0002/encoder.json", b"{}")
    assert reg.versions("ecg", "pca") == [1]
    with pytest.raises(RegistryError, match="no model ecg/pca v2"):
        reg.load("ecg", "pca", 2)
    assert reg.load("ecg", "pca").version == 1
    assert save(reg, fitted).version == 2  # the next trainer takes the number: no manifest held it


def test_a_tampered_object_is_refused_and_never_cached(
    s3: S3Endpoint, s3_registry_url: str, fitted, tmp_path: Path
) -> None:
    ref = save(registry(s3, s3_registry_url, tmp_path / "trainer"), fitted)
    store = ObjectStore(s3_registry_url, s3.settings())
    digest = registry(s3, s3_registry_url, tmp_path / "reader").manifest("ecg", "pca", ref.version)[
        "artifacts"
    ]["detector/model.skops"]
    data = bytearray(store.get(f"{BLOBS}/{digest}")[0])  # type: ignore[index]
    data[len(data) // 2] ^= 0xFF
    store.put(f"{BLOBS}/{digest}", bytes(data))
    worker = registry(s3, s3_registry_url, tmp_path / "worker")
    with pytest.raises(RegistryIntegrityError, match="sha256"):
        worker.load("ecg")
    assert not list(cache_of(worker).glob("ecg/pca/v0001-*")), "a refused version must not be cached"


def race(s3: S3Endpoint, url: str, versions: tuple[int, int], caches: Path) -> tuple[list[int], list[str]]:
    """Two promoters, each with its own client and cache (as two hosts have), promote at once."""
    barrier = threading.Barrier(len(versions))
    won: list[int] = []
    lost: list[str] = []

    def promote(version: int) -> None:
        promoter = registry(s3, url, caches / f"promoter-{version}")
        promoter.resolve("ecg", "pca", version)  # downloaded and verified before the race
        barrier.wait()
        try:
            promoter.promote("ecg", "pca", version)
            won.append(version)
        except RegistryConflictError as exc:
            lost.append(str(exc))

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won, lost


def test_two_promoters_racing_give_one_winner_and_one_clear_error(
    s3: S3Endpoint, s3_registry_url: str, fitted, tmp_path: Path
) -> None:
    reg = registry(s3, s3_registry_url, tmp_path / "trainer")
    for _ in range(5):
        save(reg, fitted, promote=None)  # v1 production, v2..v5 candidates
    for round_, pair in enumerate([(2, 3), (4, 5), (2, 3)]):
        won, lost = race(s3, s3_registry_url, pair, tmp_path / f"round-{round_}")
        assert len(won) == 1 and len(lost) == 1, (won, lost)
        assert "changed while switching" in lost[0] and "try again" in lost[0]
        alias = reg.production("ecg")
        assert alias is not None and alias.version == won[0]
        statuses = {row["version"]: row["status"] for row in reg.list("ecg")}
        assert [v for v, s in statuses.items() if s == "production"] == won


def test_a_worker_scores_with_the_s3_registrys_model_and_follows_a_promotion(
    kafka_bootstrap: str, s3: S3Endpoint, s3_registry_url: str, kdd_pca_registry: Path, tmp_path: Path
) -> None:
    from models.registry import Registry
    from stream.kafka import create_topics
    from tests.support import corrected_sample
    from tests.support.streams import make_settings, score_across_promotion

    settings = make_settings(
        kafka_bootstrap, tmp_path / "no-folder", registry_url=s3_registry_url, s3=s3.settings()
    )
    create_topics(settings)
    trainer = open_registry(settings)
    model = Registry(kdd_pca_registry).load("kdd")  # the session's PCA, published twice into the bucket
    for _ in range(2):
        new = trainer.save("kdd", model.detector, model.encoder, model.threshold, model.manifest["training"],
                           calibration_scores=model.calibration_scores)  # fmt: skip
    assert new.version == 2 and trainer.production("kdd").version == 1
    assert not (tmp_path / "no-folder").exists()

    versions = score_across_promotion(settings, corrected_sample(settings.data_dir, 1000, seed=3), "pca", 2)
    assert versions[0] == 1 and versions[-1] == new.version
    cached = sorted(p.name for p in (settings.state_dir / "registry-cache").glob("*/kdd/pca/v*"))
    assert [name[:6] for name in cached] == ["v0001-", "v0002-"]


def test_metadata_is_read_without_downloading_a_model(
    s3: S3Endpoint, s3_registry_url: str, fitted, tmp_path: Path
) -> None:
    for _ in range(2):
        save(registry(s3, s3_registry_url, tmp_path / "trainer"), fitted, promote=None)
    reader = registry(s3, s3_registry_url, tmp_path / "reader")  # another host: an empty cache
    assert [row["status"] for row in reader.list("ecg")] == ["production", "candidate"]
    assert reader.production("ecg").version == 1  # type: ignore[union-attr]
    assert reader.manifest("ecg", "pca", 2)["version"] == 2
    assert reader.threshold("ecg", "pca", 2).threshold_ > 0
    reader.set_status("ecg", "pca", 2, "rejected", "judged by hand")  # used to download v2 to check it exists
    assert reader.status("ecg", "pca", 2)["status"] == "rejected"
    assert not list(cache_of(reader).glob("ecg/pca/v*")), "no question about a model downloads it"


def test_a_promotion_decided_on_another_production_model_gets_the_folder_stores_error(
    s3: S3Endpoint, s3_registry_url: str, fitted, tmp_path: Path
) -> None:
    from models.model_id import ModelId

    reg = registry(s3, s3_registry_url, tmp_path / "trainer")
    for _ in range(3):
        save(reg, fitted, promote=None)
    reg.promote("ecg", "pca", 2)
    with pytest.raises(RegistryConflictError) as refused:
        reg.promote("ecg", "pca", 3, expected=ModelId("pca", 1))
    # Word for word the folder store's (tests/unit/models/test_registry_cas.py).
    assert str(refused.value) == (
        "the production alias of 'ecg' changed (it is pca v2, not pca v1) while switching it to pca v3: "
        "nothing was switched; see `anomstream models list --stream ecg` and try again"
    )
    assert reg.production("ecg").version == 2  # type: ignore[union-attr]
