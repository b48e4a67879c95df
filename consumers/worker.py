"""The scoring worker: a consumer-group member that scores every input stream in batches.

Per batch::

    consume(batch_size, timeout) -> group by topic -> decode + validate (bad ones -> dead-letter)
        -> ONE model call per stream -> alerts above threshold + one score record per partition
        -> outputs delivered -> offsets committed          (at-least-once, the default)
        -> or all of it in one Kafka transaction            (--eos, exactly-once)
        -> learning thresholds learn the committed scores (a retried batch is never learnt twice)

SIGTERM/SIGINT finish the batch in hand, commit it and leave the group. A promotion on the
``model-updates`` topic swaps the stream's model between batches.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from consumers.decoding import DECODERS
from consumers.metrics import WorkerMetrics, worker_readiness
from consumers.outputs import BatchMeta, build_alerts, build_score_records, dead_letter_headers
from models.registry import Registry, RegistryError
from models.scoring import ScoringModel
from stream.kafka import (
    DeliveryTracker,
    check_message,
    flush_or_raise,
    follow_from_end,
    make_consumer,
    make_producer,
    produce,
)
from stream.messages import decode_model_update
from stream.settings import STREAMS, Settings
from stream.signals import StopFlag

log = logging.getLogger(__name__)

MAX_DELIVERY_RETRIES = 5


class DeliveryFailedError(RuntimeError):
    """Outputs of a batch were not acknowledged; its offsets were not committed."""


@dataclass
class WorkerStats:
    events: int = 0
    alerts: int = 0
    dead_letters: int = 0
    batches: int = 0
    retried_batches: int = 0
    by_stream: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    started: float = field(default_factory=time.monotonic)
    busy_from: float | None = None  # when the first batch with data arrived
    busy_until: float | None = None  # when the last batch was committed

    @property
    def rate(self) -> float:
        """Events per second between the first batch received and the last batch committed."""
        if self.busy_from is None or self.busy_until is None:
            return 0.0
        return self.events / max(self.busy_until - self.busy_from, 1e-9)


class ScoringWorker:
    def __init__(
        self,
        settings: Settings,
        streams: Sequence[str] = STREAMS,
        eos: bool = False,
        worker_id: str | None = None,
        stop: StopFlag | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.eos = eos
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.stop = stop if stop is not None else StopFlag()
        self.registry = Registry(settings.registry_dir)
        self.models = self._load_models(streams)
        self.routes = {settings.topic(stream): stream for stream in self.models}
        self.stats = WorkerStats()
        self.tracker = DeliveryTracker()
        self.metrics = WorkerMetrics(metrics_port, readiness=lambda: worker_readiness(self))
        # Crash injection for recovery tests: SIGKILL ourselves with batch N published and not committed.
        self._crash_before_commit = int(os.environ.get("ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT") or 0)
        for stream, model in self.models.items():
            self.metrics.model_version.labels(stream, model.detector_name).set(model.version)

    def _load_models(self, streams: Sequence[str]) -> dict[str, ScoringModel]:
        models = {}
        for stream in streams:
            if self.registry.production(stream) is None:
                log.warning("no production model for stream %r: its topic is not consumed", stream)
                continue
            models[stream] = self.registry.load(stream)
            log.info("stream %s -> %s v%d", stream, models[stream].detector_name, models[stream].version)
        if not models:
            raise RegistryError(
                f"no production model in {self.settings.registry_dir} for any of {list(streams)}: "
                "run `anomstream train --stream kdd` first"
            )
        return models

    # -- the loop -------------------------------------------------------------------------------
    def run(self, max_events: int | None = None) -> WorkerStats:
        """Consume until stopped (or until ``max_events`` were handled); returns the counters."""
        transactional_id = f"{self.settings.group_id}-{self.worker_id}" if self.eos else None
        self.producer = make_producer(self.settings, transactional_id=transactional_id)
        if self.eos:
            self.producer.init_transactions(30)
        # A crashed replica's partitions move after the session timeout: 10 s instead of librdkafka's
        # 45 s default, so a restart or a surviving replica resumes quickly (heartbeats every 2 s).
        self.consumer = make_consumer(
            self.settings,
            self.settings.group_id,
            **{"session.timeout.ms": 10_000, "heartbeat.interval.ms": 2000},
        )
        self.consumer.subscribe(list(self.routes), on_assign=self._on_assign, on_revoke=self._on_revoke)
        updates = self._model_update_reader()
        # Models, TensorFlow and clients are loaded: move them out of the garbage collector's view.
        # Every batch allocates ~10 containers per event, and each collection would otherwise scan
        # TensorFlow's object graph (measured: 18k -> 30k events/s on KDD).
        gc.freeze()
        log.info(
            "worker %s consuming %s (%s)",
            self.worker_id,
            sorted(self.routes),
            "exactly-once" if self.eos else "at-least-once",
        )
        last_report = time.monotonic()
        try:
            while not self.stop:
                messages = self.consumer.consume(self.settings.batch_size, self.settings.batch_timeout_s)
                data = [m for m in messages if check_message(m)]
                if data:
                    arrived = time.monotonic()
                    if self.stats.busy_from is None:
                        self.stats.busy_from = arrived
                    self._handle_batch(data)
                    self.stats.busy_until = time.monotonic()
                    self.metrics.batch_seconds.observe(self.stats.busy_until - arrived)
                self.metrics.update_lag(self.consumer)
                if updates is not None:
                    self._apply_model_updates(updates)
                if time.monotonic() - last_report > 10:
                    last_report = time.monotonic()
                    log.info(
                        "scored %d events (%.0f/s), %d alerts, %d dead letters",
                        self.stats.events,
                        self.stats.rate,
                        self.stats.alerts,
                        self.stats.dead_letters,
                    )
                if max_events is not None and self.stats.events + self.stats.dead_letters >= max_events:
                    break
        finally:
            self._shutdown(updates)
        return self.stats

    def _handle_batch(self, data: list[Message]) -> None:
        for attempt in range(MAX_DELIVERY_RETRIES + 1):
            try:
                self._score_and_publish(data)
                return
            except (DeliveryFailedError, KafkaException) as exc:
                if isinstance(exc, KafkaException) and exc.args[0].fatal():
                    raise
                if attempt == MAX_DELIVERY_RETRIES:
                    raise
                self.stats.retried_batches += 1
                self.metrics.retries.inc()
                log.warning(
                    "batch of %d failed (%s): rewinding to retry (%d/%d)",
                    len(data),
                    exc,
                    attempt + 1,
                    MAX_DELIVERY_RETRIES,
                )
                if self.eos:
                    self.producer.abort_transaction(30)
                self._rewind(data)
                time.sleep(min(2**attempt * 0.2, 5))
                data = self._refill(data)
                if not data:
                    return

    def _score_and_publish(self, data: list[Message]) -> None:
        if self.eos:
            self.producer.begin_transaction()
        self.tracker.reset()
        counts = self._publish_outputs(data)
        offsets = self._next_offsets(data)
        if self.eos:
            self.producer.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(), 30)
            self._maybe_crash()
            self.producer.commit_transaction(60)
        else:
            flush_or_raise(self.producer)
            if self.tracker.failed:
                raise DeliveryFailedError(f"{self.tracker.failed} outputs failed: {self.tracker.first_error}")
            self._maybe_crash()
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                # A rebalance took the partitions away: the next owner re-scores them and
                # re-publishes the same alert ids. At-least-once, as documented.
                log.warning("offset commit failed (%s): another replica will redeliver", exc)
        # Counted and learnt only once the batch is committed, so a retried batch is neither counted
        # nor learnt twice.
        for stream, scores in counts.pop("learn").items():
            self.models[stream].learn(scores)
        self.stats.batches += 1
        self.metrics.batches.inc()
        self.metrics.dead_letters.inc(counts["dead_letters"])
        for stream, (n_events, n_alerts) in counts.pop("by_stream").items():
            self.stats.by_stream[stream] += n_events
            self.metrics.events.labels(stream).inc(n_events)
            self.metrics.alerts.labels(stream).inc(n_alerts)
        for key, value in counts.items():
            setattr(self.stats, key, getattr(self.stats, key) + value)

    def _publish_outputs(self, data: list[Message]) -> dict:
        by_stream: dict[str, list[Message]] = defaultdict(list)
        for message in data:
            by_stream[self.routes[message.topic()]].append(message)
        alerts_topic, scores_topic = self.settings.topic("alerts"), self.settings.topic("scores")
        dlq_topic = self.settings.topic("dead_letter")
        counts: dict = {"events": 0, "alerts": 0, "dead_letters": 0, "by_stream": {}, "learn": {}}
        detected_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        for stream, messages in by_stream.items():
            model = self.models[stream]
            width = getattr(model.encoder, "length", None)
            batch = DECODERS[stream](messages, width)
            for rejected in batch.rejected:
                produce(
                    self.producer,
                    dlq_topic,
                    rejected.message.value(),
                    rejected.message.key(),
                    dead_letter_headers(rejected, self.worker_id),
                    self.tracker,
                )
            counts["dead_letters"] += len(batch.rejected)
            if not batch.messages:
                continue
            scored = model.score(batch.raw)
            meta = BatchMeta.of(batch.messages, batch.event_times)
            for key, value in build_alerts(model, meta, scored, detected_at):
                produce(self.producer, alerts_topic, value, key, on_delivery=self.tracker)
            for key, value in build_score_records(model, meta, scored):
                produce(self.producer, scores_topic, value, key, on_delivery=self.tracker)
            self.producer.poll(0)
            counts["events"] += len(batch.messages)
            counts["alerts"] += len(scored.alert_rows)
            counts["by_stream"][stream] = (len(batch.messages), len(scored.alert_rows))
            if model.learns:
                counts["learn"][stream] = scored.scores
        return counts

    def _maybe_crash(self) -> None:
        if self._crash_before_commit and self.stats.batches + 1 >= self._crash_before_commit:
            log.warning("ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT: killing this worker before its commit")
            self.producer.flush(30)  # the batch's outputs are written (under --eos: not committed)
            os.kill(os.getpid(), signal.SIGKILL)

    @staticmethod
    def _next_offsets(data: list[Message]) -> list[TopicPartition]:
        highest: dict[tuple[str, int], int] = {}
        for m in data:
            key = (m.topic(), m.partition())
            highest[key] = max(highest.get(key, -1), m.offset())
        return [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]

    def _rewind(self, data: list[Message]) -> None:
        lowest: dict[tuple[str, int], int] = {}
        for m in data:
            key = (m.topic(), m.partition())
            lowest[key] = min(lowest.get(key, m.offset()), m.offset())
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        for (topic, partition), offset in lowest.items():
            if (topic, partition) in assigned:
                self.consumer.seek(TopicPartition(topic, partition, offset))

    def _refill(self, data: list[Message]) -> list[Message]:
        """Re-read the rewound batch (the same messages, minus partitions lost to a rebalance)."""
        wanted = len(data)
        refilled: list[Message] = []
        deadline = time.monotonic() + 10
        while len(refilled) < wanted and time.monotonic() < deadline and not self.stop:
            refilled += [m for m in self.consumer.consume(wanted - len(refilled), 0.5) if check_message(m)]
        return refilled

    # -- group membership and shutdown -----------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Batches are committed before the next consume(), so nothing is in flight here.
        log.info("revoked %s", sorted(f"{p.topic}[{p.partition}]" for p in partitions))

    def _shutdown(self, updates: Consumer | None) -> None:
        log.info(
            "stopping: %d events scored, %d alerts, %d dead letters",
            self.stats.events,
            self.stats.alerts,
            self.stats.dead_letters,
        )
        try:
            self.producer.flush(30)
            self.metrics.update_lag(self.consumer, force=True)
        finally:
            self.consumer.close()  # leaves the group at once, so partitions move without a timeout
            if updates is not None:
                updates.close()

    # -- hot reload -----------------------------------------------------------------------------
    def _model_update_reader(self) -> Consumer | None:
        """Every replica must see every promotion, so this reader has no group: it reads from the end."""
        topic = self.settings.topic("model_updates")
        reader = follow_from_end(self.settings, topic)
        if reader is None:
            log.warning("topic %s missing: promotions will not be hot-reloaded", topic)
        return reader

    def _apply_model_updates(self, reader: Consumer) -> None:
        for message in reader.consume(100, 0):
            if not check_message(message):
                continue
            try:
                update = decode_model_update(message.value() or b"")
            except msgspec.DecodeError as exc:
                log.warning("ignoring malformed model update: %s", exc)
                continue
            if update.stream not in self.models:
                continue
            try:
                model = self.registry.load(update.stream, update.detector, update.version)
            except RegistryError as exc:
                log.error("cannot hot-reload %s v%d: %s", update.detector, update.version, exc)
                continue
            self.models[update.stream] = model
            self.metrics.model_version.labels(update.stream, model.detector_name).set(model.version)
            log.info("hot-reloaded stream %s -> %s v%d", update.stream, update.detector, update.version)


def serve(
    settings: Settings,
    streams: Sequence[str] = STREAMS,
    replicas: int = 1,
    eos: bool = False,
    worker_id: str | None = None,
    metrics_port: int | None = None,
) -> int:
    """``anomstream worker``: one worker in this process, or ``replicas`` supervised processes."""
    if replicas > 1:
        from consumers.supervisor import ReplicaSupervisor

        args = ["--streams", ",".join(streams)] + (["--eos"] if eos else [])
        return ReplicaSupervisor(replicas, args, metrics_port=metrics_port).run()
    ScoringWorker(settings, streams, eos=eos, worker_id=worker_id, metrics_port=metrics_port).run()
    return 0
