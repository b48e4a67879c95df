"""What a consumer-group member does to stay in its group through an outage (one implementation).

:class:`Rejoins` is for every loop that owns a group consumer (the scoring worker, the incident stage,
the drift monitor); :class:`GroupMember` adds what a member with a :class:`~consumers.publisher.Publisher`
needs (the worker and the stage).

* While the publisher retries a batch (``recovering``), the thread that owns the consumer keeps polling
  it as it waits (:meth:`GroupMember.while_waiting`): a session lost meanwhile is noticed (on_lost) and
  the group rejoined only in a poll, and the publisher's retry needs the new group state. A member
  that only answered the publisher's questions never rejoined: every retry failed with
  UNKNOWN_MEMBER_ID until ``recovery_s`` ran out (the incident stage did that after a broker outage).
* A consumer still unassigned ``rejoin_s`` after its partitions were lost is recreated
  (:meth:`Rejoins.rejoin_if_stuck`; librdkafka can stay out of its group after a coordinator
  restart: #2944, #3082, #5511).
* The group's committed offsets for the publisher come from a client of its own
  (:meth:`GroupMember.group_committed`), never from the consumer, which only its own thread calls.
"""

from __future__ import annotations

import logging
import queue
import time
from contextlib import ExitStack
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from consumers.batching import DynamicBatcher
from consumers.faults import Faults
from consumers.publisher import Publisher, ScoredBatch
from stream.kafka import make_consumer, make_producer
from stream.kafka.watchdog import UNTIMED_CALL_S, Watchdog, close_quietly
from stream.settings import Settings
from stream.signals import ShutdownBound, StopFlag

log = logging.getLogger(__name__)

SESSION = {"session.timeout.ms": 10_000, "heartbeat.interval.ms": 2000}
"""A crashed member's partitions move after 10 s instead of librdkafka's 45 s (heartbeats every 2 s)."""


class Rejoins:
    """Mixed into a loop that owns a group ``consumer``: it provides :meth:`subscribe`, calls
    :meth:`mark_assigned` / :meth:`mark_lost` from its rebalance callbacks and :meth:`rejoin_if_stuck`
    once per turn of its loop."""

    settings: Settings
    group_id: str
    consumer: Consumer

    def init_rejoins(self) -> None:
        self._lost_at: float | None = None  # when partitions were last lost, until assigned again
        self.rejoins = 0  # consumers recreated because they did not rejoin their group

    def new_consumer(self) -> Consumer:
        return make_consumer(self.settings, self.group_id, **SESSION)

    def subscribe(self) -> None:
        raise NotImplementedError

    def consumer_replaced(self) -> None:
        """What else held the old consumer (called after :meth:`rejoin_if_stuck` recreated it)."""

    def mark_assigned(self) -> None:
        self._lost_at = None

    def mark_lost(self) -> None:
        self._lost_at = time.monotonic()

    def rejoin_if_stuck(self) -> None:
        """Past ``rejoin_s`` unassigned after a loss, the consumer is recreated: it joins afresh, and
        its partitions are read again from the committed offsets."""
        if self._lost_at is None or time.monotonic() - self._lost_at < self.settings.resilience.rejoin_s:
            return
        log.warning("the consumer was not assigned partitions again %.0fs after losing them: recreating "
                    "it (librdkafka can stay out of its group after a coordinator restart)",
                    time.monotonic() - self._lost_at)  # fmt: skip
        self._lost_at = None
        self.rejoins += 1
        close_quietly(self.consumer, "the stuck consumer")
        self.consumer = self.new_consumer()
        self.consumer_replaced()
        self.subscribe()


