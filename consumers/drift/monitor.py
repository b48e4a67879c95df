"""``anomstream drift``: the drift monitor, a consumer group on the ``scores`` topic.

Per batch::

    consume score records (read_committed) -> the record's stream's unit:
        skip what was already watched (input offsets at or below the unit's high-water mark)
        -> the stream's DriftWatch (calibrated on the production model's validation scores)
        -> a DriftEvent per detection on drift-events (and, with --retrain, a retrain submitted)
    every checkpoint_interval_s: events delivered -> state written -> scores offsets committed

Several monitors share the partitions of ``scores``; each watches, per stream, the records of the
partitions it holds. A detection by another monitor (read back from ``drift-events``) resets this
monitor's watch of that stream and starts its cooldown, so one change yields one event (two monitors
detecting within the same fraction of a second can still both report it: a retrainer's own cooldown
absorbs that). A new production model (``model-updates``, or score records of a newer production
version) resets the stream's watch with that model's own calibration; scores of any other model
version are not watched.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime

import msgspec
import numpy as np
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from consumers.drift.calibration_cache import Calibrations
from consumers.drift.checkpoint import MonitorCheckpoint
from consumers.drift.events import build_drift_event
from consumers.drift.feature_sampler import FEATURE_KS, FeatureSampler
from consumers.drift.following import ModelFollower
from consumers.drift.merge import Pending, RecordMerger
from consumers.drift.monitor_metrics import DriftMetrics
from consumers.drift.retrain import Retrainer
from consumers.drift.state import CheckpointStore, Unit
from consumers.drift.watches import MonitorStats, StreamWatches
from consumers.membership import Rejoins
from models.drift import DETECTORS, WatchEvent
from models.registry import RegistryError
from stream.errors import ConfigurationError
from stream.kafka import (
    TopicMissingError,
    check_message,
    flush_or_raise,
    follow_from_end,
    iter_topic,
    make_producer,
    offsets_at_time,
    produce,
    topic_id,
)
from stream.kafka.watchdog import UNTIMED_CALL_S, close_quietly, guarded
from stream.messages import DriftEvent, ScoreRecord, decode_drift_event, decode_model_update, encode
from stream.settings import STREAMS, Settings
from stream.signals import ShutdownBound, StopFlag
from stream.state_store import state_store

log = logging.getLogger(__name__)

_decode_record = msgspec.json.Decoder(ScoreRecord).decode
MAX_QUEUED = 500  # score records queued per partition before its fetching pauses


class DriftMonitor(Rejoins):
    """A member of the drift monitors' group on ``scores``: a thin loop around Kafka-free parts.

    It consumes score records and merges them in event-time order (:mod:`consumers.drift.merge`),
    feeds them to its :class:`~consumers.drift.watches.StreamWatches` (one drift watch per stream,
    following the production model through a :class:`~consumers.drift.following.ModelFollower`),
    publishes what they detect on ``drift-events`` (and, with ``retrain``, submits a retrain), and
    checkpoints (:class:`~consumers.drift.checkpoint.MonitorCheckpoint`) before it commits offsets.
    Like every group member it recreates a consumer left out of its group after an outage
    (:class:`~consumers.membership.Rejoins`).
    """

    def __init__(
        self,
        settings: Settings,
        streams: Sequence[str] | None = None,
        detector: str | None = None,
        retrain: bool = False,
        metrics_port: int | None = None,
        stop: StopFlag | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.group_id = settings.drift.group_id
        self.init_rejoins()
        self.instance = instance_id or socket.gethostname()
        self.kind = detector or settings.drift.detector
        if self.kind not in DETECTORS:
            raise ConfigurationError(
                f"unknown drift detector {self.kind!r}: choose one of {', '.join(DETECTORS)}"
            )
        self.stop = stop if stop is not None else StopFlag()
        self.retrainer = _make_retrainer(settings) if retrain else None
        self.follower = ModelFollower(Calibrations(settings, self.kind), streams)
        self.follower.start(STREAMS)
        if not self.follower.specs and not self.follower.fixed_streams:
            raise RegistryError(
                f"no production model in {settings.registry}: nothing to watch; "
                "run `anomstream train --stream kdd` first"
            )
        self.metrics = DriftMetrics(metrics_port, stall_after_s=settings.resilience.stall_after_s)
        self.scores_topic = settings.topic("scores")
        self.checkpoint = MonitorCheckpoint(
            CheckpointStore(settings.state_dir, settings.drift.group_id, self.instance, state_store(settings))
        )
        self.stats = MonitorStats()
        self.watches = StreamWatches(self.follower, self.metrics, self.stats)
        self.merger = RecordMerger()
        self.features = FeatureSampler(settings) if settings.drift.feature_test else None
        self._sampled: dict[str, int] = {}  # admitted events counted towards the next feature sample
        self._tests_counted: dict[str, int] = {}
        self.paused: set[int] = set()
        self.assigned: set[int] = set()
        self.published: set[str] = set()
        # Events on drift-events when this monitor started (its own, its peers'): a change it detects
        # again from a state that had not seen one of them is not a new change (see _reported_already).
        self.reported: list[DriftEvent] = []
        self._checkpoint_now = False  # set by _changed_state, cleared by a checkpoint
        for stream, spec in self.follower.specs.items():
            self.metrics.model_version.labels(stream).set(spec.model.version)
            # A zero series from the start: "no drift yet" is 0 on a panel, not "no data".
            self.metrics.drift_events.labels(stream, self.kind)
        self.scores_topic_id: str | None = None
        # Each stream's input topic as its score records name it: a dataset schema's stream has no
        # topic in the settings (and a worker may read it from a topic of the user's choosing).
        self.input_topics: dict[str, str] = {}

    # -- the loop -------------------------------------------------------------------------------
    def run(self, max_records: int | None = None) -> MonitorStats:
        """Watch until stopped (or until ``max_records`` score records were read).

        Everything it opens is entered into one exit stack as it is opened (what __init__ started
        first), so a failure at any point, a broker refusing a reader included, closes exactly what
        was opened, last opened first, within the shutdown bound."""
        bound = ShutdownBound(self.settings.resilience.shutdown_grace_s, f"drift monitor {self.instance}",
                              self._abandoned).arm(self.stop)  # fmt: skip
        with ExitStack() as opened:
            opened.callback(bound.finished)  # runs last: every close below is inside the bound
            opened.callback(self.checkpoint.store.close)
            opened.callback(self.metrics.close)
            if self.features is not None:
                opened.callback(self.features.close)
            if self.retrainer is not None:
                opened.callback(self.retrainer.close)
            self.scores_topic_id = topic_id(self.settings, self.scores_topic)
            self.watches.units.update(self.checkpoint.restore(self.follower.specs, self.scores_topic_id))
            self.reported = self._published_before()
            self.published |= {event.event_id for event in self.reported}
            self.producer = make_producer(self.settings)
            self.consumer = self.new_consumer()  # closed by its current value: a rejoin replaces it
            opened.callback(lambda: close_quietly(self.consumer, "the drift monitor's consumer"))
            self.subscribe()
            updates = follow_from_end(self.settings, self.settings.topic("model_updates"))
            if updates is not None:
                opened.callback(close_quietly, updates, "the model-updates reader")
            peers = follow_from_end(self.settings, self.settings.topic("drift"))
            if peers is not None:
                opened.callback(close_quietly, peers, "the drift-events reader")
            opened.callback(self._final_checkpoint)  # runs first, before any client closes
            opened.callback(lambda: None if self.stop else bound.begin())  # a failure's stop is bounded too
            if self.features is not None:
                self.features.start()
            self._watch(max_records, updates, peers)
        return self.stats

    def _watch(self, max_records: int | None, updates: Consumer | None, peers: Consumer | None) -> None:
        self.metrics.ready = True
        watched = sorted(self.follower.specs) or "(waiting for models)"
        log.info("drift monitor watching %s with %s (target: one false alarm per %d scores)",
                 watched, self.kind, self.settings.drift.target_ert)  # fmt: skip
        last_checkpoint = time.monotonic()
        while not self.stop:
            self.rejoin_if_stuck()
            messages = self.consumer.consume(self.settings.batch_size, self.settings.batch_timeout_s)
            for message in messages:
                if check_message(message):
                    self.merger.add(self._pending(message))
            for item in self.merger.release(self.assigned, self._caught_up):
                self._handle(item)
                if max_records is not None and self.stats.records >= max_records:
                    break
            for partition in self.assigned:
                resume_at = self.merger.commit_offset(partition)
                if resume_at is not None:
                    self.checkpoint.next_offsets[partition] = resume_at
            self._flow_control()
            if updates is not None:
                self._follow_model_updates(updates)
            if peers is not None:
                self._follow_peer_events(peers)
            self._poll_retrainer()
            self._poll_features()
            if self._checkpoint_now:
                # A drift event went out, or a peer's was acknowledged, by any path (scores,
                # features, peers): checkpoint at once, so a monitor killed now is not resumed
                # from a state that has not seen it (and reports the change a second time).
                self._checkpoint(set(self.checkpoint.next_offsets))
                last_checkpoint = time.monotonic()
            self.metrics.beat(pending=sum(self.merger.queued(p) for p in self.assigned) + len(messages))
            if time.monotonic() - last_checkpoint >= self.settings.drift.checkpoint_interval_s:
                self._checkpoint(set(self.checkpoint.next_offsets))
                last_checkpoint = time.monotonic()
            if max_records is not None and self.stats.records >= max_records:
                break

    def _abandoned(self) -> str:
        return (f"the watch state since the last checkpoint (its score records are read again from "
                f"the committed offsets; {len(self.stats.events)} drift events published)")  # fmt: skip

    def _pending(self, message: Message) -> Pending:
        try:
            record = _decode_record(message.value() or b"")
        except msgspec.DecodeError as exc:
            self.stats.malformed += 1
            log.warning("skipping malformed score record at %s[%d]@%d: %s",
                        message.topic(), message.partition(), message.offset(), exc)  # fmt: skip
            return Pending(message.partition(), message.offset(), "", None)
        first = record.event_times[0] if record.event_times else None
        if first is None:  # no event time: the time the record was published
            first = datetime.fromtimestamp(message.timestamp()[1] / 1000, UTC).isoformat(
                timespec="milliseconds"
            )
        return Pending(message.partition(), message.offset(), first, record, (record.topic, record.partition))

    def _caught_up(self, partition: int) -> bool:
        """Nothing more to read from ``partition`` now (it is at its high watermark)."""
        tp = TopicPartition(self.scores_topic, partition)
        _, high = self.consumer.get_watermark_offsets(tp, cached=True)
        position = self.consumer.position([tp])[0].offset  # the next offset to fetch
        return high >= 0 and position >= high

    def _flow_control(self) -> None:
        """Stop fetching a partition whose queue is long; its records wait for the others'."""
        full = [TopicPartition(self.scores_topic, p) for p in self.assigned
                if self.merger.queued(p) > MAX_QUEUED and p not in self.paused]  # fmt: skip
        drained = [TopicPartition(self.scores_topic, p) for p in self.paused
                   if self.merger.queued(p) < MAX_QUEUED // 2]  # fmt: skip
        if full:
            self.consumer.pause(full)
            self.paused |= {tp.partition for tp in full}
        if drained:
            self.consumer.resume(drained)
            self.paused -= {tp.partition for tp in drained}

    def _handle(self, item: Pending) -> None:
        self.checkpoint.dirty = True
        self.stats.records += 1
        self.metrics.progress.completed()
        if item.record is None:
            return
        self.input_topics[item.record.stream] = item.record.topic
        watched = self.watches.watch(item.record)
        if watched is None:
            return
        if self.features is not None:
            self._offer_sample(watched.unit, item.record, watched.offsets)
        for event in watched.events:
            self._publish(watched.unit, event)

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

    def _poll_features(self) -> None:
        if self.features is None:
            return
        for stream, runs in list(self.features.tests_run.items()):
            self.metrics.feature_tests.labels(stream).inc(runs - self._tests_counted.get(stream, 0))
            self._tests_counted[stream] = runs
        for detection in self.features.poll():
            unit = self.watches.units.get(detection.stream)
            if unit is None or unit.model != detection.model:
                continue
            if unit.watch.n < unit.watch.quiet_until:
                log.info("feature drift on %s during the cooldown of an earlier event: not reported",
                         detection.stream)  # fmt: skip
                continue
            result = detection.result
            event = WatchEvent(FEATURE_KS, unit.watch.n, -1, result.statistic, result.threshold)
            offsets = detection.partition_offsets
            if detection.event_time is not None and offsets:
                # The window's first sample, placed in every partition like a score detector's change.
                first = next(iter(offsets.items()))
                offsets = self._every_partition(unit, detection.event_time, (int(first[0]), first[1]))
            self._publish_event(
                unit,
                event,
                offsets,
                detection.event_time,
                detail=", ".join(f"{name} (D={d:.2f})" for name, d, _ in result.features[:5]),
            )
            unit.watch.acknowledge()
            self._changed_state()

    # -- models -----------------------------------------------------------------------------------
    def _follow_model_updates(self, reader: Consumer) -> None:
        for message in reader.consume(100, 0):
            if not check_message(message):
                continue
            try:
                update = decode_model_update(message.value() or b"")
            except msgspec.DecodeError as exc:
                log.warning("ignoring malformed model update: %s", exc)
                continue
            try:
                spec = self.follower.updated(update.stream)
            except RegistryError as exc:
                log.error("cannot watch %s after its model update: %s", update.stream, exc)
                continue
            if spec is not None:
                self.watches.switch(spec)

    # -- events ---------------------------------------------------------------------------------
    def _publish(self, unit: Unit, event: WatchEvent) -> None:
        # Records of different partitions interleave in blocks: a position is exact only within its
        # own partition, so every partition's first offset is taken at the change's event time.
        offsets, when = unit.spans.locate(event.change_position, unit.high)
        if when is not None:
            offsets = self._every_partition(unit, when, unit.spans.at(event.change_position))
        self._publish_event(unit, event, offsets, when)

    def _every_partition(self, unit: Unit, when: str, anchor: tuple[int, int] | None) -> dict[str, int]:
        """The first offset of the change (at event time ``when``, seen at ``anchor``: input partition
        and offset) in every partition of the stream's input topic.

        Where the watch saw events from ``when`` on, the spans place it. A monitor catching up on a
        backlog may detect the change before it watched any such event of other partitions (a worker
        that caught up itself published one partition's scores before the next's): those are placed
        by Kafka's timestamps, at the first offset produced no earlier than the anchor event.
        """
        placed = unit.spans.placed(when)
        topic = self._input_topic(unit.stream)
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

    def _input_topic(self, stream: str) -> str:
        return self.input_topics.get(stream) or self.settings.topic(stream)

    def _publish_event(self, unit: Unit, event: WatchEvent, offsets: dict[str, int], when: str | None,
                       detail: str = "") -> None:  # fmt: skip
        detected, detected_time = unit.spans.locate(event.position, unit.high)
        if detected_time is not None:
            detected = unit.spans.locate_time(detected_time, unit.high)
        drift = build_drift_event(unit.stream, unit.model, self.instance, event,
                                  self._input_topic(unit.stream), offsets, when, detected)  # fmt: skip
        self._changed_state()
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
        produce(self.producer, self.settings.topic("drift"), encode(drift), unit.stream.encode())
        self.producer.poll(0)
        self.published.add(drift.event_id)
        self.stats.events.append(drift)
        self.stats.detected_at_offsets.append(detected)
        self.metrics.drift_events.labels(unit.stream, event.detector).inc()
        log.warning(
            "drift on %s (%s, %s): statistic %.4g > %.4g, change from offsets %s (%s), action %s%s",
            unit.stream, unit.model, event.detector, event.statistic, event.threshold,
            offsets, when, drift.action, f"; features {detail}" if detail else "",
        )  # fmt: skip

    def _changed_state(self) -> None:
        """The watch state changed outside the record path (an event, an acknowledgement): save it at
        the end of this loop turn, not checkpoint_interval_s later."""
        self.checkpoint.dirty = True
        self._checkpoint_now = True

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
            for message in iter_topic(self.settings, self.settings.topic("drift"), timeout=30):
                try:
                    event = decode_drift_event(message.value() or b"")
                except msgspec.DecodeError:
                    continue
                events.append(event)
        except TopicMissingError:
            pass  # nothing was ever published
        return events

    def _follow_peer_events(self, reader: Consumer) -> None:
        for message in reader.consume(100, 0):
            if not check_message(message):
                continue
            try:
                event = decode_drift_event(message.value() or b"")
            except msgspec.DecodeError:
                continue
            if event.event_id in self.published or event.stream not in self.follower.specs:
                continue
            unit = self.watches.units.get(event.stream)
            if unit is not None and unit.model.version == event.model_version:
                log.info("drift on %s reported by another monitor (%s): ours starts afresh, quiet",
                         event.stream, event.event_id)  # fmt: skip
                unit.watch.acknowledge()
                self._changed_state()

    def _poll_retrainer(self) -> None:
        if self.retrainer is None:
            return
        for result in self.retrainer.poll():
            self.metrics.retrains.labels(result.outcome).inc()
            level = logging.WARNING if result.outcome in ("failed", "rejected") else logging.INFO
            log.log(level, "retrain of %s after drift %s: %s (candidate v%s) %s shadow=%s", result.stream,
                    result.event_id, result.outcome, result.candidate_version, result.detail,
                    result.shadow)  # fmt: skip

    # -- checkpoints and group membership --------------------------------------------------------
    def subscribe(self) -> None:
        self.consumer.subscribe([self.scores_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)  # fmt: skip

    def _checkpoint(self, commit: set[int], in_callback: bool = False) -> None:
        """Deliver events, save the whole state, then commit the offsets of ``commit`` it covers."""
        if not self.checkpoint.needed(commit):
            return
        flush_or_raise(self.producer)
        self.checkpoint.save(self.watches.units.values(), self.scores_topic_id)
        self._checkpoint_now = False
        self.stats.checkpoints += 1
        covered = self.checkpoint.covered(commit)
        offsets = [TopicPartition(self.scores_topic, p, offset) for p, offset in covered.items()]
        if not offsets:
            return
        try:
            if in_callback:  # inside consume(): on this thread (see _on_assign)
                self.consumer.commit(offsets=offsets, asynchronous=False)
            else:
                guarded("commit", UNTIMED_CALL_S, self.consumer.commit, offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The checkpoint is the truth: on restart this monitor resumes from it.
            log.warning("offset commit failed (%s): the checkpoint covers it", exc)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Resume where the checkpoint stopped (the commit after it may be lost), unless another
        # monitor has since moved the partition further (what it watched is not ours to watch).
        # Called inside consume(): on this thread, not the watchdog's (a consumer call from another
        # thread while this one is inside consume() deadlocks); its own timeout bounds it.
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
        for tp in partitions:
            tp.offset = self.checkpoint.resume_at(tp.partition, tp.offset, committed.get(tp.partition, -1))
        self.assigned |= {tp.partition for tp in partitions}
        self.mark_assigned()
        log.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in partitions))
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Called inside consume(): every record read so far is fully handled, so the state is whole.
        mine = {tp.partition for tp in partitions}
        self._checkpoint(mine, in_callback=True)
        self._drop(mine)
        log.info("revoked %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drop({tp.partition for tp in partitions})
        self.mark_lost()  # see Rejoins.rejoin_if_stuck

    def _drop(self, partitions: set[int]) -> None:
        # Queued records of these partitions were not watched: their next owner reads them.
        self.merger.drop(partitions)
        self.paused -= partitions
        self.assigned -= partitions
        self.checkpoint.drop(partitions)

    def _final_checkpoint(self) -> None:
        log.info("stopping: %d score records, %d scores watched, %d drift events",
                 self.stats.records, self.stats.scores, len(self.stats.events))  # fmt: skip
        self._checkpoint(set(self.checkpoint.next_offsets))


def _make_retrainer(settings: Settings) -> Retrainer:
    retrainer = Retrainer(settings)
    retrainer.warm_up()  # a drift event's retrain should not wait for the process to import TensorFlow
    return retrainer


def serve(
    settings: Settings,
    streams: Sequence[str] | None = None,
    detector: str | None = None,
    retrain: bool = False,
    metrics_port: int | None = None,
    instance_id: str | None = None,
) -> int:
    """``anomstream drift``: run a monitor in this process until SIGTERM/SIGINT."""
    DriftMonitor(settings, streams, detector, retrain, metrics_port, instance_id=instance_id).run()
    return 0
