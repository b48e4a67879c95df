"""Issue 28 item 4: the drift retrain promotes by compare-and-swap. A production model promoted by hand
while the retrain finished (between its look at production and its promotion) stands; the candidate
is announced ``rejected`` on model-updates with one line that says why, and marked so."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from consumers.drift.retrain import Retrainer, _Job
from models.detectors.classical import PCADetector
from models.features import WindowEncoder
from models.model_id import ModelId, ProductionAlias
from models.registry import Registry
from models.retraining import PASSED
from models.thresholds import QuantileThreshold
from stream.kafka import create_topics, read_all
from stream.messages import ChangePoint, DriftEvent
from tests.support import make_settings

pytestmark = pytest.mark.integration


class PromotedByHandAfterRead(Registry):
    """The retrain's registry: right after its first look at production, an operator promotes
    ``version`` by hand (``anomstream models promote``), as can happen on a running system."""

    def __init__(self, root: Path, version: int) -> None:
        super().__init__(root)
        self.folder, self.version = root, version

    def production(self, stream: str) -> ProductionAlias | None:
        alias = super().production(stream)
        if self.version:
            version, self.version = self.version, 0
            Registry(self.folder).promote(stream, "pca", version, reason="manual")
        return alias


def test_a_promotion_by_hand_while_a_retrain_promotes_is_never_overwritten(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    registry_dir = tmp_path / "registry"
    settings = make_settings(kafka_bootstrap, registry_dir)
    create_topics(settings)
    X = np.random.default_rng(0).random((300, 6))
    encoder = WindowEncoder(6).fit(X)
    detector = PCADetector(n_components=3).fit(encoder.transform(X))
    threshold = QuantileThreshold(0.05).fit(detector.score(encoder.transform(X)))
    registry = Registry(registry_dir)
    for _ in range(3):  # v1 production; v2 an operator's choice; v3 the retrain's candidate
        registry.save("kdd", detector, encoder, threshold, {"rows": len(X)})

    now = datetime.now(UTC).isoformat()
    event = DriftEvent("ev-1", "kdd", 1, "adwin", 1.0, 0.5, ChangePoint("kdd", {"0": 0}, now), now)
    done: Future = Future()
    done.set_result({"outcome": PASSED, "version": 3, "shadow": {"passed": True}, "detail": "shadow passed"})
    retrainer = Retrainer(settings)
    retrainer.registry = PromotedByHandAfterRead(registry_dir, version=2)
    try:
        result = retrainer._finish(_Job(event, ModelId("pca", 1), done))
    finally:
        retrainer.close()

    # Before, the candidate replaced the hand-promoted v2 (outcome "promoted", alias pca v3).
    assert result.outcome == "conflict", result
    moved = "conflict: production of kdd changed from pca v1 to pca v2 while retraining"
    assert result.detail.startswith(moved)
    assert registry.production("kdd").model == ("pca", 2)  # type: ignore[union-attr]
    assert registry.status("kdd", "pca", 3)["status"] == "rejected"
    updates = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("model_updates"))]
    assert [(u["version"], u["status"], u["reason"]) for u in updates] == [(3, "rejected", "drift:ev-1")]
    assert updates[0]["detail"] == result.detail and "\n" not in result.detail