class GroupMember(Rejoins):
    """A :class:`Rejoins` loop that also owns ``batcher`` and ``publisher``: it opens and closes them
    (:meth:`open_member`, one exit stack), commits what the publisher delivered
    (:meth:`commit_published`) and answers rebalances (``on_assign``, ``on_revoke``, ``on_lost``); the
    loop says what a batch counts for (:meth:`account`), what it keeps per partition
    (:meth:`partitions_assigned`, :meth:`partitions_gone`) and what it does once the last batch is
    committed (:meth:`after_publishing`)."""

    guard: Watchdog
    batcher: DynamicBatcher
    publisher: Publisher
    eos: bool
    faults: Faults
    stop: StopFlag
    member_id: str  # this member's id: its transactional id is "<group id>-<member id>"
    clean: bool  # the loop ended without an exception: in-flight batches are published on the way out

    # -- opening and closing, one exit stack ------------------------------------------------------
    def open_member(self, opened: ExitStack, batch_size: int, max_queue_delay_ms: float,
                    **publisher_options: Any) -> None:  # fmt: skip
        """Make the consumer, the batcher and the publisher, each entered into ``opened`` as it is
        made. On the way out (last made first): the publisher finishes (drained if the loop ended
        cleanly), what it delivered is committed, :meth:`after_publishing` runs, the producer is
        flushed; then the probe and the consumer close."""
        self.clean = False
        self.consumer = self.new_consumer()
        opened.callback(lambda: close_quietly(self.consumer, "the consumer"))  # its current value
        opened.callback(self.close_probe)
        self.batcher = DynamicBatcher(self.consumer, batch_size, max_queue_delay_ms / 1000,
                                      self.settings.batch_timeout_s)  # fmt: skip
        resilience = self.settings.resilience
        self.publisher = Publisher(
            self.new_producer(),
            self.consumer,
            eos=self.eos,
            worker_id=self.member_id,
            dead_letter_topic=self.settings.topic("dead_letter"),
            faults=self.faults,
            renew_producer=lambda: self.new_producer(initialise=False),
            while_waiting=self.while_waiting,
            committed=self.group_committed,
            guard=self.guard,
            stop=self.stop,
            transaction_timeout_s=resilience.transaction_timeout_s,
            recovery_s=resilience.recovery_s,
            **publisher_options,
        ).start()
        self._publishing = True
        opened.callback(self._finish_publishing)

    def bound_on_failure(self, opened: ExitStack, bound: ShutdownBound) -> None:
        """Entered last: a loop that failed (not stopped) is bounded on its way out too."""
        opened.callback(lambda: None if self.clean or self.stop else bound.begin())

    def new_producer(self, initialise: bool = True) -> Producer:
        """The member's producer; under --eos transactional (the same id every time: a new one fences
        the old, so the publisher recreates it when one is stuck), init_transactions done unless
        ``initialise`` is False (the publisher retries it on the same producer). Delivery reports
        for failures only: success is "flush() left nothing behind", no Python callback per output."""
        transactional_id = f"{self.group_id}-{self.member_id}" if self.eos else None
        producer = make_producer(
            self.settings,
            transactional_id=transactional_id,
            on_delivery=self._on_delivery,
            **{"delivery.report.only.error": True},
        )
        if self.eos and initialise:
            timeout = self.settings.resilience.transaction_timeout_s
            self.guard.call("init_transactions", timeout, producer.init_transactions, timeout)
        return producer

    def _on_delivery(self, error: Any, message: Any) -> None:  # a confluent-kafka callback
        self.publisher.on_delivery(error, message)

    def abandoned(self) -> str:
        """What a stop past its grace period leaves (stream.signals.ShutdownBound)."""
        return self.publisher.abandoned() if self._publishing else "nothing (not started)"

    def after_publishing(self) -> None:
        """The loop's last step, once every delivered batch is committed (before the consumer closes)."""

    def _finish_publishing(self) -> None:
        if self.clean:
            self.publisher.drain()  # SIGTERM: in-flight batches are published and committed
        self.publisher.close()
        self.commit_published(sync=True)
        self.after_publishing()
        self.guard.call("flush", 30, self.publisher.producer.flush, 30)

    def committed_batches(self) -> int:
        """Batches accounted for so far (the faults' clock)."""
        raise NotImplementedError

    def account(self, batch: ScoredBatch) -> None:
        """Count a delivered (and, at-least-once, committed) batch."""
        raise NotImplementedError

    def partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        """What the loop keeps per partition, set up before the first batch of them."""

    def partitions_gone(self, partitions: list[TopicPartition], lost: bool) -> None:
        """What the loop kept per partition, forgotten once they are revoked (their batches committed)
        or ``lost`` (another member may own them already)."""

    def subscribe(self) -> None:
        self.consumer.subscribe(
            self.subscribed_topics(), on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost
        )

    def subscribed_topics(self) -> list[str]:
        raise NotImplementedError

    def init_member(self) -> None:
        self.init_rejoins()
        self._publishing = False  # the publisher is made (open_member)
        self._in_rebalance = False  # inside on_revoke: no poll, no call from another thread
        self._probe: Consumer | None = None

    def while_waiting(self) -> None:
        """The loop's thread waits for the publisher (submit, drain): answer its questions and, while
        it retries a batch through an outage, keep polling the consumer. What arrives meanwhile joins
        the next batch."""
        self.publisher.serve()
        if not self.publisher.recovering or self._in_rebalance:
            return
        self.batcher.collect(0.05)
        self.publisher.serve()

    def consumer_replaced(self) -> None:
        # Batches still in flight are dropped for the partitions lost: they are read again.
        self.batcher.consumer = self.publisher.consumer = self.consumer
        self.batcher.pending.clear()

    def commit_published(self, sync: bool = False) -> None:
        """Commit the batches the publisher has delivered, in order (at-least-once; under --eos their
        transactions committed them), then :meth:`account` for them. Commits are asynchronous on the
        hot path, synchronous before partitions go."""
        while True:
            try:
                batch = self.publisher.done.get_nowait()
            except queue.Empty:
                break
            if not self.eos:
                if self.faults.withhold(batch.number, self.committed_batches()):
                    continue  # a recovery test kills the process with this batch uncommitted
                try:
                    if sync and not self._in_rebalance:  # no timeout of its own: the watchdog gives
                        # it one (a stuck one ends us). Not inside a rebalance callback: a consumer
                        # call from another thread while this one is inside consume() deadlocks.
                        self.guard.call("commit", UNTIMED_CALL_S, self.consumer.commit,
                                        offsets=batch.offsets, asynchronous=False)  # fmt: skip
                    else:
                        self.consumer.commit(offsets=batch.offsets, asynchronous=not sync)
                except KafkaException as exc:
                    # A rebalance took the partitions away: the next owner reads them again and
                    # re-publishes under the same ids. At-least-once, as documented.
                    log.warning("offset commit failed (%s): another member will redeliver", exc)
            self.account(batch)

    # -- rebalance callbacks (inside consume(), on the loop's thread) ---------------------------------
    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.publisher.note_assigned(partitions)
        self.mark_assigned()
        self.partitions_assigned(partitions)
        log.info("assigned %s", _named(partitions))

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Before the partitions go: forget what was collected from them and not yet processed (their
        # next owner reads it from the committed offset), and publish and commit what was.
        dropped = self.batcher.discard(partitions)
        self._in_rebalance = True  # no poll, no call from another thread (see while_waiting)
        try:
            self.publisher.drain()
            self.publisher.note_lost(partitions)
            self.commit_published(sync=True)
        finally:
            self._in_rebalance = False
        self.partitions_gone(partitions, lost=False)
        log.info("revoked %s (in-flight batches committed first%s)", _named(partitions),
                 f"; {dropped} collected messages left to the next owner" if dropped else "")  # fmt: skip

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        dropped = self.batcher.discard(partitions)
        self.publisher.note_lost(partitions)
        self.mark_lost()  # see Rejoins.rejoin_if_stuck
        self.partitions_gone(partitions, lost=True)
        log.warning("lost %s (session timed out): %d collected messages dropped, the next owner re-reads "
                    "them", _named(partitions), dropped)  # fmt: skip

    def group_committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        """The group's committed offsets, from a client of the publisher's own; it joins no group."""
        if self._probe is None:
            self._probe = make_consumer(self.settings, self.group_id)
        probe = self._probe
        return self.guard.call("committed", timeout, lambda: probe.committed(partitions, timeout=timeout))

    def close_probe(self) -> None:
        if self._probe is not None:
            close_quietly(self._probe, "the committed-offsets probe")


def _named(partitions: list[TopicPartition]) -> list[str]:
    return sorted(f"{p.topic}[{p.partition}]" for p in partitions)
