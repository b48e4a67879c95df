"""The dashboard's Kafka side: one reader of the output topics, one poller of offsets.

* The reader (read_committed, no consumer group, no commits) follows ``scores`` from its end (or
  from the beginning with ``--from-beginning``) and ``drift-events``, ``model-updates``,
  ``feedback`` and ``incidents`` from the beginning: they are small (incidents compacted), and the
  timeline, the incidents and the alert feed show their history (a verdict given before the page
  opened). A verdict on ``feedback`` names an alert, or a whole incident (``incident_id``). A topic
  that does not exist yet is picked up when it appears.
* ``alerts`` is not read whole: alerts come by the ten thousand a second and the score records
  already say which events alerted and by how much (the counts, severities included, come from
  them). A few times a second the reader fetches only the newest ``TAIL_PER_PARTITION`` alerts of
  each partition that it has not seen, for the feed.
* The poller asks the broker once a second for the input topics' end offsets and the worker group's
  committed offsets: events/s in, and lag.

Both decode with the message structs of :mod:`stream.messages` and hand the result to the
:class:`~anomstream.dashboard.aggregate.Aggregator` in batches, under its lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import msgspec
from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from anomstream.dashboard.aggregate import Aggregator, decode_alert_head
from anomstream.dashboard.metrics import DashboardMetrics
from models.registry import RegistryError, open_registry
from stream.health import Readiness
from stream.kafka import check_message, make_consumer, make_reader, partitions_of, watermarks
from stream.kafka.watchdog import StuckCallError, close_quietly, guarded
from stream.messages import DriftEvent, ModelUpdate, decode_feedback, decode_score_record
from stream.settings import STREAMS, Settings
from stream.signals import StopFlag

log = logging.getLogger(__name__)

BATCH = 5000
RETRY_TOPICS_S = 5.0
OFFSETS_EVERY_S = 1.0
STALE_AFTER_S = 10.0  # no successful offsets poll for this long: the broker is unreachable
TAIL_EVERY_S = 0.4  # how often the newest alerts are fetched for the feed
TAIL_PER_PARTITION = 200  # at most this many of each partition's newest alerts, each time
TAIL_BUDGET_S = 0.25

_drift_fields = set(DriftEvent.__struct_fields__)
_update_fields = set(ModelUpdate.__struct_fields__)


def _decode_with_extra(raw: bytes, kind: Any, fields: set[str]) -> tuple[Any, dict[str, Any]]:
    """The struct, plus the fields it does not know (a drift monitor's shadow metrics, say)."""
    data = msgspec.json.decode(raw)
    if not isinstance(data, dict):
        raise msgspec.ValidationError(f"expected a JSON object, got {type(data).__name__}")
    return msgspec.convert(data, kind), {k: v for k, v in data.items() if k not in fields}


def _incident_verdict(raw: bytes) -> tuple[str, dict[str, Any]] | None:
    """(incident id, verdict) of a verdict on a whole incident (``incident_id`` set, no
    ``alert_id``); None for a verdict on an alert."""
    data = msgspec.json.decode(raw)
    if not isinstance(data, dict) or data.get("alert_id") or not data.get("incident_id"):
        return None
    if data.get("verdict") not in ("benign", "malicious") or not isinstance(data.get("by"), str):
        raise msgspec.ValidationError("an incident verdict needs a verdict (benign or malicious) and by")
    entry = {name: data.get(name) for name in ("verdict", "by", "given_at", "reason")}
    return str(data["incident_id"]), entry


class Feed:
    """Keeps an :class:`Aggregator` up to date from Kafka, in two daemon threads."""

    def __init__(
        self,
        settings: Settings,
        aggregator: Aggregator,
        metrics: DashboardMetrics,
        from_beginning: bool = False,
        stop: StopFlag | None = None,
        inputs: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.aggregator = aggregator
        self.metrics = metrics
        self.from_beginning = from_beginning
        self.stop = stop if stop is not None else StopFlag(install=False)
        self.registry = open_registry(settings)
        self.topics = {
            settings.topic("scores"): "scores",
            settings.topic("alerts"): "alerts",
            settings.topic("drift"): "drift",
            settings.topic("model_updates"): "model_updates",
            settings.topic("feedback"): "feedback",
            settings.topic("incidents"): "incidents",
        }
        # Ready without verdicts or incidents: a cluster set up before those topics existed (or with
        # no incident stage) still shows the rest.
        self.required = {t for t, kind in self.topics.items() if kind not in ("feedback", "incidents")}
        # Each stream's input topic, whose end and committed offsets give its lag: the built-in streams'
        # from the settings, a dataset schema's from ``inputs`` (it has no topic in the settings).
        self.inputs = {stream: settings.topic(stream) for stream in aggregator.streams if stream in STREAMS}
        self.inputs |= dict(inputs or {})
        self.assigned: set[str] = set()
        self.alert_next: dict[tuple[str, int], int] = {}  # alerts partition -> next offset not seen
        # Offsets at start: drift events and model updates below them are history (on the timeline,
        # not counted again by the metrics after a restart).
        self.history_end: dict[tuple[str, int], int] = {}
        self.last_offsets_ok: float | None = None
        self.turned: dict[str, float] = {}  # thread -> when its loop last turned (liveness)
        self._threads = [
            threading.Thread(target=self._read, name="dashboard-reader", daemon=True),
            threading.Thread(target=self._poll_offsets, name="dashboard-offsets", daemon=True),
        ]
        self._threshold = lru_cache(maxsize=64)(self._registry_threshold)

    def start(self) -> Feed:
        for stream in self.aggregator.streams:
            self._refresh_production(stream)
        for thread in self._threads:
            thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop both threads, waiting ``timeout`` in all (a thread inside a stuck Kafka call is left:
        it is a daemon)."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def readiness(self) -> Readiness:
        """Ready when every output topic is assigned and the broker answered within STALE_AFTER_S."""
        missing = sorted(self.required - self.assigned)
        age = None if self.last_offsets_ok is None else round(time.monotonic() - self.last_offsets_ok, 1)
        checks: dict[str, Any] = {
            "topics": "assigned" if not missing else f"waiting for {', '.join(missing)}",
            "broker": self.aggregator.status.get("broker"),
            "last_offsets_s_ago": age,
        }
        reading = self._threads[0].is_alive()
        checks["reader"] = self.aggregator.status.get("reader", "starting") if reading else "stopped"
        return Readiness(reading and not missing and age is not None and age < STALE_AFTER_S, checks)

    def liveness(self, stall_after_s: float) -> Readiness:
        """Alive while both threads' loops turn (a Kafka call stuck inside one stops it turning;
        the watchdog gives every such call a deadline, so this is a last resort)."""
        now = time.monotonic()
        ages = {name: round(now - at, 1) for name, at in self.turned.items()}
        alive = all(t.is_alive() for t in self._threads) or bool(self.stop)
        return Readiness(
            alive and all(age < stall_after_s for age in ages.values()), {"loop_seen_s_ago": ages}
        )

    # -- registry -------------------------------------------------------------------------------
    def _registry_threshold(self, stream: str, detector: str, version: int) -> float | None:
        try:
            return float(self.registry.manifest(stream, detector, version)["threshold"]["threshold"])
        except (RegistryError, KeyError, TypeError, ValueError, OSError):
            return None

    def threshold(self, stream: str, detector: str, version: int) -> float | None:
        return self._threshold(stream, detector, version)

    def _refresh_production(self, stream: str) -> None:
        try:
            alias = self.registry.production(stream)
        except (OSError, ValueError) as exc:
            log.warning("cannot read the production alias of %s: %s", stream, exc)
            return
        if alias is None:
            return
        with self.aggregator.lock:
            self.aggregator.set_production(stream, alias)
        self.metrics.production_version.labels(stream).set(alias.version)

    # -- the reader -----------------------------------------------------------------------------
    def _read(self) -> None:
        reader = make_reader(self.settings, **{"fetch.max.bytes": 16 * 1024 * 1024})
        tail = make_reader(self.settings)
        next_try = next_tail = 0.0
        try:
            while not self.stop:
                self.turned["reader"] = time.monotonic()
                if len(self.assigned) < len(self.topics) and time.monotonic() >= next_try:
                    self._assign_missing(reader)
                    next_try = time.monotonic() + RETRY_TOPICS_S
                if not self.assigned:
                    self.stop.wait(0.5)
                    continue
                try:
                    if self.alert_next and time.monotonic() >= next_tail:
                        next_tail = time.monotonic() + TAIL_EVERY_S
                        newest = self._newest_alerts(tail)
                        if newest:
                            self._handle(newest)
                    messages = [m for m in reader.consume(BATCH, 0.1) if check_message(m)]
                except (KafkaException, StuckCallError) as exc:
                    # A page that says so beats a dead reader thread: log it, wait, read on.
                    log.error("reading failed: %s; retrying in 2s", exc)
                    self.aggregator.status["reader"] = f"error: {exc}"
                    if isinstance(exc, StuckCallError):  # that client is abandoned: read on with new ones
                        reader, tail = self._new_readers(tail)
                    self.stop.wait(2.0)
                    continue
                self.aggregator.status["reader"] = "reading"
                if messages:
                    self._handle(messages)
        finally:
            close_quietly(reader, "the dashboard's reader")
            close_quietly(tail, "the dashboard's alerts reader")

    def _new_readers(self, tail: Any) -> tuple[Any, Any]:
        """Fresh readers after a stuck call, the topics assigned again from their end (the page
        misses what was published meanwhile; the counts from the offsets poller do not)."""
        self.assigned.clear()
        self.alert_next.clear()
        return make_reader(self.settings, **{"fetch.max.bytes": 16 * 1024 * 1024}), make_reader(self.settings)

    def _newest_alerts(self, tail: Any) -> list[Any]:
        """The alerts of each partition not seen yet, at most the newest TAIL_PER_PARTITION."""
        assignment, goal = [], {}
        for (topic, partition), seen in self.alert_next.items():
            low, high = watermarks(tail, topic, partition)
            start = max(seen, high - TAIL_PER_PARTITION, low)
            if start < high:
                assignment.append(TopicPartition(topic, partition, start))
                goal[(topic, partition)] = high
        if not assignment:
            return []
        newest: list[Any] = []
        tail.assign(assignment)
        try:
            deadline = time.monotonic() + TAIL_BUDGET_S
            while goal and time.monotonic() < deadline:
                batch = tail.consume(1000, 0.05)
                if not batch:
                    break  # caught up (under exactly-once the last offsets are transaction markers)
                for message in batch:
                    if not check_message(message):
                        continue
                    key = (message.topic(), message.partition())
                    self.alert_next[key] = max(self.alert_next.get(key, 0), message.offset() + 1)
                    newest.append(message)
                    if message.offset() + 1 >= goal.get(key, 0):
                        goal.pop(key, None)
        finally:
            tail.unassign()
        return newest

    def _assign_missing(self, reader: Any) -> None:
        # Offsets are asked of a reader of their own: the main reader's requests queue behind its
        # long-polling fetches (half a second per partition once something is assigned).
        probe = make_reader(self.settings)
        try:
            assignment = []
            for topic, kind in self.topics.items():
                if topic in self.assigned:
                    continue
                try:
                    partitions = partitions_of(probe, topic)
                    ends = {p: watermarks(probe, topic, p)[1] for p in partitions}
                except (KafkaException, StuckCallError) as exc:
                    log.info("topic %s not readable yet (%s): retrying in %.0fs", topic, exc, RETRY_TOPICS_S)
                    continue
                self.assigned.add(topic)
                if kind == "alerts":  # read by _newest_alerts, for the feed only
                    for p, end in ends.items():
                        self.alert_next[(topic, p)] = max(0, end - TAIL_PER_PARTITION)
                    log.info("following the newest alerts of %s (%d partitions)", topic, len(partitions))
                    continue
                # Incidents too: a compacted topic, the latest message per incident.
                history = kind in ("drift", "model_updates", "feedback", "incidents")
                for p, end in ends.items():
                    self.history_end[(topic, p)] = end
                    # "The end" resolved now, so nothing published after this call is missed.
                    assignment.append(
                        TopicPartition(topic, p, OFFSET_BEGINNING if history or self.from_beginning else end)
                    )
                start = "the beginning" if history or self.from_beginning else "the end"
                log.info("reading %s (%d partitions) from %s", topic, len(partitions), start)
        finally:
            close_quietly(probe, "the dashboard's offsets probe")
        if assignment:
            reader.incremental_assign(assignment)

    def _handle(self, messages: list[Any]) -> None:
        scores, alerts, drift, updates, verdicts, incidents = [], [], [], [], [], []
        incident_verdicts: list[tuple[str, dict[str, Any]]] = []
        per_topic: Tally[str] = Tally()
        invalid = 0
        for message in messages:
            topic = message.topic()
            per_topic[topic] += 1
            kind = self.topics.get(topic)
            value = message.value() or b""
            try:
                if kind == "scores":
                    scores.append(decode_score_record(value))
                elif kind == "alerts":
                    alerts.append((decode_alert_head(value), value))
                elif kind == "drift":
                    drift.append(
                        (*_decode_with_extra(value, DriftEvent, _drift_fields), self._is_new(message))
                    )
                elif kind == "model_updates":
                    updates.append(
                        (*_decode_with_extra(value, ModelUpdate, _update_fields), self._is_new(message))
                    )
                elif kind == "feedback":
                    on_incident = _incident_verdict(value)
                    if on_incident is not None:
                        incident_verdicts.append(on_incident)
                    else:
                        verdicts.append(decode_feedback(value))
                elif kind == "incidents" and value:  # an empty value: a tombstone of compaction
                    finding = msgspec.json.decode(value)
                    if not isinstance(finding, dict):
                        raise msgspec.ValidationError("an incident is a JSON object")
                    incidents.append(finding)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                invalid += 1
                if self.aggregator.counts["invalid"] + invalid <= 10:
                    log.warning(
                        "%s[%d]@%d does not decode: %s", topic, message.partition(), message.offset(), exc
                    )
        now = time.time()
        agg = self.aggregator
        with agg.lock:
            agg.counts["invalid"] += invalid
            for record in scores:
                agg.add_score_record(record, now)
            for head, raw in alerts:
                agg.add_alert(raw, head)
            for event, extra, _ in drift:
                agg.add_drift_event(event, extra)
            for update, extra, _ in updates:
                agg.add_model_update(update, extra)
            for feedback in verdicts:
                agg.add_feedback(feedback)
            for incident_id, entry in incident_verdicts:
                agg.add_incident_verdict(incident_id, entry)
            for finding in incidents:
                agg.add_incident(finding)
            severities, agg.severity_counted = agg.severity_counted, Tally()
        self._count(per_topic, invalid, severities, drift, updates)
        for update, _, _ in updates:
            if update.status == "production":
                self._refresh_production(update.stream)

    def _is_new(self, message: Any) -> bool:
        return bool(message.offset() >= self.history_end.get((message.topic(), message.partition()), 0))

    def _count(
        self,
        per_topic: Tally[str],
        invalid: int,
        severities: Tally[tuple[str, str]],
        drift: list,
        updates: list,
    ) -> None:
        # One inc() per label set and batch, not per message: alerts come by the ten thousand.
        for topic, n in per_topic.items():
            self.metrics.records.labels(topic).inc(n)
        if invalid:
            self.metrics.invalid.inc(invalid)
        for (stream, severity), n in severities.items():
            self.metrics.alerts.labels(stream, severity).inc(n)
        for event, _, new in drift:
            if new:
                self.metrics.drift_events.labels(event.stream).inc()
        for update, _, new in updates:
            if new:
                self.metrics.model_updates.labels(update.stream, update.status).inc()

    # -- the offsets poller ---------------------------------------------------------------------
    def _poll_offsets(self) -> None:
        # A consumer with the workers' group id asks for their committed offsets; it never subscribes,
        # so it never joins their group. (Not the admin client: its list_consumer_group_offsets()
        # segfaults in confluent-kafka 2.16 for a group that has committed nothing yet.)
        offsets = make_consumer(self.settings, self.settings.group_id)
        partitions: dict[str, list[int]] = {}
        next_meta = 0.0
        try:
            while not self.stop:
                started = self.turned["offsets"] = time.monotonic()
                try:
                    if time.monotonic() >= next_meta or len(partitions) < len(self.inputs):
                        partitions = self._input_partitions(offsets)
                        next_meta = time.monotonic() + RETRY_TOPICS_S
                    ends, committed = self._offsets(offsets, partitions)
                except KafkaException as exc:
                    self._set_broker(f"unavailable: {exc.args[0].str() if exc.args else exc}")
                except StuckCallError as exc:  # that client is abandoned: ask with a new one
                    self._set_broker(f"unavailable: {exc}")
                    offsets = make_consumer(self.settings, self.settings.group_id)
                else:
                    self.last_offsets_ok = time.monotonic()
                    self._set_broker("reachable")
                    self._record_offsets(partitions, ends, committed)
                self.stop.wait(max(0.0, OFFSETS_EVERY_S - (time.monotonic() - started)))
        finally:
            close_quietly(offsets, "the dashboard's offsets poller")

    def _record_offsets(
        self,
        partitions: dict[str, list[int]],
        ends: dict[tuple[str, int], int],
        committed: dict[tuple[str, int], int],
    ) -> None:
        now = time.time()
        with self.aggregator.lock:
            for stream, topic in self.inputs.items():
                if topic in partitions:
                    end = sum(ends.get((topic, p), 0) for p in partitions[topic])
                    done = sum(max(committed.get((topic, p), 0), 0) for p in partitions[topic])
                    self.aggregator.add_offsets(stream, end, done, now)
        for stream, topic in self.inputs.items():
            state = self.aggregator.streams[stream]
            if topic in partitions and state.end_offsets:
                self.metrics.input_end_offset.labels(stream).set(state.end_offsets[-1][1])
            if topic in partitions and state.lag is not None:
                self.metrics.group_lag.labels(stream).set(state.lag)

    def _set_broker(self, status: str) -> None:
        if self.aggregator.status.get("broker") != status:
            say = log.info if status == "reachable" else log.warning
            say("broker %s: %s", self.settings.bootstrap, status)
        self.aggregator.status["broker"] = status

    def _input_partitions(self, consumer: Any) -> dict[str, list[int]]:
        meta = guarded("list_topics", 5, consumer.list_topics, timeout=5)
        return {
            topic: sorted(meta.topics[topic].partitions)
            for topic in self.inputs.values()
            if topic in meta.topics and meta.topics[topic].error is None
        }

    @staticmethod
    def _offsets(
        consumer: Any, partitions: dict[str, list[int]]
    ) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
        """End offsets (high watermarks) and the group's committed offsets (-1001 where none)."""
        tps = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
        if not tps:
            return {}, {}
        ends = {(tp.topic, tp.partition): watermarks(consumer, tp.topic, tp.partition)[1] for tp in tps}
        answer = guarded("committed", 5, lambda: consumer.committed(tps, timeout=5))
        committed = {(tp.topic, tp.partition): tp.offset for tp in answer}
        return ends, committed
