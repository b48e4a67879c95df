"""Checkpoints of what a model learns while it scores: a sliding threshold's window, Half-Space Trees'
masses, a sequential detector's context. They live outside the sha256-sealed registry artifacts (those
never change once written), one document per stream, model version and **input partition** in the
state store (:mod:`stream.state_store`: the state folder, or an object store, where a replica on another
host finds it)::

    online/<stream>/<detector>/v0003/<input topic>-<partition>.json

State is keyed like the stream is partitioned (Quix Streams keeps state per topic partition): a
worker keeps one learning copy of the model per input partition it holds (:func:`learning_copy`), and
when a rebalance moves a partition, its next owner resumes what was learnt from that partition's
events, whichever worker learnt it. A series keyed to one partition is learnt in its own order, as
offline.

A checkpoint also names the exact model it was learnt on (a digest of the sealed manifest: creation
time and artifact sha256s), so one left by another registry's "v3", or by a version that was deleted
and written again, is never resumed: version numbers repeat, models do not.

A worker learns only from committed batches, so a checkpoint never holds a batch twice; it writes a
partition's checkpoint at most every ``interval`` seconds, when the partition is revoked (after its
last batch is committed) and when it stops; a crash loses at most the last interval of learning,
never doubles it.

>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> from models.thresholds import SlidingPercentileThreshold
>>> from models.scoring import ScoringModel
>>> model = ScoringModel("ecg", "pca", 3, None, None, SlidingPercentileThreshold(4, 75).fit([1, 2, 3, 4]))
>>> from stream.state_store import FolderStateStore
>>> store = OnlineStateStore(FolderStateStore(Path(tempfile.mkdtemp())))
>>> model.learn(np.array([9.0, 9.5])); store.save(model, "ecg", 0, committed_events=2)
>>> fresh = ScoringModel("ecg", "pca", 3, None, None, SlidingPercentileThreshold(4, 75).fit([1, 2, 3, 4]))
>>> store.restore(fresh, "ecg", 0), fresh.threshold.threshold_
(2, 9.5)
>>> store.restore(fresh, "ecg", 1)  # another partition learnt nothing yet
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
from typing import Any

from models.detectors import OnlineDetector
from models.scoring import ScoringModel
from stream.state_store import StateStore

log = logging.getLogger(__name__)


def model_identity(model: ScoringModel) -> str:
    """A digest of what makes this model version itself: its manifest's creation time and artifacts."""
    manifest = model.manifest or {}
    basis = {
        "stream": model.stream,
        "detector": model.detector_name,
        "version": model.version,
        "created_at": manifest.get("created_at"),
        "artifacts": manifest.get("artifacts"),
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def online_state(model: ScoringModel) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if model.threshold.learns:
        state["threshold"] = model.threshold.state()
    if isinstance(model.detector, OnlineDetector):
        state["detector"] = model.detector.state()
    return state


def learning_copy(model: ScoringModel) -> ScoringModel:
    """The model with its own copy of what learns (a learning threshold, an online detector); the
    encoder, a fixed detector and the manifest are shared."""
    return dataclasses.replace(
        model,
        threshold=copy.deepcopy(model.threshold) if model.threshold.learns else model.threshold,
        detector=copy.deepcopy(model.detector) if model.detector_learns else model.detector,
    )


class OnlineStateStore:
    """Online-state checkpoints in a state store, one per model version and input partition."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def key(self, model: ScoringModel, topic: str, partition: int) -> str:
        return f"online/{model.stream}/{model.detector_name}/v{model.version:04d}/{topic}-{partition}.json"

    def save(self, model: ScoringModel, topic: str, partition: int, committed_events: int) -> None:
        """Write the model's online state atomically (a crash mid-write leaves the previous one)."""
        if not model.learns:
            return
        payload = {
            "model": model_identity(model),
            "committed_events": committed_events,
            **online_state(model),
        }
        self.store.write(self.key(model, topic, partition), payload)

    def restore(self, model: ScoringModel, topic: str, partition: int) -> int | None:
        """Apply the last checkpoint of this model version learnt from ``topic[partition]``; the
        committed events it covers, or None."""
        if not model.learns:
            return None
        key = self.key(model, topic, partition)
        where = self.store.where(key)
        try:
            payload = self.store.read(key)
            if payload is None:
                return None
            if payload.get("model") != model_identity(model):
                log.info("online state %s was learnt on another model with this version number: "
                         "starting as trained", where)  # fmt: skip
                return None
            if "threshold" in payload and model.threshold.learns:
                model.threshold.set_state(payload["threshold"])
            if "detector" in payload and isinstance(model.detector, OnlineDetector):
                model.detector.set_state(payload["detector"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable online state %s (%s): starting as trained", where, exc)
            return None
        return int(payload.get("committed_events", 0))
