"""Helpers for the outage tests: settings with short deadlines, a broker outage, and the figures."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaException

from producers.kdd import kdd_events
from producers.replay import ReplayProducer, ReplayStats
from stream.broker import EmbeddedBroker
from stream.kafka import create_topics, read_all
from stream.kafka.watchdog import StuckCallError, Watchdog
from stream.settings import ResilienceSettings, Settings
from stream.signals import StopFlag
from tests.support.data import corrected_sample
from tests.support.streams import input_offsets, make_settings, score_records, scored_offsets

# Longer than the workers' 10 s session timeout: their group membership is lost, not just paused.
DOWN_S = 12.0
# Short deadlines, so an outage test takes a minute, not ten.
RESILIENCE = ResilienceSettings(
    call_margin_s=5,
    transaction_timeout_s=10,
    recovery_s=120,
    rejoin_s=20,
    shutdown_grace_s=10,
    stall_after_s=8,
)
RECOVERY_BOUND_S = 90.0  # from the broker answering again to every replayed event scored


def outage_settings(broker: EmbeddedBroker, registry: Path) -> Settings:
    settings = make_settings(broker.bootstrap, registry, batch_size=500, resilience=RESILIENCE)
    create_topics(settings)
    return settings


def outage(broker: EmbeddedBroker, down_s: float = DOWN_S) -> tuple[float, float]:
    """Stop the broker (as `anomstream broker stop` does), keep it down ``down_s``, start it again
    (same port, same data); returns (stopped, answering again) as monotonic times."""
    stopped = time.monotonic()
    broker.stop()
    time.sleep(down_s)  # the outage itself, not a wait for a result
    broker.start()
    return stopped, time.monotonic()


class BackgroundReplay:
    """A paced replay of ``n`` real connections in a thread: the replay under test for the outage."""

    def __init__(self, settings: Settings, n: int, rate: float, seed: int = 19) -> None:
        frame = corrected_sample(settings.data_dir, n, seed=seed)
        self.producer = ReplayProducer(
            settings, settings.topic("kdd"), rate=rate, progress=False, stop=StopFlag(False)
        )
        self.stats: ReplayStats | None = None
        self._thread = threading.Thread(target=self._run, args=(frame,), name="replay", daemon=True)

    def _run(self, frame: Any) -> None:
        self.stats = self.producer.run(kdd_events(frame, "corrected"))

    def start(self) -> BackgroundReplay:
        self._thread.start()
        return self

    def join(self, timeout: float) -> ReplayStats:
        self._thread.join(timeout)
        assert self.stats is not None, "the replay did not finish"
        return self.stats


@dataclass
class Tally:
    """What the topics say after an outage: every input offset's score records and alert ids."""

    inputs: int
    scored: int
    lost: int
    doubled: int
    alerts_doubled: int

    @classmethod
    def of(cls, settings: Settings) -> Tally:
        counts = scored_offsets(score_records(settings))
        inputs = input_offsets(settings)
        alerts = Counter(
            orjson.loads(m.value())["alert_id"] for m in read_all(settings, settings.topic("alerts"))
        )
        return cls(
            inputs=len(inputs),
            scored=len(set(counts) & inputs),
            lost=len(inputs - set(counts)),
            doubled=sum(1 for n in counts.values() if n > 1),
            alerts_doubled=sum(1 for n in alerts.values() if n > 1),
        )


def all_scored(settings: Settings, n: int) -> Callable[[], bool]:
    """A condition for wait_until: ``n`` input offsets scored (False while the broker cannot say yet,
    e.g. leaders still moving right after its restart)."""

    def check() -> bool:
        try:
            return len(scored_offsets(score_records(settings))) >= n
        except KafkaException:
            return False

    return check


class OverrunAt(Watchdog):
    """A watchdog that makes the ``nth`` call of ``step`` overrun, with the broker stopped at that
    exact step: the path a librdkafka hang takes (#5456, #5511), on demand.

    ``commit_transaction``: the commit is made and lands, then the broker stops and the worker never
    hears of it (it must find the commit landed, not publish the batch twice). Any other step: the
    broker stops instead of the call (the open transaction must be fenced and aborted). The broker
    starts again ``down_s`` later, in the background.
    """

    def __init__(self, broker: EmbeddedBroker, step: str, nth: int = 3, down_s: float = 3.0) -> None:
        super().__init__(margin_s=RESILIENCE.call_margin_s)
        self.broker, self.step, self.nth, self.down_s = broker, step, nth, down_s
        self.seen = 0
        self.fired = threading.Event()
        self.restarted = threading.Event()

    def call(self, name: str, timeout: float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if name == self.step and not self.fired.is_set():
            self.seen += 1
            if self.seen == self.nth:
                self.fired.set()
                if name == "commit_transaction":
                    fn(*args, **kwargs)
                self.broker.stop()
                threading.Thread(target=self._restart, daemon=True).start()
                self.overruns += 1
                raise StuckCallError(name, timeout, self.margin_s)
        return super().call(name, timeout, fn, *args, **kwargs)

    def _restart(self) -> None:
        time.sleep(self.down_s)  # the outage itself
        self.broker.start()
        self.restarted.set()
