"""``anomstream bench``: how fast the pipeline is, as ratios that survive a change of machine.

Measured in one run, on one broker, with the production KDD model and real connections, each figure
the median of ``repetitions`` (3) with its [min, max] under ``spread``:

* ``wire_limit_eps``: a bare consumer reading the same messages (no decoding, no scoring): the most
  any Python worker could consume here.
* ``worker_eps`` / ``worker_eos_eps``: the scoring worker (at-least-once / exactly-once) on a
  pre-filled topic, from its first batch to its last commit: on ``corrected`` (80% of events alert)
  and, under ``streams``, on a mostly-normal stream as well (about 3% alert).
* ``naive_predict_eps``: the anti-pattern: decode one message, call ``model.predict`` on it, repeat.
* ``latency_curve``: event time -> alert acknowledged by the broker (the alerts topic stamps
  LogAppendTime), p50 and p99 for a worker process under a steady replay at 1,000, 5,000 and 20,000
  events/s and at the worker's measured maximum; ``latency_ms`` is its 5,000 events/s point. The
  curve is drawn in ``latency_curve.png`` beside ``bench.json``.
* ``worker_rss_mb``: that worker process's resident memory before and after the latency replays.
* ``replica``: a new worker process (``anomstream worker --streams kdd``) on a pre-filled topic:
  seconds from its start to its first score record (``start_s``; ``start_cpu_s``: the CPU seconds
  it used until then), and its resident memory once it
  has scored ``events`` events (``rss_mb``; ``peak_rss_mb``: its peak), each a median of three starts.
* ``incidents`` (``anomstream/bench_incidents.py``): the incident stage, exactly-once, on the alerts the
  ``corrected`` worker runs published: alerts/s it sustains against the worker's alert output in the
  same run (``ratio`` >= 1.0: it keeps up), and first alert -> incident ``create`` message, p50 and
  p99, under a replay at 5,000 events/s (``create_latency_ms``), every incident checked as OCSF.
* ``--soak``: 2,000,000 events through a worker process as fast as the replay goes; its RSS from
  the end of warm-up (the first 10% of events) to the end (``soak``, ``soak_rss.png``).
* ``--profile``: µs per event in each stage of the worker (``profile_us_per_event``).
* ``--sweep``: the model call alone at batch sizes 1 to 16,384 on whatever device the Keras backend
  sees (``sweep.json``; no broker needed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from confluent_kafka.admin import NewTopic
from rich.console import Console
from rich.table import Table

from anomstream.measurements import (
    CommittedCounter,
    alert_delays_ms,
    median_and_spread,
    percentiles,
    plot_latency_curve,
    plot_soak,
    profile_stages,
    replica_start,
    rss_mb,
    scoring_sweep,
)
from consumers.supervisor import worker_command
from consumers.worker import ScoringWorker
from models.registry import open_registry
from producers.kdd import kdd_events, load_kdd_replay
from producers.replay import ReplayProducer
from stream.broker import EmbeddedBroker, temporary_broker
from stream.kafka import check_message, create_topics, make_admin, make_consumer
from stream.labels import is_attack
from stream.settings import Settings
from stream.signals import StopFlag

LATENCY_RATES = (1_000, 5_000, 20_000)
HEADLINE_RATE = 5_000


@dataclass
class BenchConfig:
    events: int = 200_000
    naive_events: int = 300
    repetitions: int = 3
    latency_seconds: float = 10.0
    # Offered rates of the latency curve; the worker's measured maximum is added when ``curve_max``.
    latency_rates: tuple[float, ...] = LATENCY_RATES
    curve_max: bool = True
    mostly_normal: bool = True
    soak_events: int = 0  # --soak: 2,000,000
    profile_events: int = 0  # --profile: 50,000
    replica_events: int = 10_000  # events a new worker process scores in the replica measurement
    # Kept for the old option: a single latency point at this rate (the curve's only point).
    latency_rate: float | None = None
    # The incident stage (issue 25): its throughput against the worker's alerts, and the latency
    # from an incident's first alert to its create message at this replay rate.
    incidents: bool = True
    incident_rate: float = HEADLINE_RATE


def mostly_normal_frame(frame: pd.DataFrame, attack_share: float = 0.005, seed: int = 0) -> pd.DataFrame:
    """Every normal connection of ``frame`` plus a seeded sprinkle of attacks, shuffled: a stream on
    which few events alert (on ``corrected`` about 3%: the model's false positives on that traffic,
    above the 1% it was calibrated to on the training file's, and the attacks)."""
    attack = is_attack(frame["label"])
    normal = frame[~attack]
    attacks = frame[attack].sample(n=max(1, int(len(normal) * attack_share)), random_state=seed)
    return pd.concat([normal, attacks]).sample(frac=1.0, random_state=seed).reset_index(drop=True)


class Benchmark:
    def __init__(self, settings: Settings, config: BenchConfig, console: Console) -> None:
        self.base = settings
        self.config = config
        self.console = console
        self.spread: dict[str, list[float]] = {}
        # Per throughput stream: its topics (alerts kept for the incident stage) and the alerts one
        # worker run published.
        self.stream_settings: dict[str, Settings] = {}
        self.alerts_per_run: dict[str, int] = {}

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
        # The broker stamps each alert when it appends it: latency is measured to that moment.
        alerts = NewTopic(
            fresh.topic("alerts"),
            fresh.topic_partitions,
            fresh.replication_factor,
            config={"message.timestamp.type": "LogAppendTime"},
        )
        admin = make_admin(fresh)  # held until the future resolves: a collected client cancels it
        admin.create_topics([alerts])[fresh.topic("alerts")].result()
        create_topics(fresh)
        return fresh

    def _frame(self, settings: Settings) -> tuple[pd.DataFrame, str]:
        if not hasattr(self, "_kdd"):
            self._kdd = load_kdd_replay(settings.data_dir, "test", announce=self.console.print)
        return self._kdd

    def _prefill(self, settings: Settings, frame: pd.DataFrame, source: str, n: int) -> float:
        events = kdd_events(frame, source, loop=True, limit=n)
        producer = ReplayProducer(
            settings, settings.topic("kdd"), rate=0, progress=True, stop=StopFlag(False)
        )
        return producer.run(events, n, description="prefill").rate

    def _figure(self, name: str, values: list[float], digits: int = 0) -> float:
        median, spread = median_and_spread(values)
        self.spread[name] = [round(v, digits) for v in spread]
        return round(median, digits) if digits else round(median)

    # -- measurements ---------------------------------------------------------------------------
    def _wire_limit(self, settings: Settings, tag: str) -> float:
        consumer = make_consumer(settings, f"{settings.group_id}-wire-{tag}")
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

    def _worker(self, settings: Settings, eos: bool, tag: str) -> tuple[float, float, int]:
        """(events/s, share of events that alerted, alerts) of one in-process worker run."""
        group = f"{settings.group_id}-{'eos' if eos else 'alo'}-{tag}"
        worker = ScoringWorker(
            settings.model_copy(update={"group_id": group}),
            ["kdd"],
            eos=eos,
            worker_id=f"bench-{os.getpid()}-{tag}",
            stop=StopFlag(False),
        )
        stats = worker.run(max_events=self.config.events)
        return stats.rate, stats.alerts / max(stats.events, 1), stats.alerts

    def _throughput(self, cluster: Settings, name: str, frame: pd.DataFrame, source: str) -> dict[str, Any]:
        settings = self._fresh(cluster, name.replace("_", "-"))
        self.stream_settings[name] = settings
        produce_eps = self._prefill(settings, frame, source, self.config.events)
        wire, alo, eos, share = [], [], [], []
        for rep in range(self.config.repetitions):
            with self.console.status(f"{name} {rep + 1}/{self.config.repetitions}: bare consumer..."):
                wire.append(self._wire_limit(settings, f"{rep}"))
            with self.console.status(f"{name} {rep + 1}/{self.config.repetitions}: worker, at-least-once..."):
                rate, alert_share, alerts = self._worker(settings, False, f"{rep}")
                alo.append(rate)
                share.append(alert_share)
                self.alerts_per_run.setdefault(name, alerts)
            with self.console.status(f"{name} {rep + 1}/{self.config.repetitions}: worker, exactly-once..."):
                eos.append(self._worker(settings, True, f"{rep}")[0])
        return {
            "alert_share": round(float(np.median(share)), 4),
            "wire_limit_eps": self._figure(f"streams.{name}.wire_limit_eps", wire),
            "worker_eps": self._figure(f"streams.{name}.worker_eps", alo),
            "worker_eos_eps": self._figure(f"streams.{name}.worker_eos_eps", eos),
            "produce_eps": round(produce_eps),
        }

    def _naive(self, settings: Settings) -> float:
        """One message at a time: decode, encode, ``model.predict`` (the anti-pattern batching replaces)."""
        from consumers.decoding import decoder_for

        model = open_registry(settings).load("kdd")
        decode = decoder_for("kdd", model.encoder)
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
            X = model.encoder.transform(decode([message]).raw)
            if keras_model is not None:
                keras_model.predict(X, verbose=0)
            else:
                model.detector.score(X)
        return self.config.naive_events / (time.perf_counter() - started)

    @contextlib.contextmanager
    def _worker_process(self, settings: Settings, name: str) -> Any:
        log = settings.state_dir / f"bench-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        worker = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            worker_command("--streams", "kdd"),
            env=settings.environment(),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while "assigned" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.5)
            yield worker
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()

    def _incidents(self, cluster: Settings, corrected: dict[str, Any]) -> dict[str, Any]:
        """The incident stage against the workers of this run (anomstream/bench_incidents.py)."""
        from anomstream.bench_incidents import stage_throughput, throughput_figures

        settings, alerts = self.stream_settings["corrected"], self.alerts_per_run["corrected"]
        runs = []
        for rep in range(self.config.repetitions):
            with self.console.status(
                f"incident stage {rep + 1}/{self.config.repetitions}: {alerts:,} alerts"
            ):
                runs.append(stage_throughput(settings, alerts, f"t{rep}"))
        figures = throughput_figures(runs, corrected["worker_eps"] * corrected["alert_share"])
        self.spread["incidents.stage_eos_alerts_per_s"] = figures.pop("spread")
        measured = self._incident_latency(cluster)
        figures["create_latency_ms"] = {
            "p50": measured["p50"],
            "p99": measured["p99"],
            "rate_eps": round(self.config.incident_rate),
            "replay_eps": measured["replay_eps"],
            "incidents": measured["incidents"],
        }
        figures["ocsf"] = {
            "messages": measured["incident_messages"],
            "invalid": measured["ocsf_invalid"],
            "errors": measured["ocsf_errors"],
        }
        return figures

    def _incident_latency(self, cluster: Settings) -> dict[str, Any]:
        """A worker process and a stage process under a replay at ``incident_rate``: first alert ->
        incident create, for every incident created."""
        from anomstream.bench_incidents import create_latency, incident_settings

        settings = incident_settings(self._fresh(cluster, "incident-latency"), "latency")
        frame, source = self._frame(settings)
        rate = self.config.incident_rate
        n = max(1, int(rate * self.config.latency_seconds * self.config.repetitions))
        replayed: list[float] = []  # the rate the replay reached (a busy machine falls short)

        def replay() -> None:
            producer = ReplayProducer(
                settings, settings.topic("kdd"), rate=rate, progress=True, stop=StopFlag(False)
            )
            events = kdd_events(frame, source, loop=True, limit=n)
            replayed.append(producer.run(events, n, description=f"incidents at {rate:,.0f}/s").rate)
            self._wait_scored(settings, n)

        with self._worker_process(settings, "incident-latency"):
            measured = create_latency(settings, replay)
        return {**measured, "replay_eps": round(replayed[0]) if replayed else 0}

    def _latency_curve(self, cluster: Settings, max_rate: float) -> tuple[list[dict], dict]:
        settings = self._fresh(cluster, "latency")
        frame, _ = self._frame(settings)
        rates = [self.config.latency_rate] if self.config.latency_rate else list(self.config.latency_rates)
        if self.config.curve_max and not self.config.latency_rate and max_rate > max(rates):
            rates.append(round(max_rate, -2))
        prefix_of: dict[str, str] = {}
        total = 0
        with self._worker_process(settings, "latency") as worker:
            rss_start = rss_mb(worker.pid)
            for rate in rates:
                for rep in range(self.config.repetitions):
                    tag = f"r{int(rate)}x{rep}"
                    prefix_of[tag] = tag
                    n = max(1, int(rate * self.config.latency_seconds))
                    replay = ReplayProducer(
                        settings, settings.topic("kdd"), rate=rate, progress=True, stop=StopFlag(False)
                    )
                    replay.run(
                        kdd_events(frame, tag, loop=True, limit=n), n, description=f"replay at {rate:,.0f}/s"
                    )
                    total += n
                    self._wait_scored(settings, total)
            rss_end = rss_mb(worker.pid)
        delays = alert_delays_ms(settings, prefix_of)
        curve = []
        for rate in rates:
            reps = [percentiles(delays[f"r{int(rate)}x{rep}"]) for rep in range(self.config.repetitions)]
            p50s, p99s = [r[0] for r in reps], [r[1] for r in reps]
            spread = {
                "p50": [round(v, 1) for v in median_and_spread(p50s)[1]],
                "p99": [round(v, 1) for v in median_and_spread(p99s)[1]],
            }
            point: dict[str, Any] = {
                "rate_eps": round(rate),
                "p50": round(median_and_spread(p50s)[0], 1),
                "p99": round(median_and_spread(p99s)[0], 1),
                "alerts": sum(len(delays[f"r{int(rate)}x{rep}"]) for rep in range(self.config.repetitions)),
                "spread": spread,
            }
            curve.append(point)
            self.spread[f"latency_curve.{round(rate)}.p50"] = spread["p50"]
            self.spread[f"latency_curve.{round(rate)}.p99"] = spread["p99"]
        rss = {"start": round(rss_start, 1), "end": round(rss_end, 1), "events": total}
        return curve, rss

    def _replica(self, cluster: Settings) -> dict[str, Any]:
        """A new worker process, started ``repetitions`` times on the same pre-filled topic, each in a
        group of its own (so each scores every event): start seconds and RSS, medians."""
        settings = self._fresh(cluster, "replica")
        frame, source = self._frame(settings)
        n = self.config.replica_events
        self._prefill(settings, frame, source, n)
        runs = []
        for rep in range(self.config.repetitions):
            with self.console.status(f"replica start {rep + 1}/{self.config.repetitions}..."):
                group = settings.model_copy(update={"group_id": f"{settings.group_id}-{rep}"})
                runs.append(replica_start(group, n, settings.state_dir / f"bench-replica-{rep}.log"))
        result: dict[str, Any] = {"events": n}
        for key, digits in (("start_s", 2), ("start_cpu_s", 2), ("rss_mb", 1), ("peak_rss_mb", 1)):
            result[key] = self._figure(f"replica.{key}", [run[key] for run in runs], digits)
        return result

    @staticmethod
    def _wait_scored(settings: Settings, total: int, timeout: float = 120.0) -> None:
        """Wait until the worker group has committed ``total`` input events (the replay drained)."""
        with CommittedCounter(settings) as counter:
            deadline = time.monotonic() + timeout
            while counter.count() < total and time.monotonic() < deadline:
                time.sleep(0.5)

    def _soak(self, cluster: Settings) -> dict[str, Any]:
        settings = self._fresh(cluster, "soak")
        frame, source = self._frame(settings)
        n = self.config.soak_events
        samples: list[list[float]] = []  # [seconds, RSS MB, events committed]
        with self._worker_process(settings, "soak") as worker, CommittedCounter(settings) as counter:
            started = time.monotonic()
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    samples.append([round(time.monotonic() - started, 1), round(rss_mb(worker.pid), 1),
                                    counter.count()])  # fmt: skip
                    stop.wait(1.0)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            replay = ReplayProducer(
                settings, settings.topic("kdd"), rate=0, progress=True, stop=StopFlag(False)
            )
            replay.run(kdd_events(frame, source, loop=True, limit=n), n, description="soak")
            deadline = time.monotonic() + 1800
            while (not samples or samples[-1][2] < n) and time.monotonic() < deadline:
                time.sleep(1.0)
            rss_end = rss_mb(worker.pid)
            stop.set()
            sampler.join(5)
        # Warm-up ends once the worker has committed the first 10% of the events.
        warm = next((s for s in samples if s[2] >= n // 10), samples[0] if samples else [0.0, rss_end, 0])
        warmup_s, after_warmup = warm[0], warm[1]
        return {
            "events": n,
            "rss_mb": {
                "after_warmup": after_warmup,
                "end": round(rss_end, 1),
                "growth_pct": round((rss_end - after_warmup) / after_warmup * 100, 1),
            },
            "warmup_s": warmup_s,
            "seconds": round(time.monotonic() - started, 1),
            "samples": [s[:2] for s in samples],
        }

    # -- run ------------------------------------------------------------------------------------
    def run(self, out: Path) -> dict[str, Any]:
        out.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            cluster = self._cluster(stack)
            if open_registry(cluster).production("kdd") is None:
                from models.training import TrainingRequest, train

                self.console.print("no KDD model: training the default autoencoder first")
                request = TrainingRequest("kdd", "ae", allow_synthetic=True)
                train(open_registry(cluster), cluster.data_dir, request)
            frame, source = self._frame(cluster)
            streams = {"corrected": self._throughput(cluster, "corrected", frame, source)}
            if self.config.mostly_normal:
                normal = mostly_normal_frame(frame)
                streams["mostly_normal"] = self._throughput(cluster, "mostly_normal", normal, "normal")
            main = streams["corrected"]
            naive_settings = self._fresh(cluster, "naive")
            self._prefill(naive_settings, frame, source, self.config.naive_events)
            with self.console.status(f"measuring: model.predict per message ({self.config.naive_events})..."):
                naive = self._figure(
                    "naive_predict_eps",
                    [self._naive(naive_settings) for _ in range(self.config.repetitions)],
                    1,
                )
            incidents = self._incidents(cluster, main) if self.config.incidents else None
            curve, rss = self._latency_curve(cluster, main["worker_eps"])
            replica = self._replica(cluster)
            profile = soak = None
            if self.config.profile_events:
                profile_settings = self._fresh(cluster, "profile")
                self._prefill(profile_settings, frame, source, self.config.profile_events)
                with self.console.status("profiling the worker's stages..."):
                    profile = profile_stages(profile_settings, self.config.profile_events)
            if self.config.soak_events:
                soak = self._soak(cluster)
        headline = next((p for p in curve if p["rate_eps"] == HEADLINE_RATE), curve[0])
        for key in ("wire_limit_eps", "worker_eps", "worker_eos_eps"):
            self.spread[key] = self.spread[f"streams.corrected.{key}"]
        result: dict[str, Any] = {
            "wire_limit_eps": main["wire_limit_eps"],
            "worker_eps": main["worker_eps"],
            "worker_eos_eps": main["worker_eos_eps"],
            "naive_predict_eps": naive,
            "latency_ms": {"p50": headline["p50"], "p99": headline["p99"], "rate_eps": headline["rate_eps"]},
            "worker_rss_mb": rss,
            "replica": replica,
            "latency_curve": [{k: p[k] for k in ("rate_eps", "p50", "p99", "alerts")} for p in curve],
            "streams": streams,
            "spread": self.spread,
            "produce_eps": main["produce_eps"],
            "events": self.config.events,
            "repetitions": self.config.repetitions,
            "batch_size": cluster.batch_size,
            "max_queue_delay_ms": cluster.max_queue_delay_ms,
            "cpu_count": os.cpu_count(),
        }
        if incidents is not None:
            result["incidents"] = incidents
        if profile is not None:
            result["profile_us_per_event"] = profile
        if soak is not None:
            result["soak"] = soak
            plot_soak(soak["samples"], soak["warmup_s"], out / "soak_rss.png")
        plot_latency_curve(curve, out / "latency_curve.png")
        (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
        self.console.print(self.table(result))
        return result

    @staticmethod
    def table(result: dict[str, Any]) -> Table:
        table = Table(title="anomstream bench (KDD, production model; medians)")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_column("ratio", justify="right")
        for name, figures in result["streams"].items():
            wire, alo = figures["wire_limit_eps"], figures["worker_eps"]
            label = f"{name} ({figures['alert_share']:.0%} alerts)"
            table.add_row(f"{label}: wire limit", f"{wire:,} ev/s", "1.00 x wire")
            table.add_row(
                f"{label}: worker, at-least-once", f"{alo:,} ev/s", f"{alo / max(wire, 1):.2f} x wire"
            )
            table.add_row(
                f"{label}: worker, exactly-once",
                f"{figures['worker_eos_eps']:,} ev/s",
                f"{figures['worker_eos_eps'] / max(alo, 1):.2f} x ALO",
            )
        table.add_row(
            "naive model.predict per message",
            f"{result['naive_predict_eps']:,} ev/s",
            f"worker is {result['worker_eps'] / max(result['naive_predict_eps'], 1e-9):,.0f} x faster",
        )
        for point in result["latency_curve"]:
            table.add_row(
                f"latency at {point['rate_eps']:,} ev/s", f"p50 {point['p50']} ms / p99 {point['p99']} ms", ""
            )
        if "incidents" in result:
            incidents = result["incidents"]
            table.add_row(
                "incident stage, exactly-once",
                f"{incidents['stage_eos_alerts_per_s']:,} alerts/s",
                f"{incidents['ratio']:.2f} x worker alerts ({incidents['worker_alerts_per_s']:,}/s)",
            )
            latency = incidents["create_latency_ms"]
            table.add_row(
                f"first alert -> incident at {latency['rate_eps']:,} ev/s",
                f"p50 {latency['p50']} ms / p99 {latency['p99']} ms",
                f"{latency['incidents']} incidents; OCSF invalid {incidents['ocsf']['invalid']}",
            )
        rss = result["worker_rss_mb"]
        table.add_row("worker RSS", f"{rss['start']} -> {rss['end']} MB", f"over {rss['events']:,} events")
        replica = result["replica"]
        table.add_row(
            "new replica: start to first scores",
            f"{replica['start_s']} s",
            f"RSS {replica['rss_mb']} MB (peak {replica['peak_rss_mb']})",
        )
        if "soak" in result:
            soak = result["soak"]["rss_mb"]
            table.add_row(
                f"soak ({result['soak']['events']:,} events)",
                f"{soak['after_warmup']} -> {soak['end']} MB",
                f"{soak['growth_pct']:+.1f}% after warm-up",
            )
        for stage, micros in result.get("profile_us_per_event", {}).items():
            table.add_row(f"profile: {stage}", f"{micros:.2f} us/event", "")
        return table


def run_sweep(settings: Settings, out: Path, console: Console) -> dict[str, Any]:
    """``anomstream bench --sweep``: the scoring stage alone per batch size (no broker needed)."""
    from models.detectors.backend import device_description
    from models.features import RecordsRaw
    from stream.datasets.schema import builtin_schema

    model = open_registry(settings).load("kdd")
    frame, _ = load_kdd_replay(settings.data_dir, "test", announce=console.print)

    X = model.encoder.transform(RecordsRaw.from_frame(frame.head(16_384), builtin_schema("kdd99")))
    points = scoring_sweep(model, X)
    result = {"device": device_description(), "detector": model.detector_name, "points": points}
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"scoring stage on {result['device']}")
    for column in ("batch", "events/s", "ms per call"):
        table.add_column(column, justify="right")
    for point in points:
        table.add_row(f"{point['batch']:,}", f"{point['eps']:,}", f"{point['ms_per_call']}")
    console.print(table)
    return result


__all__ = ["BenchConfig", "Benchmark", "mostly_normal_frame", "run_sweep"]
