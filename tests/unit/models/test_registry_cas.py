"""Issue 26 item 3 and issue 28 items 1 and 4, on the folder store: the production alias changes by
compare-and-swap only (a promoter that decided on a production model that is gone is refused with
the S3 store's error and message), and nothing non-finite is ever written or promoted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.detectors.classical import PCADetector
from models.features import WindowEncoder
from models.model_id import ModelId
from models.registry import Registry, RegistryConflictError, RegistryIntegrityError
from models.registry_store import FolderStore
from models.thresholds import FixedThreshold, QuantileThreshold


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).random((300, 6))
    encoder = WindowEncoder(6).fit(X)
    detector = PCADetector(n_components=3).fit(encoder.transform(X))
    threshold = QuantileThreshold(0.05).fit(detector.score(encoder.transform(X)))
    return X, encoder, detector, threshold


def save(registry: Registry, fitted, promote: bool | None = False):  # noqa: ANN001, ANN201
    X, encoder, detector, threshold = fitted
    return registry.save("kdd", detector, encoder, threshold, {"rows": len(X)}, promote=promote)


class RivalFirst(FolderStore):
    """A folder store on which another registry promotes ``version`` between this registry's read of
    the alias and its swap: the interleaving two hosts (or the CLI and a drift monitor) can produce."""

    def __init__(self, root: Path, version: int) -> None:
        super().__init__(root)
        self.rival, self.version = Registry(root), version

    def swap(self, key: str, data: bytes, expected: str | None) -> bool:
        if self.version:
            version, self.version = self.version, 0
            self.rival.promote("kdd", "pca", version)
        return super().swap(key, data, expected)


def test_a_promotion_whose_alias_changed_after_it_was_read_is_refused(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    for _ in range(3):
        save(registry, fitted, promote=None)  # v1 production, v2 and v3 candidates
    racing = Registry(RivalFirst(tmp_path, version=2))
    with pytest.raises(RegistryConflictError, match="changed while switching it to pca v3: nothing"):
        racing.promote("kdd", "pca", 3)
    # The folder store used to queue the second promoter behind the first, which overwrote a decision
    # it never saw: v2 stays production and v3 a candidate.
    assert registry.production("kdd").model == ("pca", 2)  # type: ignore[union-attr]
    assert registry.status("kdd", "pca", 3)["status"] == "candidate"


def test_a_promotion_decided_on_another_production_model_is_refused(tmp_path: Path, fitted) -> None:
    registry = Registry(tmp_path)
    for _ in range(3):
        save(registry, fitted, promote=None)
    registry.promote("kdd", "pca", 2)  # by hand, while a retrain judged v3 against v1
    with pytest.raises(RegistryConflictError) as refused:
        registry.promote("kdd", "pca", 3, expected=ModelId("pca", 1))
    assert str(refused.value) == (
        "the production alias of 'kdd' changed (it is pca v2, not pca v1) while switching it to pca v3: "
        "nothing was switched; see `anomstream models list --stream kdd` and try again"
    )
    assert registry.production("kdd").model == ("pca", 2)  # type: ignore[union-attr]
    assert registry.promote("kdd", "pca", 3, expected=ModelId("pca", 2)).model == ("pca", 3)


def test_a_first_model_saved_after_another_writer_promoted_stays_a_candidate(tmp_path: Path, fitted) -> None:
    racing = Registry(RivalFirst(tmp_path, version=1))
    save(Registry(tmp_path), fitted)  # v1, a candidate (no production yet)
    ref = save(racing, fitted, promote=None)  # v2: "no production" was read, then v1 was promoted
    assert ref.version == 2
    assert racing.production("kdd").model == ("pca", 1)  # type: ignore[union-attr]
    assert racing.status("kdd", "pca", 2)["status"] == "candidate"


def test_the_folder_stores_swap_compares_the_generation(tmp_path: Path) -> None:
    store = FolderStore(tmp_path)
    assert store.swap("kdd/production.json", b"one", None)
    assert not store.swap("kdd/production.json", b"two", None)  # exists: not a first write
    found = store.get("kdd/production.json")
    assert found is not None and found[0] == b"one"
    assert store.swap("kdd/production.json", b"three", found[1])
    assert not store.swap("kdd/production.json", b"four", found[1])  # stale generation
    assert store.get("kdd/production.json")[0] == b"three"  # type: ignore[index]


# -- issue 28 item 1: the registry's write path is the last line of defence -------------------------
def test_a_model_trained_on_rows_with_inf_is_never_written(tmp_path: Path, fitted) -> None:
    from models.detectors.autoencoder import DenseAutoencoder

    X, encoder, _, _ = fitted
    rows = encoder.transform(X)
    rows[7, 2] = np.inf  # a training file's literal `inf` cell: loss nan, val_loss nan
    with np.errstate(all="ignore"):
        detector = DenseAutoencoder(hidden=(4, 2), epochs=1, verbose=0).fit(rows)
        threshold = QuantileThreshold(0.05).fit(detector.score(rows))  # "quantile threshold nan"
    registry = Registry(tmp_path)
    with pytest.raises(RegistryIntegrityError, match=r"refusing to save kdd/ae: its threshold is nan"):
        registry.save("kdd", detector, encoder, threshold, {"rows": len(X)})
    with pytest.raises(RegistryIntegrityError, match=r"kdd/ae: \d+ of \d+ values of its fitted weights\[0\]"):
        registry.save("kdd", detector, encoder, FixedThreshold(1.0), {"rows": len(X)})
    # Before, the first save wrote v1 and, with no production model yet, promoted it.
    assert registry.list() == [] and registry.production("kdd") is None
    assert not list(tmp_path.rglob("manifest.json"))


def test_non_finite_calibration_scores_are_refused(tmp_path: Path, fitted) -> None:
    X, encoder, detector, threshold = fitted
    registry = Registry(tmp_path)
    with pytest.raises(RegistryIntegrityError, match="calibration scores hold nan"):
        registry.save("kdd", detector, encoder, threshold, {}, calibration_scores=np.array([0.1, np.nan]))
    assert registry.list() == []
