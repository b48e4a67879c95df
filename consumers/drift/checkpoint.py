"""The drift monitor's checkpoint bookkeeping, as plain data: which ``scores`` offsets its state
covers, whether it changed since it was saved, and where an assigned partition resumes.

The monitor delivers its events, then saves (:meth:`MonitorCheckpoint.save`), then commits the offsets
the save covers (:meth:`MonitorCheckpoint.covered`): the checkpoint is the truth, the group's offsets
follow it. The Kafka calls stay in the monitor's loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from consumers.drift.calibration_cache import WatchSpec
from consumers.drift.state import CheckpointStore, SpanLog, Unit
from models.drift import DriftWatch

log = logging.getLogger(__name__)


class MonitorCheckpoint:
    """The next ``scores`` offset per partition held, and what the last saved checkpoint covers."""

    def __init__(self, store: CheckpointStore) -> None:
        self.store = store
        self.next_offsets: dict[int, int] = {}  # scores partition -> next offset to read
        self.saved_offsets: dict[int, int] = {}  # what the checkpoint covers, per scores partition
        self.dirty = False  # records were handled since the last save

    def restore(self, specs: Mapping[str, WatchSpec], topic_id: str | None) -> dict[str, Unit]:
        """The units saved for the streams of ``specs`` (a unit of another model keeps only its
        high-water marks); none when there is no checkpoint or it was taken on another topic."""
        saved = self.store.load()
        if saved is None:
            return {}
        saved_topic = saved.get("topic_id")
        if saved_topic and topic_id and saved_topic != topic_id:
            log.warning("checkpoint %s was taken on another scores topic (topic id %s, now %s: a new "
                        "cluster or a recreated topic): its offsets and watches do not apply; starting "
                        "fresh", self.store.where, saved_topic, topic_id)  # fmt: skip
            return {}
        self.saved_offsets = {int(p): int(o) for p, o in saved["offsets"].items()}
        units = {}
        for state in saved["units"]:
            spec = specs.get(state["stream"])
            if spec is not None:
                units[spec.stream] = _restored(spec, state)
        log.info("resumed from %s: %s", self.store.where, {u.stream: u.watch.n for u in units.values()})
        return units

    def needed(self, commit: Iterable[int]) -> bool:
        """Whether a save is due before committing ``commit``: records handled, or partitions the
        last save does not cover."""
        return self.dirty or bool(set(commit) - set(self.saved_offsets))

    def save(self, units: Iterable[Unit], topic_id: str | None) -> None:
        self.store.save(self.next_offsets, list(units), topic_id)
        self.saved_offsets = dict(self.next_offsets)
        self.dirty = False

    def covered(self, commit: Iterable[int]) -> dict[int, int]:
        """The offsets to commit for ``commit``'s partitions: those the checkpoint covers."""
        return {p: self.next_offsets[p] for p in sorted(commit) if p in self.next_offsets}

    def resume_at(self, partition: int, offset: int, committed: int) -> int:
        """Where an assigned partition resumes: the checkpoint (the commit after it may be lost),
        unless another monitor has since committed further (what it watched is not ours to watch)."""
        saved = self.saved_offsets.get(partition)
        if saved is not None and saved > committed:
            offset = saved
        if offset >= 0:
            self.next_offsets[partition] = offset
        return offset

    def drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.next_offsets.pop(partition, None)


def _restored(spec: WatchSpec, state: dict[str, Any]) -> Unit:
    high = {int(k): int(v) for k, v in state["high"].items()}
    unit = Unit(spec.stream, spec.model, DriftWatch(spec.config), high=high, checksum=spec.checksum)
    same_model = tuple(state["model"]) == spec.model and state.get("checksum") == spec.checksum
    if same_model and state["kind"] == spec.config.score.kind:
        unit.watch.set_state(state["watch"])
        unit.spans = SpanLog.from_state(state["spans"])
    return unit
