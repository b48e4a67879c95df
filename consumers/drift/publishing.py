"""The drift monitor's events on ``drift-events``: each change once, across restarts and peers.

:class:`DriftEventPublisher` turns a :class:`~consumers.drift.step.Detection` into a
:class:`~stream.messages.DriftEvent`: it places the change in every partition of the input topic
(by Kafka's timestamps where the watch has not seen a partition that far), skips a change that is
on ``drift-events`` already (the same id, or a restatement of an event read at start), submits the
retrain (``--retrain``) and produces the event. Delivery is the checkpoint's first step
(:meth:`DriftEventPublisher.flush`): a state is saved only once the events it has seen are out.
"""

from __future__ import annotations

import logging

import msgspec
from confluent_kafka import KafkaException, Producer

from consumers.drift.events import build_drift_event
from consumers.drift.monitor_metrics import DriftMetrics
from consumers.drift.retrain import Retrainer
from consumers.drift.state import Unit
from consumers.drift.step import Detection
from consumers.drift.watches import MonitorStats
from stream.kafka import (
    TopicMissingError,
    flush_or_raise,
    iter_topic,
    make_producer,
    offsets_at_time,
    produce,
)
from stream.messages import DriftEvent, decode_drift_event, encode
from stream.settings import Settings

log = logging.getLogger(__name__)


class DriftEventPublisher:
    """The producer of one monitor's drift events, and what it knows is on ``drift-events``."""

    producer: Producer  # made by start()

    def __init__(
        self,
        settings: Settings,
        instance: str,
        metrics: DriftMetrics,
        stats: MonitorStats,
        retrainer: Retrainer | None = None,
    ) -> None:
        self.settings = settings
        self.instance = instance
        self.metrics = metrics
        self.stats = stats
        self.retrainer = retrainer
        self.topic = settings.topic("drift")
        self.published: set[str] = set()
        # Events on drift-events when this monitor started (its own, its peers'): a change it detects
        # again from a state that had not seen one of them is not a new change (see _reported_already).
        self.reported: list[DriftEvent] = []

    def start(self) -> None:
        """Read what is on ``drift-events`` already, then open the producer."""
        self.reported = self._published_before()
        self.published |= {event.event_id for event in self.reported}
        self.producer = make_producer(self.settings)

    def ours(self, event: DriftEvent) -> bool:
        """Whether ``event`` (read back from ``drift-events``) is one this monitor knows of: its own,
        or one there when it started."""
        return event.event_id in self.published

    def publish(self, detection: Detection) -> None:
        """The change on ``drift-events`` (and its retrain submitted), unless it is there already."""
        unit, event = detection.unit, detection.event
        offsets = detection.offsets
        if detection.when is not None and offsets:
            offsets = self._every_partition(unit, detection.topic, detection.when, detection.anchor)
        drift = build_drift_event(unit.stream, unit.model, self.instance, event, detection.topic, offsets,
                                  detection.when, detection.detected)  # fmt: skip
        if drift.event_id in self.published:
            # Re-detected after a restart from a checkpoint taken before it was published (a kill in
            # between): the same change gives the same id, and it is on drift-events already.
            log.warning("drift on %s (%s) was published before this monitor restarted: not again",
                        unit.stream, drift.event_id)  # fmt: skip
            return
        earlier = self._reported_already(drift)
        if earlier is not None:
            log.warning("drift on %s (%s) began before %s was detected (reported before this monitor "
                        "started): the same change, not reported again", unit.stream, drift.detector,
                        earlier.event_id)  # fmt: skip
            return
        if self.retrainer is not None and self.retrainer.submit(drift):
            drift = msgspec.structs.replace(drift, action="retrain_started")
        produce(self.producer, self.topic, encode(drift), unit.stream.encode())
        self.producer.poll(0)
        self.published.add(drift.event_id)
        self.stats.events.append(drift)
        self.stats.detected_at_offsets.append(detection.detected)
        self.metrics.drift_events.labels(unit.stream, event.detector).inc()
        features = f"; features {detection.detail}" if detection.detail else ""
        log.warning(
            "drift on %s (%s, %s): statistic %.4g > %.4g, change from offsets %s (%s), action %s%s",
            unit.stream, unit.model, event.detector, event.statistic, event.threshold,
            offsets, detection.when, drift.action, features,
        )  # fmt: skip

    def flush(self) -> None:
        """Every event produced is on ``drift-events`` (raises when some are not)."""
        flush_or_raise(self.producer)

    def _every_partition(
        self, unit: Unit, topic: str, when: str, anchor: tuple[int, int] | None
    ) -> dict[str, int]:
        """The first offset of the change (at event time ``when``, seen at ``anchor``: input partition
        and offset) in every partition of the stream's input topic.

        Where the watch saw events from ``when`` on, the spans place it. A monitor catching up on a
        backlog may detect the change before it watched any such event of other partitions (a worker
        that caught up itself published one partition's scores before the next's): those are placed
        by Kafka's timestamps, at the first offset produced no earlier than the anchor event.
        """
        placed = unit.spans.placed(when)
        by_time: dict[int, int] = {}
        if anchor is not None:
            try:
                by_time = offsets_at_time(self.settings, topic, anchor)
            except KafkaException as exc:
                log.warning("cannot place the change in every partition of %s: %s", topic, exc)
        if not by_time:
            return unit.spans.locate_time(when, unit.high)
        offsets = {str(p): placed.get(str(p), offset) for p, offset in by_time.items()}
        return dict(sorted(offsets.items(), key=lambda kv: int(kv[0])))

    def _reported_already(self, drift: DriftEvent) -> DriftEvent | None:
        """An event read at start that ``drift`` restates (taken from the list: one restatement each):
        same stream and model version, and the new change began before that event had been detected
        in some input partition both name.

        A monitor resumed from a checkpoint older than an event (killed between publishing its own and
        checkpointing it, or between acknowledging a peer's and checkpointing that) detects the change
        again, and not always under the same id (a feature test's window depends on the background
        sampler's timing; a peer's id names the peer). A change that began before an earlier event's
        detection point is that event's change: a new one begins after it. "Some partition", not
        every one: an event's ``detected_offsets`` can fall short in partitions its monitor had not
        watched up to the detection (a backlog read one partition ahead of another), never beyond it,
        so a new change begins at or after them in every partition.
        """
        began = drift.change.partition_offsets
        for index, event in enumerate(self.reported):
            detected = event.change.detected_offsets
            if event.stream != drift.stream or event.model_version != drift.model_version or not detected:
                continue
            if any(began[p] < detected[p] for p in began.keys() & detected.keys()):
                return self.reported.pop(index)
        return None

    def _published_before(self) -> list[DriftEvent]:
        """The drift events on ``drift-events`` (a small topic, read once at start): a change this
        instance re-detects from a checkpoint older than one of them is not published twice."""
        events = []
        try:
            for message in iter_topic(self.settings, self.topic, timeout=30):
                try:
                    event = decode_drift_event(message.value() or b"")
                except msgspec.DecodeError:
                    continue
                events.append(event)
        except TopicMissingError:
            pass  # nothing was ever published
        return events
