"""The scoring worker: a consumer-group member that scores every input stream in batches.

Two stages in two threads, so the next batch is scored while the previous one is delivered::

    worker thread      dynamic batch (full, or oldest message waited max_queue_delay_ms)
                       -> group by topic -> decode + validate (bad ones -> dead-letter)
                       -> ONE model call per stream -> alerts + one score record per partition
                       -> submit to the publisher (at most one batch waits there)
    publisher thread   produce -> all acknowledged -> commit offsets   (at-least-once, the default)
                       or one Kafka transaction per batch              (--eos, exactly-once)
    worker thread      committed batches: count them, and let learning thresholds learn their
                       scores (in order, once: a retried batch is never learnt twice)

Rebalances and SIGTERM/SIGINT drain in-flight batches (published and committed) before partitions
are given up or the worker leaves the group. A promotion on ``model-updates`` reloads the stream's
production model from the registry in the background and swaps it in between batches
(:mod:`consumers.reloading`); a stream that gets its first model that way is subscribed live.

Besides the built-in streams, a worker scores any stream described by a dataset schema
(``anomstream worker --schema S [--topic T]``): its messages decode through the schema stored with
its production model (:func:`consumers.decoding.decoder_for`), from ``T``, or from the topic the
schema names, which a user's own producers may fill.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from confluent_kafka import Message, TopicPartition

from consumers.decoding import BatchDecoder, decoder_for, stream_topic
from consumers.faults import NO_FAULTS, Faults, from_env
from consumers.membership import GroupMember
from consumers.outputs import BatchMeta, build_alerts, build_score_records, dead_letter, group_fields
from consumers.publisher import (
    MAX_DELIVERY_RETRIES,
    DeliveryFailedError,
    Output,
    ScoredBatch,
)
from consumers.reloading import ModelWatcher
from consumers.worker_metrics import WorkerMetrics, worker_readiness
from models.checkpoints import OnlineStateStore, learning_copy
from models.registry import RegistryError, open_registry
from models.scoring import ScoringModel
from stream.datasets.schema import DatasetSchema, load_schema
from stream.errors import ConfigurationError
from stream.kafka import create_topics, wait_for_broker
from stream.kafka.watchdog import Watchdog, watchdog
from stream.settings import STREAMS, Settings
from stream.signals import ShutdownBound, StopFlag
from stream.state_store import state_store

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_S = 1.0  # at most this much learning is lost to a crash (never learnt twice)

__all__ = ["MAX_DELIVERY_RETRIES", "DeliveryFailedError", "ScoringWorker", "WorkerStats", "serve"]


@dataclass
class WorkerStats:
    events: int = 0
    alerts: int = 0
    dead_letters: int = 0
    batches: int = 0
    retried_batches: int = 0
    undeliverable: int = 0
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


class ScoringWorker(GroupMember):
    """A member of the scoring consumer group: scores every input stream it is assigned, in batches.

    It consumes, decodes and scores a batch (one model call per stream) and hands the outputs to its
    :class:`~consumers.publisher.Publisher`, which delivers them while the next batch is scored; the
    offsets of a batch are committed only once its outputs are (under ``eos``, in the batch's
    transaction). It hot-reloads a stream's production model between batches, checkpoints what
    models learn from committed batches, drains in-flight batches before partitions go or it stops.
    ``faults`` injects a crash for the recovery tests (:mod:`consumers.faults`). ``topics`` maps a
    stream to the topic it is read from when that is not its usual one (a dataset schema's stream
    read from a topic a user's producers fill).
    """

    def __init__(
        self,
        settings: Settings,
        streams: Sequence[str] = STREAMS,
        eos: bool = False,
        worker_id: str | None = None,
        stop: StopFlag | None = None,
        metrics_port: int | None = None,
        guard: Watchdog | None = None,
        faults: Faults = NO_FAULTS,
        topics: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.streams = tuple(dict.fromkeys(streams))
        self.eos = eos
        self.guard = guard if guard is not None else watchdog()  # tests inject one to force overruns
        self.faults = faults  # recovery tests inject a crash before a commit (consumers.faults)
        self.worker_id = self.member_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.stop = stop if stop is not None else StopFlag()
        self.registry = open_registry(settings)
        # What a model learns while scoring is state per input partition (models.checkpoints): one
        # learning copy per partition held, checkpointed so whoever holds the partition next resumes it.
        self.online = OnlineStateStore(state_store(settings))
        self.learners: dict[tuple[str, int], ScoringModel] = {}
        self._learnt: dict[tuple[str, int], int] = {}  # committed events learnt, per input partition
        self._checkpointed = time.monotonic()
        self.topics = dict(topics or {})
        self.models = self._load_models(self.streams)
        self.decoders: dict[str, BatchDecoder] = {
            s: decoder_for(s, m.encoder) for s, m in self.models.items()
        }
        self.routes: dict[str, str] = {}
        for stream in self.models:
            self._route(stream)
        self.stats = WorkerStats()
        self.metrics = WorkerMetrics(
            metrics_port,
            readiness=lambda: worker_readiness(self),
            stall_after_s=settings.resilience.stall_after_s,
        )
        self._submitted_events = 0
        self._batch_number = 0
        self.group_id = settings.group_id
        self.init_member()
        for stream, model in self.models.items():
            self.metrics.model_version.labels(stream, model.detector_name).set(model.version)

    def _load_models(self, streams: Sequence[str]) -> dict[str, ScoringModel]:
        models = {}
        for stream in streams:
            if self.registry.production(stream) is None:
                how = f"--stream {stream}" if stream in STREAMS else "--schema S"
                log.warning(
                    "no production model for stream %r: its topic is consumed once one is promoted "
                    "(`anomstream train %s`)",
                    stream,
                    how,
                )
                continue
            # A worker only scores: dense nets run in NumPy, without importing Keras (models.detectors.light).
            models[stream] = self.registry.load(stream, inference_only=True)
            log.info("stream %s -> %s v%d", stream, models[stream].detector_name, models[stream].version)
        if not models:
            how = "--stream kdd" if set(streams) & set(STREAMS) else "--schema S"
            raise RegistryError(
                f"no production model in {self.settings.registry} for any of {list(streams)}: "
                f"run `anomstream train {how}` first"
            )
        return models

    def _route(self, stream: str) -> None:
        """Consume ``stream``'s input topic (its own when none was given: the built-in stream's, or the
        one its model's dataset schema names); one topic feeds one stream."""
        if stream not in self.topics:
            self.topics[stream] = stream_topic(self.settings, stream, self.models[stream].encoder)
        topic = self.topics[stream]
        if self.routes.get(topic, stream) != stream:
            raise ConfigurationError(
                f"streams {self.routes[topic]!r} and {stream!r} would both read topic {topic!r}: give "
                "each its own (--topic)"
            )
        self.routes[topic] = stream

    # -- the loop -------------------------------------------------------------------------------
    def run(self, max_events: int | None = None) -> WorkerStats:
        """Consume until stopped (or until ``max_events`` were handled); returns the counters."""
        # One clear error when the cluster cannot be reached or authenticated to, before any client
        # starts retrying on its own (a wrong SASL setting once surfaced as "topic missing").
        wait_for_broker(self.settings, timeout=30)
        bound = ShutdownBound(self.settings.resilience.shutdown_grace_s, f"worker {self.worker_id}",
                              self.abandoned).arm(self.stop)  # fmt: skip
        with ExitStack() as opened:  # everything opened below is closed on the way out, last first
            opened.callback(bound.finished)
            self.open_member(opened, self.settings.batch_size, self.settings.max_queue_delay_ms,
                             on_undeliverable=self._undeliverable)  # fmt: skip
            self._serve(opened, bound, max_events)
        return self.stats

    def _undeliverable(self, topic: str, reason: str) -> None:
        self.metrics.undeliverable.labels(topic, reason).inc()

    def _serve(self, opened: ExitStack, bound: ShutdownBound, max_events: int | None) -> None:
        max_batch = self.settings.batch_size
        for model in self.models.values():
            model.warm_up(max_batch)  # compile before the first event, not on it
        serving = {s: m.model_id for s, m in self.models.items()}
        self.watcher = ModelWatcher(self.settings, self.registry, serving, self.streams, max_batch).start()
        opened.callback(self.watcher.close)
        self.bound_on_failure(opened, bound)
        self.subscribe()
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
        while not self.stop:
            self._swap_models()
            self.commit_published()
            self.rejoin_if_stuck()
            if max_events is not None and self._submitted_events >= max_events:
                self.publisher.drain()
                self.commit_published(sync=True)
                break
            messages = self.batcher.next_batch()
            if messages:
                self._submit(messages)
            self.publisher.serve()
            self.faults.scored(self._batch_number, partial(self.publisher.producer.flush, 30))
            self.publisher.raise_if_failed()
            self.metrics.update_lag(self.consumer, in_flight=self.publisher.in_flight)
            if time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                log.info(
                    "scored %d events (%.0f/s), %d alerts, %d dead letters",
                    self.stats.events,
                    self.stats.rate,
                    self.stats.alerts,
                    self.stats.dead_letters,
                )
        self.clean = True

    def subscribed_topics(self) -> list[str]:
        return list(self.routes)

    def committed_batches(self) -> int:
        return self.stats.batches

    def _submit(self, messages: list[Message]) -> None:
        arrived = time.monotonic()
        if self.stats.busy_from is None:
            self.stats.busy_from = arrived
        self._batch_number += 1
        batch = self._score(messages, self._batch_number)
        batch.arrived = arrived
        if self.eos:  # taken here: the publisher thread never calls the consumer
            batch.group_metadata = self.consumer.consumer_group_metadata()
        batch.tokens = {key: self.publisher.generation.get(key, 0) for key in batch.per_partition}
        self.metrics.batch_events.observe(len(messages))
        log.debug("batch %d: %d messages scored in %.1f ms", batch.number, len(messages),
                  (time.monotonic() - arrived) * 1000)  # fmt: skip
        if not self.publisher.submit(batch):
            log.info("batch %d not handed over: stopping (its offsets stay uncommitted)", batch.number)
            return
        self._submitted_events += batch.events + batch.dead_letters
        self.metrics.in_flight.set(self.publisher.in_flight)

    def _score(self, data: list[Message], number: int) -> ScoredBatch:
        """Decode, score and serialise one batch (nothing is published here)."""
        by_stream: dict[str, list[Message]] = defaultdict(list)
        for message in data:
            by_stream[self.routes[message.topic()]].append(message)
        batch = ScoredBatch(number, [], _next_offsets(data))
        for message in data:
            source = (message.topic(), message.partition())
            batch.per_partition[source] = (batch.per_partition.get(source, (0, 0))[0] + 1, 0)
        detected_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        for stream, messages in by_stream.items():
            model = self.models[stream]
            if not model.learns:
                self._score_part(batch, stream, model, messages, detected_at)
                continue
            # A learning model scores each input partition with that partition's own copy.
            parts: dict[tuple[str, int], list[Message]] = defaultdict(list)
            for message in messages:
                parts[(message.topic(), message.partition())].append(message)
            for source, part in parts.items():
                self._score_part(batch, stream, self._learner(model, source), part, detected_at, source)
        return batch

    def _score_part(self, batch: ScoredBatch, stream: str, model: ScoringModel, messages: list[Message],
                    detected_at: str, source: tuple[str, int] | None = None) -> None:  # fmt: skip
        """Decode, score and serialise one stream's messages of a batch into it."""
        alerts_topic, scores_topic = self.settings.topic("alerts"), self.settings.topic("scores")
        dlq_topic = self.settings.topic("dead_letter")
        outputs: list[Output] = batch.outputs
        decoded = self.decoders[stream](messages)
        for rejected in decoded.rejected:
            key, value, headers = dead_letter(rejected, self.worker_id)
            outputs.append(Output(dlq_topic, value, key, headers, rejected.message))
            where = (rejected.message.topic(), rejected.message.partition())
            events, dead = batch.per_partition[where]
            batch.per_partition[where] = (events - 1, dead + 1)
        batch.dead_letters += len(decoded.rejected)
        if not decoded.messages:
            return
        scored = model.score(decoded.raw)
        valid = decoded.messages
        meta = BatchMeta.of(valid, decoded.event_times, decoded.labels, decoded.keys)
        rows = scored.alert_rows.tolist()
        fields = group_fields(model, decoded.raw, rows)  # None unless its schema groups by fields
        alerts = build_alerts(model, meta, scored, detected_at, fields)
        for row, (key, value) in zip(rows, alerts, strict=True):
            outputs.append(Output(alerts_topic, value, key, None, valid[row]))
        first_of: dict[bytes, Message] = {}
        for message in valid:
            first_of.setdefault(f"{message.topic()}:{message.partition()}".encode(), message)
        for key, value in build_score_records(model, meta, scored):
            outputs.append(Output(scores_topic, value, key, None, first_of[key]))
        batch.events += len(valid)
        batch.alerts += len(rows)
        seen_events, seen_alerts = batch.by_stream.get(stream, (0, 0))
        batch.by_stream[stream] = (seen_events + len(valid), seen_alerts + len(rows))
        if source is not None:
            batch.learn.append((model, scored, source))

    def account(self, batch: ScoredBatch) -> None:
        self.metrics.in_flight.set(self.publisher.in_flight)
        for model, scored, source in batch.learn:
            model.learn(scored)
            self._learnt[source] = self._learnt.get(source, 0) + len(scored.scores)
        if batch.learn and time.monotonic() - self._checkpointed > CHECKPOINT_INTERVAL_S:
            self._checkpoint()
        now = time.monotonic()
        stats = self.stats
        stats.busy_until = now
        stats.batches += 1
        stats.events += batch.events
        stats.alerts += batch.alerts
        stats.dead_letters += batch.dead_letters
        stats.undeliverable += batch.undeliverable
        if self.publisher.retried_batches > stats.retried_batches:
            self.metrics.retries.inc(self.publisher.retried_batches - stats.retried_batches)
            stats.retried_batches = self.publisher.retried_batches
        self.metrics.batches.inc()
        self.metrics.progress.completed()
        self.metrics.batch_seconds.observe(now - batch.arrived)
        self.metrics.dead_letters.inc(batch.dead_letters)
        for stream, (n_events, n_alerts) in batch.by_stream.items():
            stats.by_stream[stream] += n_events
            self.metrics.events.labels(stream).inc(n_events)
            self.metrics.alerts.labels(stream).inc(n_alerts)

    # -- online state (per input partition) --------------------------------------------------------
    def _learner(self, model: ScoringModel, source: tuple[str, int]) -> ScoringModel:
        """This partition's learning copy of the stream's model, resumed from its checkpoint (whoever
        learnt it) the first time the partition is scored after being assigned."""
        learner = self.learners.get(source)
        if learner is not None and learner.model_id == model.model_id:
            return learner
        learner = learning_copy(model)
        resumed = self.online.restore(learner, *source)
        self._learnt[source] = resumed or 0
        if resumed is not None:
            log.info("%s %s v%d resumes the online state of %s[%d] (%d committed events learnt)",
                     model.stream, model.detector_name, model.version, *source, resumed)  # fmt: skip
        self.learners[source] = learner
        return learner

    def _checkpoint(self, sources: Iterable[tuple[str, int]] | None = None) -> None:
        """Save the online state of ``sources`` (every partition learnt from, by default)."""
        self._checkpointed = time.monotonic()
        for source in list(self.learners) if sources is None else sources:
            learner = self.learners.get(source)
            if learner is None:
                continue
            try:
                self.online.save(learner, *source, self._learnt.get(source, 0))
            except OSError as exc:  # a full disk must not stop scoring; the next checkpoint retries
                log.warning("online state of %s[%d] not checkpointed: %s", *source, exc)

    def partitions_gone(self, partitions: list[TopicPartition], lost: bool) -> None:
        """A revoked partition's learning copy is saved (its last batch is committed: the next owner
        resumes exactly there); a lost one's is dropped (another member may own it already)."""
        sources = [(tp.topic, tp.partition) for tp in partitions]
        if not lost:
            self._checkpoint(sources)
        for source in sources:
            self.learners.pop(source, None)
            self._learnt.pop(source, None)

    # -- hot reload -----------------------------------------------------------------------------
    def _swap_models(self) -> None:
        while not self.watcher.ready.empty():
            model = self.watcher.ready.get_nowait()
            new_stream = model.stream not in self.models
            if not new_stream:
                # What the outgoing version learnt stays with that version; the new one's learning
                # copies start from its own checkpoints as each partition is next scored.
                outgoing = [src for src, learner in self.learners.items() if learner.stream == model.stream]
                self._checkpoint(outgoing)
                for src in outgoing:
                    del self.learners[src]
            self.models[model.stream] = model
            self.decoders[model.stream] = decoder_for(model.stream, model.encoder)
            self.metrics.model_version.labels(model.stream, model.detector_name).set(model.version)
            log.info("hot-reloaded stream %s -> %s v%d", model.stream, model.detector_name, model.version)
            if new_stream:
                self._route(model.stream)
                log.info("stream %s has its first model: consuming %s", model.stream, sorted(self.routes))
                self.subscribe()

    # -- shutdown ----------------------------------------------------------------------------------

    # -- the way out (GroupMember.open_member) ------------------------------------------------------
    def after_publishing(self) -> None:
        """Every delivered batch is committed and learnt: checkpoint what the models learnt."""
        log.info("stopping: %d events scored, %d alerts, %d dead letters",
                 self.stats.events, self.stats.alerts, self.stats.dead_letters)  # fmt: skip
        self._checkpoint()
        self.metrics.update_lag(self.consumer, force=True)


def _next_offsets(data: list[Message]) -> list[TopicPartition]:
    highest: dict[tuple[str, int], int] = {}
    for m in data:
        key = (m.topic(), m.partition())
        offset = m.offset()
        if offset > highest.get(key, -1):
            highest[key] = offset
    return [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]


def schema_streams(
    settings: Settings, schemas: Sequence[str | Path], topic: str | None = None
) -> tuple[list[DatasetSchema], dict[str, str]]:
    """The dataset schemas a worker scores (files or built-in names) and the topic of each: ``topic``
    (one schema only), else the one the schema names. Refuses in one line a schema whose stream has
    no production model, and ``topic`` given for several schemas."""
    loaded = [load_schema(where) for where in schemas]
    if topic is not None and len(loaded) != 1:
        raise ConfigurationError(f"--topic names the topic of one --schema, got {len(loaded)} schemas")
    registry = open_registry(settings)
    for where, schema in zip(schemas, loaded, strict=True):
        if registry.production(schema.name) is None:
            raise RegistryError(
                f"no production model for stream {schema.name!r} (schema {where}) in {settings.registry}: "
                f"run `anomstream train --schema {where}` first"
            )
    return loaded, {s.name: topic or s.input_topic(settings) for s in loaded}


def serve(
    settings: Settings,
    streams: Sequence[str] = STREAMS,
    replicas: int = 1,
    eos: bool = False,
    worker_id: str | None = None,
    metrics_port: int | None = None,
    schemas: Sequence[str | Path] = (),
    topic: str | None = None,
) -> int:
    """``anomstream worker``: one worker in this process, or ``replicas`` supervised processes.

    ``streams``: built-in streams (or streams whose production model carries a dataset schema);
    ``schemas``: dataset schema files (or built-in names) whose streams are scored too, from ``topic``
    or the topic each names."""
    loaded, topics = schema_streams(settings, schemas, topic)
    if loaded and topic is None:
        # A schema's own topic is created if missing, as `replay --schema` does: the walkthrough
        # starts the worker first, and a worker that won the race against the replay's creation
        # exited with "topic ... does not exist". A topic given with --topic is the user's to fill.
        wait_for_broker(settings, timeout=30)
        create_topics(settings, topics=[schema.input_topic(settings) for schema in loaded])
    if replicas > 1:
        from consumers.supervisor import ReplicaSupervisor

        args = ["--streams", ",".join(streams)] if streams else []
        for where in schemas:
            args += ["--schema", str(where)]
        args += (["--topic", topic] if topic is not None else []) + (["--eos"] if eos else [])
        grace = settings.resilience.shutdown_grace_s
        # The replicas get these settings, not the caller's environment (issue 28).
        return ReplicaSupervisor(replicas, args, metrics_port=metrics_port, grace_s=grace,
                                 settings=settings).run()  # fmt: skip
    worker = ScoringWorker(settings, [*streams, *(s.name for s in loaded)], eos=eos, worker_id=worker_id,
                           metrics_port=metrics_port, faults=from_env(), topics=topics)  # fmt: skip
    worker.run()
    return 0
