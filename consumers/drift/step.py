"""The drift monitor's step: score records in, detected changes out, with no Kafka client.

The monitor's loop hands it each score record as the merge releases it (a
:class:`~consumers.drift.merge.Pending`), the feature test's findings, and its peers' drift events.
The step feeds the stream watches (:class:`~consumers.drift.watches.StreamWatches`), counts what it
saw, offers the feature test its samples, and returns each change found as a :class:`Detection`,
placed in the stream's input topic as far as the watch knows. Publishing it (placing it in every
input partition by Kafka's timestamps, the producer, the dedupe against ``drift-events``) is
:class:`~consumers.drift.publishing.DriftEventPublisher`'s; checkpointing is the loop's.

A detection is placed from the unit's spans at the moment it is returned, and the monitor publishes
it before it hands the step the next record: the spans and high-water marks the publisher reads
are those of the record that completed the detection, as when both were one method.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from consumers.drift.feature_sampler import FEATURE_KS, FeatureDetection
from consumers.drift.merge import Pending
from consumers.drift.monitor_metrics import DriftMetrics
from consumers.drift.state import Unit
from consumers.drift.watches import MonitorStats, StreamWatches
from models.drift import WatchEvent
from models.model_id import ModelId
from stream.messages import DriftEvent, ScoreRecord
from stream.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detection:
    """A change one of a stream's detectors found, placed in the input topic by the watch's spans."""

    unit: Unit  # the stream's unit (its spans place the change in partitions it holds no span of)
    event: WatchEvent
    topic: str  # the stream's input topic, as its score records name it
    offsets: dict[str, int]  # the change's first offset per input partition, as far as the spans know
    when: str | None  # the change's event time; None when the spans have forgotten it
    anchor: tuple[int, int] | None  # (input partition, offset) of the event at the change
    detected: dict[str, int]  # per input partition, the offsets of the events that completed it
    detail: str = ""  # what a feature test found moved ("name (D=0.31), ...")


class FeatureTest(Protocol):
    """What the step asks of the feature two-sample test
    (:class:`~consumers.drift.feature_sampler.FeatureSampler`, a thread of its own)."""

    @property
    def tests_run(self) -> Mapping[str, int]: ...

    def offer(self, stream: str, model: ModelId, topic: str, partition: int, offsets: list[int],
              first_time: str | None) -> None: ...  # fmt: skip

    def poll(self) -> list[FeatureDetection]: ...


class DriftStep:
    """Score records through the stream watches, the detected changes returned for publishing."""

    def __init__(
        self,
        settings: Settings,
        watches: StreamWatches,
        stats: MonitorStats,
        metrics: DriftMetrics,
        features: FeatureTest | None = None,
    ) -> None:
        self.settings = settings
        self.watches = watches
        self.stats = stats
        self.metrics = metrics
        self.features = features
        # Each stream's input topic as its score records name it: a dataset schema's stream has no
        # topic in the settings (and a worker may read it from a topic of the user's choosing).
        self.input_topics: dict[str, str] = {}
        self._sampled: dict[str, int] = {}  # admitted events counted towards the next feature sample
        self._tests_counted: dict[str, int] = {}

    def handle(self, item: Pending) -> list[Detection]:
        """Watch one released score record; the changes its scores completed."""
        self.stats.records += 1
        self.metrics.progress.completed()
        if item.record is None:  # malformed: counted when it was read
            return []
        self.input_topics[item.record.stream] = item.record.topic
        watched = self.watches.watch(item.record)
        if watched is None:
            return []
        if self.features is not None:
            self._offer_sample(watched.unit, item.record, watched.offsets)
        return [self._score_detection(watched.unit, event) for event in watched.events]

    def feature_detections(self) -> Iterator[Detection]:
        """The feature test's changes found since the last call, outside their stream's cooldown.

        A stream's watch is acknowledged (starts afresh, quiet for its cooldown) once the caller has
        taken its detection, that is after the monitor published it: a second change of that stream
        in the same poll falls in the cooldown, and a publish that raises leaves the watch as it was.
        """
        if self.features is None:
            return
        for stream, runs in list(self.features.tests_run.items()):
            self.metrics.feature_tests.labels(stream).inc(runs - self._tests_counted.get(stream, 0))
            self._tests_counted[stream] = runs
        for found in self.features.poll():
            detection = self._feature_detection(found)
            if detection is not None:
                yield detection
                detection.unit.watch.acknowledge()

    def acknowledge(self, peer: DriftEvent) -> bool:
        """Another monitor reported a change of a stream this one watches (the same model version):
        this monitor's watch starts afresh, quiet, so one change yields one event. Whether it did."""
        if peer.stream not in self.watches.follower.specs:
            return False
        unit = self.watches.units.get(peer.stream)
        if unit is None or unit.model.version != peer.model_version:
            return False
        log.info("drift on %s reported by another monitor (%s): ours starts afresh, quiet",
                 peer.stream, peer.event_id)  # fmt: skip
        unit.watch.acknowledge()
        return True

    def input_topic(self, stream: str) -> str:
        return self.input_topics.get(stream) or self.settings.topic(stream)

    # -- placing a change ---------------------------------------------------------------------------
    def _score_detection(self, unit: Unit, event: WatchEvent) -> Detection:
        # Records of different partitions interleave in blocks: a position is exact only within its
        # own partition, so the publisher takes every partition's first offset at the change's time.
        offsets, when = unit.spans.locate(event.change_position, unit.high)
        anchor = unit.spans.at(event.change_position)
        return Detection(unit, event, self.input_topic(unit.stream), offsets, when, anchor,
                         _detected_at(unit, event.position))  # fmt: skip

    def _feature_detection(self, found: FeatureDetection) -> Detection | None:
        unit = self.watches.units.get(found.stream)
        if unit is None or unit.model != found.model:
            return None
        if unit.watch.n < unit.watch.quiet_until:
            log.info("feature drift on %s during the cooldown of an earlier event: not reported",
                     found.stream)  # fmt: skip
            return None
        result = found.result
        event = WatchEvent(FEATURE_KS, unit.watch.n, -1, result.statistic, result.threshold)
        offsets = found.partition_offsets
        # The window's first sample: the publisher places it in every partition like a score change.
        first = next(iter(offsets.items()), None)
        anchor = (int(first[0]), first[1]) if first is not None else None
        detail = ", ".join(f"{name} (D={d:.2f})" for name, d, _ in result.features[:5])
        return Detection(unit, event, self.input_topic(unit.stream), offsets, found.event_time, anchor,
                         _detected_at(unit, event.position), detail)  # fmt: skip

    def _offer_sample(self, unit: Unit, record: ScoreRecord, offsets: np.ndarray) -> None:
        """Every feature_sample_every-th admitted (normal-looking, not in a burst) event."""
        assert self.features is not None
        every = self.settings.drift.feature_sample_every
        admitted = np.flatnonzero(unit.watch.last_admitted)
        done = self._sampled.get(unit.stream, 0)
        picked = admitted[(np.arange(done, done + len(admitted)) % every) == 0]
        self._sampled[unit.stream] = done + len(admitted)
        if len(picked):
            self.features.offer(unit.stream, unit.model, record.topic, record.partition,
                                offsets[picked].tolist(), record.event_times[0])  # fmt: skip


def _detected_at(unit: Unit, position: int) -> dict[str, int]:
    """Per input partition, the offsets of the events watched up to ``position`` (the detection)."""
    detected, detected_time = unit.spans.locate(position, unit.high)
    if detected_time is not None:
        detected = unit.spans.locate_time(detected_time, unit.high)
    return detected
