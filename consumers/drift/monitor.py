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
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from consumers.drift.calibration_cache import Calibrations
from consumers.drift.checkpoint import MonitorCheckpoint
from consumers.drift.feature_sampler import FeatureSampler
from consumers.drift.following import ModelFollower
from consumers.drift.merge import Pending, RecordMerger
from consumers.drift.monitor_metrics import DriftMetrics
from consumers.drift.publishing import DriftEventPublisher
from consumers.drift.retrain import Retrainer
from consumers.drift.state import CheckpointStore
from consumers.drift.step import Detection, DriftStep
from consumers.drift.watches import MonitorStats, StreamWatches
from consumers.membership import Rejoins
from models.drift import DETECTORS
from models.registry import RegistryError
from stream.errors import ConfigurationError
from stream.kafka import check_message, follow_from_end, topic_id
from stream.kafka.watchdog import UNTIMED_CALL_S, close_quietly, guarded
from stream.messages import DriftEvent, ScoreRecord, decode_drift_event, decode_model_update
from stream.settings import STREAMS, Settings
from stream.signals import ShutdownBound, StopFlag
from stream.state_store import state_store

log = logging.getLogger(__name__)

_decode_record = msgspec.json.Decoder(ScoreRecord).decode
MAX_QUEUED = 500  # score records queued per partition before its fetching pauses


class DriftMonitor(Rejoins):
    """A member of the drift monitors' group on ``scores``: a thin loop around Kafka-free parts.

    It consumes score records and merges them in event-time order (:mod:`consumers.drift.merge`),
    hands each to its :class:`~consumers.drift.step.DriftStep` (the stream watches, one drift watch per
    stream following the production model, with no Kafka client), has a
    :class:`~consumers.drift.publishing.DriftEventPublisher` publish each change the step returns on
    ``drift-events`` (and, with ``retrain``, submit a retrain) before the next record is watched, and
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
        self.step = DriftStep(settings, self.watches, self.stats, self.metrics, self.features)
        self.publisher = DriftEventPublisher(
            settings, self.instance, self.metrics, self.stats, self.retrainer
        )
        self.paused: set[int] = set()
        self.assigned: set[int] = set()
        self._checkpoint_now = False  # set by _changed_state, cleared by a checkpoint
        for stream, spec in self.follower.specs.items():
            self.metrics.model_version.labels(stream).set(spec.model.version)
            # A zero series from the start: "no drift yet" is 0 on a panel, not "no data".
            self.metrics.drift_events.labels(stream, self.kind)
        self.scores_topic_id: str | None = None

    # What the parts keep, under the names the monitor's users (tests, the demo) read.
    @property
    def input_topics(self) -> dict[str, str]:
        return self.step.input_topics

    @property
    def published(self) -> set[str]:
        return self.publisher.published

    @property
    def reported(self) -> list[DriftEvent]:
        return self.publisher.reported

    @property
    def producer(self) -> Producer:
        return self.publisher.producer

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
            self.publisher.start()
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
                self.checkpoint.dirty = True
                for detection in self.step.handle(item):
                    self._publish(detection)
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
            for detection in self.step.feature_detections():
                self._publish(detection)
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
    def _publish(self, detection: Detection) -> None:
        self._changed_state()  # published or found on drift-events already: the state has seen it
        self.publisher.publish(detection)

    def _changed_state(self) -> None:
        """The watch state changed outside the record path (an event, an acknowledgement): save it at
        the end of this loop turn, not checkpoint_interval_s later."""
        self.checkpoint.dirty = True
        self._checkpoint_now = True

    def _follow_peer_events(self, reader: Consumer) -> None:
        for message in reader.consume(100, 0):
            if not check_message(message):
                continue
            try:
                event = decode_drift_event(message.value() or b"")
            except msgspec.DecodeError:
                continue
            if not self.publisher.ours(event) and self.step.acknowledge(event):
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
        self.publisher.flush()
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
