"""The delivery stage of the pipelined worker: publishes scored batches and commits them, in order,
in its own thread, while the worker decodes and scores the next batch.

::

    worker thread:    collect N+1 -> decode -> score -> build outputs --submit-->  (waits if 1 queued)
    publisher thread: produce N's outputs -> all acknowledged -> done(N)
                      (--eos: begin -> produce -> send offsets -> commit_transaction, one per batch)
    worker thread:    done(N) -> commit N's offsets (at-least-once)

Guarantees, unchanged by the overlap:

* at-least-once: a batch's offsets are committed only after every one of its outputs was
  acknowledged, and batches are committed in the order they were consumed. The worker thread commits
  them: it is the thread that polls the consumer, and this client serves a consumer call made from
  another thread while one polls late or never (measured: ``commit`` and
  ``consumer_group_metadata`` from a second thread hung for minutes). The publisher never calls the
  consumer: what it needs from it (the group metadata a transaction commits offsets under, the
  assignment) it asks the worker thread for, which answers between polls (:meth:`Publisher.serve`);
* exactly-once: one transaction per batch, and one at a time (a producer holds one open
  transaction): scoring of N+1 overlaps the ``commit_transaction`` of N;
* ``drain()`` returns once every submitted batch is acknowledged (under --eos: committed); the worker
  calls it, and commits, before partitions are revoked and before it stops.

Delivery failures are sorted by what they are. A transient one (broker gone, timeout) is retried with
the batch's own outputs: they are deterministic, so nothing is re-read or re-scored. A permanent one
(message too large, a record the broker refuses for good) can never succeed: the output is replaced by
a bounded dead letter that says what it was and why it could not be published, and the batch moves on,
so one bad output never becomes a crash loop. Only a fatal producer error, or transient errors that
outlast the retries, stop the worker, with the batch uncommitted.

A broker outage is transient too, however long: under --eos a batch is retried until
``ANOMSTREAM_RESILIENCE__RECOVERY_S`` has passed, not a number of times (an outage longer than the
session timeout fails several attempts in a row with UNKNOWN_MEMBER_ID until the consumer has
rejoined). Every blocking producer call runs under the watchdog (:mod:`stream.kafka.watchdog`); when
one overruns, or an abort fails, the transactional producer is recreated (its ``init_transactions``
fences the old epoch and settles the old transaction), and the group's committed offsets say whether
the batch's commit landed before the worker lost track of it (then it is done, not published twice).
Partitions lost and assigned again since a batch was consumed are left out of its retry: the consumer
reads them again from the committed offset, and committing them with the old batch would score them
twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from consumers.faults import NO_FAULTS, Faults
from consumers.outputs import undeliverable
from models.scoring import BatchScores, ScoringModel
from stream.kafka import Headers
from stream.kafka.watchdog import StuckCallError, Watchdog, watchdog
from stream.signals import StopFlag

log = logging.getLogger(__name__)

MAX_DELIVERY_RETRIES = 5
FLUSH_TIMEOUT_S = 60.0

# Produce errors that no retry can cure: the output is dead-lettered (or, failing that, recorded).
PERMANENT_PRODUCE_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.POLICY_VIOLATION,
        KafkaError._INVALID_ARG,
    }
)
SIZE_ERRORS = frozenset(
    {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_MSG_SIZE}
)


class Output(NamedTuple):
    """One message a scored batch publishes."""

    topic: str
    value: bytes | None
    key: bytes | None
    headers: Headers | None
    source: Message  # the input message it was made from (named by a stand-in dead letter)


class DeliveryFailedError(RuntimeError):
    """Outputs of a batch were not acknowledged; its offsets were not committed."""


@dataclass
class ScoredBatch:
    """A batch scored by the worker thread, waiting to be published and committed."""

    number: int  # 1, 2, ... in consumption order
    outputs: list[Output]
    offsets: list[TopicPartition]  # the next offset to consume, per source partition
    events: int = 0
    alerts: int = 0
    dead_letters: int = 0
    by_stream: dict[str, tuple[int, int]] = field(default_factory=dict)  # stream -> (events, alerts)
    # The learning copies to teach once committed, with their input partition (models.checkpoints).
    learn: list[tuple[ScoringModel, BatchScores, tuple[str, int]]] = field(default_factory=list)
    arrived: float = 0.0  # monotonic time its first message was handed over
    group_metadata: Any = None  # --eos: the consumer group metadata when the batch was consumed
    undeliverable: int = 0  # outputs replaced by dead letters (set by the publisher)
    stand_ins: list[Output] = field(default_factory=list)  # those dead letters
    # Per source partition: its assignment token when consumed (see Publisher.note_assigned), and
    # the (events, dead letters) it holds, taken off the counts when the partition is left out.
    tokens: dict[tuple[str, int], int] = field(default_factory=dict)
    per_partition: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)


def is_permanent(error: KafkaError) -> bool:
    return error.code() in PERMANENT_PRODUCE_ERRORS


class Publisher:
    """Publishes and commits submitted batches in order, in a thread of its own."""

    def __init__(
        self,
        producer: Producer,
        consumer: Consumer,
        *,
        eos: bool,
        worker_id: str,
        dead_letter_topic: str,
        faults: Faults = NO_FAULTS,
        on_undeliverable: Callable[[str, str], None] | None = None,
        renew_producer: Callable[[], Producer] | None = None,
        committed: Callable[[list[TopicPartition], float], list[TopicPartition]] | None = None,
        guard: Watchdog | None = None,
        stop: StopFlag | None = None,
        transaction_timeout_s: float = 30.0,
        recovery_s: float = 300.0,
        while_waiting: Callable[[], None] | None = None,
    ) -> None:
        self.producer = producer
        self.consumer = consumer
        self.eos = eos
        # --eos recovery: a new transactional producer (init_transactions done), and the group's
        # committed offsets (asked of a client of its own: the publisher never calls the consumer).
        self.renew_producer = renew_producer
        self.committed_offsets = committed
        self.guard = guard if guard is not None else watchdog()
        self.stop = stop if stop is not None else StopFlag(install=False)
        self.transaction_timeout_s = transaction_timeout_s
        self.recovery_s = recovery_s
        self.renewals = 0  # producers recreated after a stuck or failed transaction
        # True while a batch is being retried (an outage): the worker thread then keeps its consumer
        # polled while it waits (``while_waiting``), or a lost session is never noticed and rejoined.
        self.recovering = False
        self.while_waiting = while_waiting or self.serve
        self.generation: dict[tuple[str, int], int] = {}  # partition -> token of its assignment
        self._assignments = 0
        self.worker_id = worker_id
        self.dead_letter_topic = dead_letter_topic
        self.faults = faults
        self.on_undeliverable = on_undeliverable
        self.inbox: queue.Queue[ScoredBatch | None] = queue.Queue(maxsize=1)
        self.done: queue.Queue[ScoredBatch] = queue.Queue()
        self.error: BaseException | None = None
        self.committed = 0  # batches done (published; under --eos committed)
        self.retried_batches = 0
        self._submitted = 0
        self._finished = 0
        self._progress = threading.Condition()
        self._failures: list[tuple[KafkaError, Message]] = []
        self._asked = threading.Event()
        self._answered = threading.Event()
        self._answer: tuple[Any, dict[tuple[str, int], int]] | None = None
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)

    # -- the producer's delivery callback (set as its ``on_delivery``, errors only) --------------
    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append((error, message))

    # -- the worker thread's side -----------------------------------------------------------------
    def start(self) -> Publisher:
        self._thread.start()
        return self

    @property
    def in_flight(self) -> int:
        """Batches submitted and not yet published (under --eos: committed)."""
        with self._progress:
            return self._submitted - self._finished

    def note_assigned(self, partitions: list[TopicPartition]) -> None:
        """The worker thread's on_assign: these partitions start a new assignment. A batch consumed
        under an earlier one (before a lost session, say) is not committed for them."""
        self._assignments += 1
        for tp in partitions:
            self.generation[(tp.topic, tp.partition)] = self._assignments

    def note_lost(self, partitions: list[TopicPartition]) -> None:
        """The worker thread's on_lost (and on_revoke, once drained): batches consumed before are
        not committed for these partitions, even if the broker would still take their offsets (it
        can, right after it restarted): a later batch committed past a dropped one skips its gap."""
        self._assignments += 1
        for tp in partitions:
            self.generation[(tp.topic, tp.partition)] = self._assignments

    def serve(self) -> None:
        """Answer the publisher's question for the consumer's group state, if it asked. Called by the
        thread that polls the consumer, between polls and while it waits for the publisher."""
        if self._asked.is_set():
            self._asked.clear()
            assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
            tokens = {key: -1 for key in self.generation}  # not assigned now: gone
            tokens.update({key: self.generation.get(key, 0) for key in assigned})
            self._answer = (self.consumer.consumer_group_metadata(), tokens)
            self._answered.set()

    def submit(self, batch: ScoredBatch) -> bool:
        """Queue a batch; blocks while one is already waiting (back-pressure on the worker). False
        when a stop was asked for meanwhile: the batch is not queued (its offsets are not committed,
        so it is read again by the next owner)."""
        while True:
            self.raise_if_failed()
            self.while_waiting()
            try:
                self.inbox.put(batch, timeout=0.01)
                break
            except queue.Full:
                if self.stop:
                    return False
        with self._progress:
            self._submitted += 1
        return True

    def drain(self) -> None:
        """Wait until every submitted batch is published (or the publisher failed: raised). After a
        stop this is bounded by the process's grace period (stream.signals.ShutdownBound)."""
        while True:
            self.while_waiting()
            with self._progress:
                if self._finished >= self._submitted or self.error is not None:
                    break
                self._progress.wait(0.01)
        self.raise_if_failed()

    def abandoned(self) -> str:
        """What a stop past the grace period leaves behind (for its one line)."""
        with self._progress:
            batches = self._submitted - self._finished
        guarantee = "their transactions are aborted" if self.eos else "they are re-delivered"
        return f"{batches} batches in flight, not committed ({guarantee}; nothing is lost)"

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise DeliveryFailedError(f"the publisher stopped: {self.error}") from self.error

    def close(self, timeout: float = 120.0) -> None:
        """Publish what is queued, then stop the thread."""
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self.serve()
            try:
                self.inbox.put(None, timeout=0.01)
                break
            except queue.Full:
                continue
        while self._thread.is_alive() and time.monotonic() < deadline:
            self.serve()
            self._thread.join(0.01)

    # -- the publisher thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                batch = self.inbox.get()
                if batch is None:
                    return
                started = time.monotonic()
                if self.eos:
                    self._publish_transaction(batch)
                else:
                    self._publish(batch)
                self.recovering = False
                log.debug(
                    "batch %d: %d outputs published in %.1f ms",
                    batch.number,
                    len(batch.outputs),
                    (time.monotonic() - started) * 1000,
                )
                self.committed += 1
                self.done.put(batch)
                with self._progress:
                    self._finished += 1
                    self._progress.notify_all()
        except BaseException as exc:  # handed to the worker thread, which raises it
            self.error = exc
            with self._progress:
                self._progress.notify_all()

    def _publish(self, batch: ScoredBatch) -> None:
        """At-least-once: produce until every output is acknowledged (the worker commits).

        Only transient failures use up retries. A round whose failures are all permanent still has
        its replacement dead letters to deliver: it is followed by another round, whatever the retry
        count (it used to end the loop on the last attempt, and the batch was committed with its dead
        letters built and never produced). That ends: a refused dead letter is not replaced again.
        """
        outputs, retries, rounds = batch.outputs, 0, 0
        while outputs:
            self._failures = []
            self._produce(outputs, batch, singly=rounds > 0)
            self._flush()
            rounds += 1
            if not self._failures:
                return
            error = self._failures[0][0]
            outputs, transient = self._retry_list(batch, singly=rounds > 1)
            if not transient:
                continue
            if retries == MAX_DELIVERY_RETRIES:
                raise DeliveryFailedError(f"{len(outputs)} outputs of batch {batch.number} failed: {error}")
            self.recovering = True
            self._back_off(retries, batch, error)
            retries += 1

    def _group_state(self) -> tuple[Any, dict[tuple[str, int], int]]:
        """The consumer's group metadata and assignment now, from the thread that polls it."""
        self._answered.clear()
        self._asked.set()
        deadline = time.monotonic() + 300
        while not self._answered.wait(0.1):
            if time.monotonic() > deadline:
                raise DeliveryFailedError("the worker thread did not answer for the consumer's group state")
        assert self._answer is not None
        return self._answer

    def _publish_transaction(self, batch: ScoredBatch) -> None:
        """One transaction: outputs, offsets, commit. Retried through an outage (see the module)."""
        outputs, offsets, metadata = batch.outputs, batch.offsets, batch.group_metadata
        timeout = self.transaction_timeout_s
        give_up = time.monotonic() + self.recovery_s
        attempt = 0
        while True:
            self._failures = []
            committing = renewed = False
            outputs, offsets = self._still_assigned(outputs, offsets, dict(self.generation), batch)
            if not offsets:
                log.warning(
                    "batch %d: its partitions were lost meanwhile: left to be read again", batch.number
                )
                return
            try:
                self.producer.begin_transaction()
                outputs = self._produce(outputs, batch, singly=attempt > 0)
                self._call("send_offsets_to_transaction", timeout, self.producer.send_offsets_to_transaction,
                           offsets, metadata, timeout)  # fmt: skip
                flush = partial(self.producer.flush, 30)
                self.faults.before_commit_transaction(batch.number, self.committed, flush, self.inbox.qsize)
                committing = True
                self._call("commit_transaction", timeout, self.producer.commit_transaction, timeout)
                return
            except StuckCallError as exc:
                self.recovering = True
                error: Any = exc
                renewed = self._renew(give_up)
            except KafkaException as exc:
                self.recovering = True
                error = exc.args[0]
                if error.fatal() and not self._recoverable(error):
                    raise
                renewed = self._abort_or_renew(give_up)
            # A commit that timed out goes on in the background; once the old transaction is settled
            # (abort refused, producer renewed), the group's offsets say whether it landed.
            if committing and renewed and self._landed(offsets):
                log.warning("batch %d: its commit landed before the worker lost track of it: done",
                            batch.number)  # fmt: skip
                return
            attempt += 1
            if time.monotonic() > give_up:
                raise DeliveryFailedError(
                    f"batch {batch.number} not committed after {attempt} attempts in "
                    f"{self.recovery_s:g}s (ANOMSTREAM_RESILIENCE__RECOVERY_S): {error}"
                )
            # Permanently refused outputs are replaced; partitions lost meanwhile are left to their
            # new owner, or to this consumer's new assignment of them.
            outputs = self._replace_refused(outputs, batch, singly=attempt > 1)
            metadata, tokens = self._group_state()  # a rebalance may have moved on
            outputs, offsets = self._still_assigned(outputs, offsets, tokens, batch)
            if not offsets:
                log.warning("batch %d: every partition was reassigned meanwhile: left to be read again",
                            batch.number)  # fmt: skip
                return
            self._back_off(min(attempt - 1, MAX_DELIVERY_RETRIES), batch, error)

    def _call(self, name: str, timeout: float, fn: Callable[..., Any], *args: Any) -> Any:
        return self.guard.call(name, timeout, fn, *args)

    @staticmethod
    def _recoverable(error: KafkaError) -> bool:
        """A fatal error a new producer cures (the old epoch is gone); fencing by another instance
        with our transactional id is not: that one owns the id now."""
        return error.code() not in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                    KafkaError.INVALID_PRODUCER_EPOCH)  # fmt: skip

    def _abort_or_renew(self, give_up: float) -> bool:
        """Abort the open transaction; when that fails or overruns, renew the producer. True when
        the producer was renewed (the old transaction settled by the coordinator)."""
        try:
            self._call("abort_transaction", self.transaction_timeout_s, self.producer.abort_transaction,
                       self.transaction_timeout_s)  # fmt: skip
            return False
        except (KafkaException, StuckCallError) as exc:
            log.warning("abort_transaction failed (%s): recreating the transactional producer", exc)
            return self._renew(give_up)

    def _renew(self, give_up: float) -> bool:
        """Abandon the producer for a new one with the same transactional id, retrying through the
        outage until ``give_up``. The new one's init_transactions fences the old epoch: whatever
        the old one still does is refused. A timed-out init_transactions goes on in the background,
        so it is called again on the same producer (a second new one would be fenced by the first)."""
        if self.renew_producer is None:
            raise DeliveryFailedError("the transactional producer is stuck and cannot be recreated here")
        timeout = self.transaction_timeout_s
        producer, attempt = self.renew_producer(), 0
        while True:
            try:
                self._call("init_transactions", timeout, producer.init_transactions, timeout)
                self.producer = producer
                self.renewals += 1
                log.warning("transactional producer recreated (%d so far): the old one is fenced",
                            self.renewals)  # fmt: skip
                return True
            except StuckCallError as exc:
                failure: Exception = exc
                producer = self.renew_producer()  # that one is stuck too
            except KafkaException as exc:
                failure = exc
                if exc.args[0].fatal():
                    producer = self.renew_producer()
            if time.monotonic() > give_up:
                raise DeliveryFailedError(
                    f"no transactional producer could be recreated within {self.recovery_s:g}s "
                    f"(ANOMSTREAM_RESILIENCE__RECOVERY_S): {failure}"
                ) from failure
            log.warning("recreating the transactional producer: %s; retrying", failure)
            time.sleep(min(2**attempt * 0.5, 5))
            attempt += 1

    def _landed(self, offsets: list[TopicPartition]) -> bool:
        """Whether the group's committed offsets already cover ``offsets`` (a commit that landed)."""
        if self.committed_offsets is None or not offsets:
            return False
        try:
            now = self.committed_offsets([TopicPartition(tp.topic, tp.partition) for tp in offsets],
                                         self.transaction_timeout_s)  # fmt: skip
        except (KafkaException, StuckCallError) as exc:
            log.warning("cannot read the group's committed offsets (%s): the batch is retried", exc)
            return False
        wanted = {(tp.topic, tp.partition): tp.offset for tp in offsets}
        return all(tp.offset >= wanted[(tp.topic, tp.partition)] for tp in now)

    def _produce(self, outputs: list[Output], batch: ScoredBatch, singly: bool = False) -> list[Output]:
        """Produce every output (``singly``: each in a request of its own, flushed before the next);
        returns what was produced, permanent refusals already replaced."""
        produce, poll = self.producer.produce, self.producer.poll
        produced = outputs
        for index, output in enumerate(outputs):
            topic, value, key, headers, _ = output
            while True:
                try:
                    produce(topic, value, key, headers=headers)
                    break
                except BufferError:  # the local queue is full: serve delivery reports, then retry
                    poll(0.05)
                except KafkaException as exc:
                    if not is_permanent(exc.args[0]):
                        raise
                    if produced is outputs:
                        produced = list(outputs)
                    stand_in = self._stand_in(output, exc.args[0], batch)
                    if stand_in is None:
                        produced[index] = None  # type: ignore[call-overload]
                        break
                    output = produced[index] = stand_in
                    topic, value, key, headers, _ = stand_in
            if singly:
                self._call("flush", FLUSH_TIMEOUT_S, self.producer.flush, FLUSH_TIMEOUT_S)
        poll(0)
        return [o for o in produced if o is not None] if produced is not outputs else outputs

    def _stand_in(self, output: Output, error: KafkaError, batch: ScoredBatch) -> Output | None:
        """The dead letter that replaces an output refused for good; None when the refused output was
        a dead letter itself (then it is recorded in the log and the metric only)."""
        topic, value, key, _, source = output
        reason = "Oversize" if error.code() in SIZE_ERRORS else "Undeliverable"
        batch.undeliverable += 1
        if self.on_undeliverable is not None:
            self.on_undeliverable(topic, reason)
        where = f"{source.topic()} [{source.partition()}] offset {source.offset()}"
        if topic == self.dead_letter_topic:
            log.error("dead letter for %s refused for good (%s): recorded here only", where, error)
            return None
        log.warning("%s output of %s refused for good (%s): dead-lettered instead", topic, where, error)
        message = f"{error.name()}: {error.str()}"
        dl_key, dl_value, dl_headers = undeliverable(
            topic, key, value, source, reason, message, self.worker_id
        )
        stand_in = Output(self.dead_letter_topic, dl_value, dl_key, dl_headers, source)
        batch.stand_ins.append(stand_in)
        return stand_in

    def _retry_list(self, batch: ScoredBatch, singly: bool = True) -> tuple[list[Output], bool]:
        """At-least-once: what to produce again after failures (the failed outputs only, refused ones
        replaced by dead letters), and whether any failure was transient.

        A size refusal of an output produced with others (``singly`` False) may be its message set's,
        not its own: it is produced again alone before it is judged (it was dead-lettered at once, so
        a small output batched with a large one became a dead letter too)."""
        failures, self._failures = self._failures, []
        by_content = {(o.topic, o.value): o for o in (*batch.outputs, *batch.stand_ins)}
        again: list[Output] = []
        transient = False
        for error, message in failures:
            original = by_content.get((message.topic(), message.value()))
            if original is None:
                raise DeliveryFailedError(f"a delivery report for an output of no batch: {error}")
            if (
                is_permanent(error)
                and error.code() in SIZE_ERRORS
                and not singly
                and original in batch.outputs
            ):
                again.append(original)
            elif is_permanent(error):
                stand_in = self._stand_in(original, error, batch)
                if stand_in is not None:
                    again.append(stand_in)
            else:
                transient = True
                again.append(original)
        # librdkafka does not split a message set the broker refused as a whole: outputs produced
        # again go one at a time (see _produce), so a small one batched with a large one gets its
        # own chance.
        return again, transient

    def _replace_refused(
        self, outputs: list[Output], batch: ScoredBatch, singly: bool = True
    ) -> list[Output]:
        """In a transaction every output is produced again; those refused for good are replaced (a
        size refusal of one produced with others only once it was produced alone: see _retry_list)."""
        failures, self._failures = self._failures, []
        refused = {(m.topic(), m.value()): e for e, m in failures
                   if is_permanent(e) and (singly or e.code() not in SIZE_ERRORS)}  # fmt: skip
        if not refused:
            return outputs
        kept: list[Output] = []
        for output in outputs:
            error = refused.get((output.topic, output.value))
            if error is None:
                kept.append(output)
                continue
            stand_in = self._stand_in(output, error, batch)
            if stand_in is not None:
                kept.append(stand_in)
        return kept

    @staticmethod
    def _still_assigned(
        outputs: list[Output],
        offsets: list[TopicPartition],
        tokens: dict[tuple[str, int], int],
        batch: ScoredBatch,
    ) -> tuple[list[Output], list[TopicPartition]]:
        """What of a batch is still this consumer's to commit: partitions held without a break
        since the batch was consumed (same assignment token; -1: not assigned now). The rest is
        read again."""
        keys = {(tp.topic, tp.partition) for tp in offsets}
        held = {key for key in keys if tokens.get(key, 0) == batch.tokens.get(key, 0)}
        gone = keys - held
        if gone:
            for key in gone:
                events, dead = batch.per_partition.get(key, (0, 0))
                batch.events -= events
                batch.dead_letters -= dead
            batch.learn = []  # learnt only from whole committed batches: never twice
            log.warning("batch %d: %s reassigned since it was consumed: left to be read again",
                        batch.number, sorted(f"{t}[{p}]" for t, p in gone))  # fmt: skip
        kept = [o for o in outputs if (o.source.topic(), o.source.partition()) in held]
        return kept, [tp for tp in offsets if (tp.topic, tp.partition) in held]

    def _flush(self) -> None:
        """At-least-once: wait until every output is acknowledged, through an outage of up to
        2 x FLUSH_TIMEOUT_S (librdkafka retries them meanwhile), each flush under the watchdog."""
        deadline = time.monotonic() + 2 * FLUSH_TIMEOUT_S
        while True:
            budget = min(FLUSH_TIMEOUT_S, max(deadline - time.monotonic(), 0.1))
            if not self._call("flush", budget, self.producer.flush, budget):
                return
            if time.monotonic() > deadline:
                raise DeliveryFailedError(f"{len(self.producer)} outputs still unacknowledged")

    def _back_off(self, attempt: int, batch: ScoredBatch, error: Any) -> None:
        self.retried_batches += 1
        log.warning("batch %d: delivery failed (%s): retrying (attempt %d)", batch.number, error, attempt + 2)
        time.sleep(min(2**attempt * 0.2, 5))
