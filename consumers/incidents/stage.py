"""The incident stage (``anomstream incidents run``): a consumer group of the alerts topic that groups
alerts into incidents and publishes them.

::

    stage thread       dynamic batch of alerts -> per alerts partition: group (PartitionGrouper.add),
                       timers (tick: closes, throttled updates) -> outputs: incident messages
                       (``incidents``), members (``incident-members``), the partition's snapshot
                       (``incidents-state``) -> submit
    publisher thread   produce -> acknowledged -> commit offsets       (at-least-once, the default)
                       or one Kafka transaction per batch              (--eos, exactly-once)

The loop is the scoring worker's (:mod:`consumers.worker`) with the model call replaced by the
grouper: the same :class:`~consumers.publisher.Publisher` (ordered produce-then-commit, one
transaction per batch, outage recovery), batcher, supervisor and signals. A partition's open incidents
are restored from ``incidents-state`` when it is assigned and forgotten when it is revoked or lost
(after in-flight batches were drained), so whoever holds a partition holds its incidents.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import cast

import msgspec
from confluent_kafka import Consumer, Message, TopicPartition
from prometheus_client import Counter, Gauge

from consumers.faults import NO_FAULTS, Faults, from_env
from consumers.incidents.finding import incident_message, members_messages
from consumers.incidents.grouping import (
    AlertRef,
    GroupingPolicy,
    GroupingResult,
    PartitionGrouper,
    alert_ref,
)
from consumers.incidents.state import StateReader, state_key
from consumers.membership import GroupMember
from consumers.publisher import Output, ScoredBatch
from consumers.worker_metrics import WorkerMetrics
from stream.health import Readiness
from stream.kafka import check_message, follow_from, wait_for_broker
from stream.kafka.watchdog import Watchdog, close_quietly, watchdog
from stream.messages import IncidentVerdict, decode_feedback, encode
from stream.settings import IncidentSettings, Settings
from stream.signals import ShutdownBound, StopFlag

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 1.0  # timers (closes, throttled updates) are checked this often when idle

__all__ = ["IncidentStage", "StageStats", "grouping_policy", "serve"]


def grouping_policy(settings: IncidentSettings) -> GroupingPolicy:
    return GroupingPolicy(
        gap_ms=int(settings.gap_s * 1000),
        max_duration_ms=int(settings.max_duration_s * 1000),
        group_interval_ms=int(settings.group_interval_s * 1000),
        repeat_interval_ms=int(settings.repeat_interval_s * 1000),
        similarity=settings.similarity,
        max_open=settings.max_open,
    )


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class StageStats:
    alerts: int = 0
    skipped: int = 0  # messages on the alerts topic that are no alert
    created: int = 0
    closed: int = 0
    batches: int = 0
    by_stream: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_batch_at: float | None = None  # time.perf_counter() when the first alerts were handed over


class _Origin:
    """Where a timer's outputs come from: the partition they belong to (the publisher keeps or drops
    a batch's outputs by the partition of their source)."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]

    def key(self) -> None:
        return None

    def value(self) -> None:
        return None

    def headers(self) -> None:
        return None


class IncidentMetrics(WorkerMetrics):
    """The worker's metrics (lag, batches, liveness) plus incidents opened, closed and open."""

    def __init__(self, port: int | None, stage: IncidentStage, stall_after_s: float) -> None:
        super().__init__(port, readiness=stage.readiness, stall_after_s=stall_after_s)
        self.incidents = Counter(
            "anomstream_incidents_total",
            "Incident messages published",
            ["stream", "activity"],
            registry=self.registry,
        )
        self.open_incidents = Gauge(
            "anomstream_incidents_open", "Open incidents held by this stage", registry=self.registry
        )


