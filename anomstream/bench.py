"""``anomstream bench``: how fast the pipeline is, as ratios that survive a change of machine.

Measured in one run, on one broker, with the production KDD model and real connections:

* ``wire_limit_eps``: a bare consumer reading the same messages (no decoding, no scoring): the most
  any Python worker could consume here.
* ``worker_eps`` / ``worker_eos_eps``: the scoring worker (at-least-once / exactly-once) on a
  pre-filled topic, from its first batch to its last commit.
* ``naive_predict_eps``: the anti-pattern: decode one message, call ``model.predict`` on it, repeat.
* ``latency_ms``: event time -> alert published, for a worker process under a steady replay.
* ``worker_rss_mb``: that worker process's resident memory before and after the replay.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from consumers.supervisor import worker_command
from consumers.worker import ScoringWorker
from models.registry import Registry
from producers.kdd import kdd_events, load_kdd_replay
from producers.replay import ReplayProducer
from stream.broker import EmbeddedBroker, temporary_broker
from stream.kafka import check_message, create_topics, iter_topic, make_consumer
from stream.settings import Settings
from stream.signals import StopFlag


@dataclass
class BenchConfig:
    events: int = 200_000
    naive_events: int = 300
    latency_seconds: float = 20.0
    # Default: a quarter of the measured worker rate. The replay producer and the broker share the
    # machine with the worker; at half its rate a 2-core machine measured queueing, not the pipeline.
    latency_rate: float | None = None


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Benchmark:
    def __init__(self, settings: Settings, config: BenchConfig, console: Console) -> None:
        self.base = settings
        self.config = config
        self.console = console

    # -- set-up ---------------------------------------------------------------------------------
    def _cluster(self, stack: contextlib.ExitStack) -> Settings:
        """The configured cluster, the settings' running embedded broker, or a temporary one."""
        if not self.base.embedded_broker or EmbeddedBroker.for_settings(self.base).running():
            return self.base
        with self.console.status("starting a temporary Kafka broker..."):
            broker = stack.enter_context(temporary_broker())
        return self.base.model_copy(update={"bootstrap_servers": broker.bootstrap})

    def _fresh(self, settings: Settings, tag: str) -> Settings:
        fresh = settings.model_copy(
            update={
                "topic_prefix": f"bench-{uuid.uuid4().hex[:6]}-{tag}.",
                "group_id": f"bench-{tag}-{uuid.uuid4().hex[:6]}",
            }
        )
        create_topics(fresh)
        return fresh

    def _prefill(self, settings: Settings) -> float:
        frame, source = load_kdd_replay(settings.data_dir, "test", announce=self.console.print)
        events = kdd_events(frame, source, loop=True, limit=self.config.events)
        producer = ReplayProducer(
            settings, settings.topic("kdd"), rate=0, progress=True, stop=StopFlag(False)
        )
        stats = producer.run(events, self.config.events, description="prefill")
        return stats.rate

    # -- measurements ---------------------------------------------------------------------------
    def _wire_limit(self, settings: Settings) -> float:
        consumer = make_consumer(settings, settings.group_id + "-wire")
        consumer.subscribe([settings.topic("kdd")])
        seen, first = 0, None
        deadline = time.monotonic() + 120
        while seen < self.config.events and time.monotonic() < deadline:
            messages = consumer.consume(settings.batch_size, 0.5)
            if messages and first is None:
                first = time.perf_counter()
            for message in messages:
                if check_message(message):
                    message.value()
                    seen += 1
        elapsed = time.perf_counter() - (first or time.perf_counter())
        consumer.close()
        return seen / elapsed if elapsed else 0.0

    def _worker(self, settings: Settings, eos: bool) -> float:
        tagged = settings.model_copy(update={"group_id": settings.group_id + ("-eos" if eos else "-alo")})
        worker = ScoringWorker(
            tagged, ["kdd"], eos=eos, worker_id=f"bench-{os.getpid()}", stop=StopFlag(False)
        )
        stats = worker.run(max_events=self.config.events)
        return stats.rate

    def _naive(self, settings: Settings) -> float:
        """One message at a time: decode, encode, ``model.predict`` (the anti-pattern batching replaces)."""
        from consumers.decoding import decode_kdd

        model = Registry(settings.registry_dir).load("kdd")
        keras_model = getattr(model.detector, "model_", None)
        consumer = make_consumer(settings, settings.group_id + "-naive")
        consumer.subscribe([settings.topic("kdd")])
        messages: list[Any] = []
        deadline = time.monotonic() + 60
        while len(messages) < self.config.naive_events and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(self.config.naive_events, 1.0) if check_message(m)]
        consumer.close()
        started = time.perf_counter()
        for message in messages[: self.config.naive_events]:
            X = model.encoder.transform(decode_kdd([message]).raw)
            if keras_model is not None:
                keras_model.predict(X, verbose=0)
            else:
                model.detector.score(X)
        return self.config.naive_events / (time.perf_counter() - started)

    def _latency_and_memory(self, settings: Settings, rate: float) -> tuple[dict, dict]:
        env = settings.environment()
        log = settings.state_dir / "bench-worker.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        worker = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            worker_command("--streams", "kdd"),
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while "assigned" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.5)
            rss_start = _rss_mb(worker.pid)
            n = int(rate * self.config.latency_seconds)
            frame, source = load_kdd_replay(settings.data_dir, "test", announce=lambda _: None)
            replay = ReplayProducer(
                settings, settings.topic("kdd"), rate=rate, progress=True, stop=StopFlag(False)
            )
            replay.run(
                kdd_events(frame, source, loop=True, limit=n), n, description=f"replay at {rate:,.0f}/s"
            )
            time.sleep(3)  # let the last batches land
            rss_end = _rss_mb(worker.pid)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
        delays = []
        for message in iter_topic(settings, settings.topic("alerts")):
            alert = orjson.loads(message.value())
            if alert["event_time"]:
                detected = datetime.fromisoformat(alert["detected_at"])
                delays.append((detected - datetime.fromisoformat(alert["event_time"])).total_seconds() * 1000)
        p50, p99 = (float(np.percentile(delays, q)) for q in (50, 99)) if delays else (float("nan"),) * 2
        return (
            {"p50": round(p50, 1), "p99": round(p99, 1), "rate_eps": round(rate)},
            {"start": round(rss_start, 1), "end": round(rss_end, 1), "events": n},
        )

    # -- run ------------------------------------------------------------------------------------
    def run(self, out: Path) -> dict[str, Any]:
        with contextlib.ExitStack() as stack:
            cluster = self._cluster(stack)
            if Registry(cluster.registry_dir).production("kdd") is None:
                from models.training import TrainingRequest, train

                self.console.print("no KDD model: training the default autoencoder first")
                request = TrainingRequest("kdd", "ae", allow_synthetic=True)
                train(Registry(cluster.registry_dir), cluster.data_dir, request)
            settings = self._fresh(cluster, "load")
            produce_eps = self._prefill(settings)
            with self.console.status("measuring: bare consumer (wire limit)..."):
                wire = self._wire_limit(settings)
            with self.console.status("measuring: scoring worker, at-least-once..."):
                alo = self._worker(settings, eos=False)
            with self.console.status("measuring: scoring worker, exactly-once..."):
                eos = self._worker(settings, eos=True)
            with self.console.status(f"measuring: model.predict per message ({self.config.naive_events})..."):
                naive = self._naive(settings)
            rate = self.config.latency_rate or round(alo / 4, -2)
            latency, rss = self._latency_and_memory(self._fresh(cluster, "latency"), rate)
        result = {
            "wire_limit_eps": round(wire),
            "worker_eps": round(alo),
            "worker_eos_eps": round(eos),
            "naive_predict_eps": round(naive, 1),
            "latency_ms": latency,
            "worker_rss_mb": rss,
            "produce_eps": round(produce_eps),
            "events": self.config.events,
            "batch_size": cluster.batch_size,
            "cpu_count": os.cpu_count(),
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
        self.console.print(self.table(result))
        return result

    @staticmethod
    def table(result: dict[str, Any]) -> Table:
        table = Table(title="anomstream bench (KDD, production model)")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_column("ratio", justify="right")
        wire, alo = result["wire_limit_eps"], result["worker_eps"]
        table.add_row("wire limit (bare consumer)", f"{wire:,} ev/s", "1.00 x wire")
        table.add_row("worker, at-least-once", f"{alo:,} ev/s", f"{alo / wire:.2f} x wire")
        table.add_row(
            "worker, exactly-once",
            f"{result['worker_eos_eps']:,} ev/s",
            f"{result['worker_eos_eps'] / alo:.2f} x ALO",
        )
        table.add_row(
            "naive model.predict per message",
            f"{result['naive_predict_eps']:,} ev/s",
            f"worker is {alo / result['naive_predict_eps']:,.0f} x faster",
        )
        lat = result["latency_ms"]
        table.add_row(
            f"latency at {lat['rate_eps']:,} ev/s", f"p50 {lat['p50']} ms / p99 {lat['p99']} ms", ""
        )
        rss = result["worker_rss_mb"]
        table.add_row("worker RSS", f"{rss['start']} -> {rss['end']} MB", f"over {rss['events']:,} events")
        return table
