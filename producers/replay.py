"""Replay a dataset into a topic as a live stream: paced, idempotent, counted, interruptible."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from stream.kafka import DeliveryTracker, make_admin, make_producer, partitions_of, produce, wait_for_broker
from stream.kafka.watchdog import StuckCallError, guarded
from stream.settings import Settings
from stream.signals import ShutdownBound, StopFlag

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """One message to replay. ``label`` goes into the ``label`` header, never into the value;
    ``headers`` are added after it (a drift scenario's ``drift.phase``)."""

    key: bytes | None
    value: bytes
    label: str | None = None
    timestamp_ms: int = 0  # 0: the broker-side CreateTime is "now"
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class ReplayStats:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def repeat(events: Sequence[Event], loop: bool = False, limit: int | None = None) -> Iterator[Event]:
    """``events`` once, or over and over with ``loop`` (an empty list ends at once), at most ``limit``.

    >>> [e.key for e in repeat([Event(b"a", b""), Event(b"b", b"")], loop=True, limit=3)]
    [b'a', b'b', b'a']
    """
    return itertools.islice(itertools.cycle(events) if loop and events else iter(events), limit)


class Clock(Protocol):
    """What a pacer reads and waits on: the wall clock in a replay, a fake one in a test."""

    def now(self) -> float:
        """Seconds, from any fixed origin."""
        ...

    def sleep(self, seconds: float, stop: StopFlag) -> None:
        """Wait ``seconds``, or less when ``stop`` is set meanwhile."""
        ...


class WallClock:
    def now(self) -> float:
        return time.perf_counter()

    def sleep(self, seconds: float, stop: StopFlag) -> None:
        stop.wait(seconds)


class Pacer:
    """Sleeps just enough to hold ``rate`` events/s on average (0 = as fast as possible).

    >>> class Fake:  # a clock that moves only when slept on
    ...     t = 0.0
    ...     def now(self): return self.t
    ...     def sleep(self, seconds, stop): self.t += seconds
    >>> clock = Fake()
    >>> pacer = Pacer(1000, clock)
    >>> pacer.wait(500, StopFlag(install=False))  # 500 events sent at once: wait until they are due
    >>> clock.t
    0.5
    """

    def __init__(self, rate: float, clock: Clock | None = None) -> None:
        self.rate = rate
        self.clock = clock if clock is not None else WallClock()
        self.start = self.clock.now()
        # Events sent between two waits: one sleep per chunk keeps the overhead per event negligible.
        self.chunk = max(1, min(1000, int(rate / 100))) if rate > 0 else 1000

    def wait(self, sent: int, stop: StopFlag) -> None:
        if self.rate <= 0:
            return
        ahead = self.start + sent / self.rate - self.clock.now()
        if ahead > 0:
            self.clock.sleep(ahead, stop)


class ReplayProducer:
    """Produces events to ``topic`` with an idempotent producer; Ctrl-C flushes and returns.

    For example::

        stats = ReplayProducer(Settings(), "kdd.connections", rate=1000).run(events)
        stats.delivered == stats.sent
        # -> True
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        rate: float = 0.0,
        progress: bool = True,
        stop: StopFlag | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.rate = rate
        self.progress = progress
        self.stop = stop if stop is not None else StopFlag()
        self.pacer = pacer  # paces instead of ``rate`` (e.g. by the series' own timestamps)

    def run(
        self, events: Iterable[Event], total: int | None = None, description: str = "replay"
    ) -> ReplayStats:
        """Produce ``events``; returns the counts. Before the first event, the broker must answer and
        the topic must exist (BrokerUnavailableError / TopicMissingError say what to do), so a replay
        never reports thousands of failed deliveries after a progress bar that looked complete."""
        wait_for_broker(self.settings, timeout=15)
        partitions_of(make_admin(self.settings), self.topic)
        producer = make_producer(self.settings)
        tracker = DeliveryTracker()
        stats = ReplayStats()
        grace = self.settings.resilience.shutdown_grace_s
        bound = ShutdownBound(grace, "replay", lambda: f"{len(producer)} events not acknowledged by the "
                              "broker (not replayed: a replay is not resumable)").arm(self.stop)  # fmt: skip
        pacer = self.pacer if self.pacer is not None else Pacer(self.rate)
        chunk = pacer.chunk
        started = time.perf_counter()
        bar = _progress_bar(self.progress)
        task = bar.add_task(description, total=total)
        with bar:
            try:
                for event in events:
                    if self.stop:
                        stats.interrupted = True
                        break
                    headers = [("label", event.label.encode())] if event.label is not None else []
                    headers += event.headers
                    if not produce(producer, self.topic, event.value, event.key, headers or None, tracker,
                                   event.timestamp_ms, stop=self.stop):  # fmt: skip
                        stats.interrupted = True  # stopped while the broker was away: queue full
                        break
                    stats.sent += 1
                    if stats.sent % chunk == 0:
                        producer.poll(0)
                        bar.update(task, completed=stats.sent)
                        pacer.wait(stats.sent, self.stop)
            except KeyboardInterrupt:
                stats.interrupted = True
            finally:
                # Stopped: wait what the grace period allows (the bound ends the process after it).
                wait = (
                    60.0 if not self.stop else max(0.1, grace - (time.monotonic() - (self.stop.since or 0)))
                )
                try:
                    remaining = guarded("flush", wait, producer.flush, wait)
                except StuckCallError:
                    remaining = len(producer)
                bar.update(task, completed=stats.sent)
                bound.finished()
        stats.seconds = time.perf_counter() - started
        stats.delivered, stats.failed = tracker.delivered, tracker.failed + remaining
        if tracker.first_error is not None:
            stats.errors.append(str(tracker.first_error))
        if remaining:
            stats.errors.append(f"{remaining} messages still queued after 60s flush")
        return stats


class RateColumn(ProgressColumn):
    """Achieved events per second (blank until rich has measured a speed)."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} ev/s" if task.speed else "", style="cyan")


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
        refresh_per_second=4,
    )