class IncidentStage(GroupMember):
    """A member of the incident stage's consumer group (see the module)."""

    def __init__(
        self,
        settings: Settings,
        eos: bool = False,
        stage_id: str | None = None,
        stop: StopFlag | None = None,
        metrics_port: int | None = None,
        guard: Watchdog | None = None,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self.settings = settings
        self.eos = eos
        self.stage_id = self.member_id = stage_id or f"{socket.gethostname()}-{os.getpid()}"
        self.stop = stop if stop is not None else StopFlag()
        self.guard = guard if guard is not None else watchdog()
        self.faults = faults
        self.policy = grouping_policy(settings.incidents)
        self.alerts_topic = settings.topic("alerts")
        self.topics = {
            "incidents": settings.topic("incidents"),
            "members": settings.topic("incident_members"),
            "state": settings.topic("incidents_state"),
        }
        self.groupers: dict[int, PartitionGrouper] = {}
        # Analysts' verdicts on incidents (feedback, read from its beginning at each start): each
        # goes out on the incident's next message, in an update published at the next tick.
        self.verdicts: dict[str, IncidentVerdict] = {}
        self._unapplied: set[str] = set()
        self.feedback: Consumer | None = None
        self.stats = StageStats()
        self.metrics = IncidentMetrics(metrics_port, self, settings.resilience.stall_after_s)
        self._batch_number = 0
        self._submitted = 0
        self._ticked = 0.0
        self.group_id = settings.incidents.group_id
        self.init_member()

    # -- the loop -------------------------------------------------------------------------------
    def run(self, max_alerts: int | None = None) -> StageStats:
        """Group alerts until stopped (or until ``max_alerts`` were handed over); returns counters."""
        wait_for_broker(self.settings, timeout=30)
        bound = ShutdownBound(
            self.settings.resilience.shutdown_grace_s, f"incident stage {self.stage_id}", self.abandoned
        ).arm(self.stop)
        with ExitStack() as opened:  # everything opened below is closed on the way out, last first
            opened.callback(bound.finished)
            self.states = StateReader(self.settings)
            opened.callback(self.states.close)
            incidents = self.settings.incidents
            self.open_member(opened, incidents.batch_size, incidents.max_queue_delay_ms)
            feedback = self.settings.topic("feedback")
            self.feedback = follow_from(self.settings, feedback)
            if self.feedback is None:
                log.warning("no %s topic: incident verdicts are not carried by incident messages "
                            "(`anomstream topics create` makes it)", feedback)  # fmt: skip
            else:
                opened.callback(close_quietly, self.feedback, "the incident stage's feedback reader")
            self.bound_on_failure(opened, bound)
            self.subscribe()
            self._group_until_stopped(max_alerts)
        return self.stats

    def _group_until_stopped(self, max_alerts: int | None) -> None:
        log.info(
            "incident stage %s grouping %s (%s)",
            self.stage_id,
            self.alerts_topic,
            "exactly-once" if self.eos else "at-least-once",
        )
        while not self.stop:
            self.commit_published()
            self.rejoin_if_stuck()
            if max_alerts is not None and self._submitted >= max_alerts:
                break
            messages = self.batcher.next_batch()
            due = time.monotonic() - self._ticked >= TICK_INTERVAL_S
            if due:  # verdicts are applied by a tick: read them once per tick, not every loop turn
                self._read_verdicts()
            if messages or due:
                self._submit(messages, tick=True)
            self.publisher.serve()
            self.faults.scored(self._batch_number, lambda: self.publisher.producer.flush(30))
            self.publisher.raise_if_failed()
            self.metrics.update_lag(self.consumer, in_flight=self.publisher.in_flight)
        self.clean = True

    def subscribed_topics(self) -> list[str]:
        return [self.alerts_topic]

    def committed_batches(self) -> int:
        return self.stats.batches

    # -- grouping -------------------------------------------------------------------------------
    def _submit(self, messages: list[Message], tick: bool) -> None:
        if messages and self.stats.first_batch_at is None:
            self.stats.first_batch_at = time.perf_counter()
        self._batch_number += 1
        batch = self._group(messages, self._batch_number, tick)
        if not batch.outputs and not batch.offsets:
            return
        if self.eos:
            batch.group_metadata = self.consumer.consumer_group_metadata()
        batch.tokens = {key: self.publisher.generation.get(key, 0) for key in batch.per_partition}
        if not self.publisher.submit(batch):
            log.info("batch %d not handed over: stopping (its offsets stay uncommitted)", batch.number)
            return
        self._submitted += batch.events

    def _group(self, messages: list[Message], number: int, tick: bool) -> ScoredBatch:
        """Group one batch and run the timers: the batch's outputs and offsets (nothing published)."""
        now = wall_ms()
        by_partition: dict[int, list[Message]] = defaultdict(list)
        for message in messages:
            by_partition[message.partition()].append(message)
        batch = ScoredBatch(number, [], [])
        results: dict[int, GroupingResult] = {}
        for partition, part in by_partition.items():
            grouper = self.groupers.get(partition)
            if grouper is None:  # not ours any more (revoked while collected): its owner reads it
                continue
            refs: list[AlertRef] = []
            for message in part:
                try:
                    refs.append(alert_ref(message.value() or b"", message.offset(), message.timestamp()[1]))
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    self.stats.skipped += 1
                    log.warning(
                        "%s[%d] offset %d is no alert (%s): skipped",
                        message.topic(),
                        partition,
                        message.offset(),
                        exc,
                    )
            results[partition] = grouper.add(refs, now)
            grouper.state.next_offset = max(grouper.state.next_offset, part[-1].offset() + 1)
            batch.offsets.append(TopicPartition(self.alerts_topic, partition, part[-1].offset() + 1))
            batch.per_partition[(self.alerts_topic, partition)] = (len(part), 0)
            batch.events += len(part)
            for ref in refs:
                batch.by_stream[ref.stream] = (batch.by_stream.get(ref.stream, (0, 0))[0] + 1, 0)
        if tick:
            self._ticked = time.monotonic()
            changed = {p: grouper.tick(now) for p, grouper in self.groupers.items()}
            for incident_id in sorted(self._unapplied):
                partition = incident_partition(incident_id)
                grouper = self.groupers.get(partition)
                if grouper is not None:  # else another member holds it (and reads the verdict too)
                    judged = grouper.judge(incident_id, self.verdicts[incident_id], now)
                    changed.setdefault(partition, GroupingResult()).changes += judged.changes
            self._unapplied.clear()
            for partition, timers in changed.items():
                if timers.empty:
                    continue
                result = results.setdefault(partition, GroupingResult())
                result.changes += timers.changes
                if partition not in by_partition:  # offsets unchanged: re-sent so the batch commits
                    offset = self.groupers[partition].state.next_offset
                    batch.offsets.append(TopicPartition(self.alerts_topic, partition, offset))
                    batch.per_partition[(self.alerts_topic, partition)] = (0, 0)
        for partition, result in results.items():
            collected = by_partition.get(partition)
            origin = collected[-1] if collected else cast(Message, _Origin(self.alerts_topic, partition, -1))
            self._outputs(partition, result, origin, batch.outputs, now)
        return batch

    def _outputs(
        self, partition: int, result: GroupingResult, origin: Message, outputs: list[Output], now: int
    ) -> None:
        """A partition's messages: members, incidents, then its snapshot (all in one transaction)."""
        grouper = self.groupers[partition]
        incidents, members, state = self.topics["incidents"], self.topics["members"], self.topics["state"]
        for incident_id, alerts in result.members.items():
            for value in members_messages(incident_id, alerts[0].stream, alerts):
                outputs.append(Output(members, value, incident_id.encode(), None, origin))
        for change in result.changes:
            value = encode(incident_message(change.incident, change.activity, now))
            outputs.append(Output(incidents, value, change.incident.incident_id.encode(), None, origin))
        outputs.append(
            Output(
                state,
                grouper.to_bytes(),
                state_key(self.settings.incidents.group_id, self.alerts_topic, partition),
                None,
                origin,
            )
        )

    # -- committed batches ----------------------------------------------------------------------
    def account(self, batch: ScoredBatch) -> None:
        stats = self.stats
        stats.batches += 1
        stats.alerts += batch.events
        for stream, (n, _) in batch.by_stream.items():
            stats.by_stream[stream] += n
            self.metrics.alerts.labels(stream).inc(n)
        for output in batch.outputs:
            if output.topic == self.topics["incidents"] and output.value is not None:
                stream, activity = _activity_of(output.value)
                self.metrics.incidents.labels(stream, ACTIVITIES[activity]).inc()
                if activity == 1:
                    stats.created += 1
                elif activity == 3:
                    stats.closed += 1
        self.metrics.batches.inc()
        self.metrics.progress.completed()
        self.metrics.open_incidents.set(sum(len(g.open_incidents) for g in self.groupers.values()))

    # -- group membership -----------------------------------------------------------------------
    def partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            state = self.states.restore(tp.topic, tp.partition)
            self.groupers[tp.partition] = PartitionGrouper(state, self.policy)
        # Verdicts on their open incidents that an earlier owner had not published yet.
        mine = {tp.partition for tp in partitions}
        self._unapplied |= {i for i in self.verdicts if incident_partition(i) in mine}

    # -- verdicts ------------------------------------------------------------------------------
    def _read_verdicts(self) -> None:
        """Take the incident verdicts published since the last look (never blocks)."""
        if self.feedback is None:
            return
        for message in self.feedback.consume(500, 0):
            if not check_message(message):
                continue
            try:
                given = decode_feedback(message.value() or b"")
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("feedback offset %d is no verdict (%s): skipped", message.offset(), exc)
                continue
            if given.incident_id is None or incident_partition(given.incident_id) < 0:
                continue
            verdict = IncidentVerdict(given.verdict, given.by, given.reason, given.given_at)
            if self.verdicts.get(given.incident_id) != verdict:
                self.verdicts[given.incident_id] = verdict
                self._unapplied.add(given.incident_id)

    def partitions_gone(self, partitions: list[TopicPartition], lost: bool) -> None:
        # Its next owner restores a lost partition from the last committed snapshot.
        for tp in partitions:
            self.groupers.pop(tp.partition, None)

    def readiness(self) -> Readiness:
        metrics = self.metrics
        if metrics.loop_seen is None:
            return Readiness(False, {"loop": "not consuming yet"})
        age = time.monotonic() - metrics.loop_seen
        problem = metrics.broker_reachable(self.settings)
        checks = {
            "loop_seen_s_ago": round(age, 1),
            "group": "joined" if metrics.member_id else "joining",
            "assigned_partitions": metrics.assigned,
            "broker": problem or "reachable",
        }
        return Readiness(age < 30 and metrics.member_id is not None and problem is None, checks)

    def after_publishing(self) -> None:
        log.info("stopping: %d alerts grouped, %d incidents opened, %d closed",
                 self.stats.alerts, self.stats.created, self.stats.closed)  # fmt: skip


class _Unmapped(msgspec.Struct):
    stream: str


class _Activity(msgspec.Struct):
    activity_id: int
    unmapped: _Unmapped


ACTIVITIES = {1: "create", 2: "update", 3: "close"}
_read_activity = msgspec.json.Decoder(_Activity).decode


def incident_partition(incident_id: str) -> int:
    """The alerts partition an incident id names (``inc-<stream>-<partition>-<offset>``), -1 if none.

    >>> [incident_partition(i) for i in ("inc-kdd-3-5012", "inc-my-firewall-0-7", "x")]
    [3, 0, -1]
    """
    parts = incident_id.rsplit("-", 2)
    if len(parts) != 3 or not parts[0].startswith("inc-") or not parts[1].isdigit():
        return -1
    return int(parts[1])


def _activity_of(value: bytes) -> tuple[str, int]:
    """(stream, activity id) of an incident message this stage built."""
    read = _read_activity(value)
    return read.unmapped.stream, read.activity_id


def stage_command(*args: str) -> list[str]:
    """The command line of one supervised replica: ``anomstream incidents run ARGS``."""
    return [sys.executable, "-m", "anomstream", "incidents", "run", *args]


def serve(
    settings: Settings,
    replicas: int = 1,
    eos: bool = False,
    stage_id: str | None = None,
    metrics_port: int | None = None,
) -> int:
    """``anomstream incidents run``: one stage member in this process, or ``replicas`` supervised."""
    if replicas > 1:
        from consumers.supervisor import ReplicaSupervisor

        grace = settings.resilience.shutdown_grace_s
        return ReplicaSupervisor(
            replicas,
            ["--eos"] if eos else [],
            metrics_port=metrics_port,
            command=stage_command,
            grace_s=grace,
        ).run()
    IncidentStage(settings, eos=eos, stage_id=stage_id, metrics_port=metrics_port, faults=from_env()).run()
    return 0
