"""Pieces of ``anomstream bench`` that do not drive the whole pipeline: repetition statistics, latency
from the topics, the per-stage profile, the scoring-stage batch-size sweep, and the plots.

The profile and the sweep are reusable on their own::

    from anomstream.measurements import profile_stages, scoring_sweep
    profile_stages(settings, n_events=50_000)   # µs/event per stage of the worker, on a real broker
    scoring_sweep(model, raw)                   # the model call alone, per batch size, any device
    replica_start(settings, events=10_000)      # a new worker process: seconds to its first scores, RSS
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import TopicPartition

from consumers.decoding import decoder_for
from consumers.outputs import BatchMeta, build_alerts, build_score_records
from consumers.supervisor import worker_command
from models.detectors import explainer
from models.registry import open_registry
from models.scoring import ScoringModel
from stream.kafka import check_message, end_offsets, iter_topic, make_consumer, make_producer, make_reader
from stream.settings import Settings


def median_and_spread(values: Sequence[float]) -> tuple[float, list[float]]:
    """The median of repeated measurements and their [min, max].

    >>> median_and_spread([3.0, 1.0, 2.0])
    (2.0, [1.0, 3.0])
    """
    return float(statistics.median(values)), [float(min(values)), float(max(values))]


def alert_delays_ms(settings: Settings, prefix_of: dict[str, str]) -> dict[str, list[float]]:
    """Event time -> alert acknowledged by the broker, per replay tag.

    The alerts topic has ``message.timestamp.type=LogAppendTime``, so an alert's Kafka timestamp is
    the moment the broker appended it; the event time is the input's producer timestamp. Alerts are
    grouped by the tag their event id (the replay key) starts with.
    """
    delays: dict[str, list[float]] = {tag: [] for tag in prefix_of.values()}
    for message in iter_topic(settings, settings.topic("alerts"), timeout=120):
        alert = orjson.loads(message.value())
        if not alert["event_time"]:
            continue
        tag = prefix_of.get(alert["event_id"].split("-", 1)[0])
        if tag is None:
            continue
        appended_ms = message.timestamp()[1]
        event_ms = datetime.fromisoformat(alert["event_time"]).timestamp() * 1000
        delays[tag].append(appended_ms - event_ms)
    return delays


def percentiles(delays: list[float]) -> tuple[float, float]:
    if not delays:
        return float("nan"), float("nan")
    return float(np.percentile(delays, 50)), float(np.percentile(delays, 99))


# -- worker processes -------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory in MB (``VmHWM``: its peak so far), from ``/proc``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class CommittedCounter:
    """How many input events a worker group has committed (its offsets, summed over partitions)."""

    def __init__(self, settings: Settings, stream: str = "kdd") -> None:
        self.consumer = make_consumer(settings, settings.group_id)
        topic = settings.topic(stream)
        self.partitions = [TopicPartition(topic, p) for p in end_offsets(settings, topic)]

    def count(self) -> int:
        try:
            return sum(max(tp.offset, 0) for tp in self.consumer.committed(self.partitions, timeout=10))
        except Exception:  # noqa: BLE001 - a slow broker answer: counted again on the next call
            return 0

    def __enter__(self) -> CommittedCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.consumer.close()


def replica_start(
    settings: Settings, events: int, log_path: Path, timeout: float = 180.0
) -> dict[str, float]:
    """Start one ``anomstream worker --streams kdd`` process on a topic pre-filled with ``events``
    events (its group has committed none): seconds from the process's start to its first score
    record on the broker (``start_s``: interpreter, imports, model load and warm-up, group join, the
    first batch scored and published; ``start_cpu_s``: the CPU time it used until then, which a busy
    machine does not inflate), then its resident memory once it has committed them all
    (``rss_mb``) and its peak (``peak_rss_mb``). The process is stopped (SIGTERM) before returning.
    """
    scores = settings.topic("scores")
    reader = make_reader(settings)
    # From the topic's current end: earlier runs on the same topics wrote score records too.
    reader.assign([TopicPartition(scores, p, end) for p, end in end_offsets(settings, scores).items()])
    with log_path.open("wb") as log, CommittedCounter(settings) as counter:
        started = time.monotonic()
        worker = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            worker_command("--streams", "kdd"),
            env=settings.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = started + timeout
            first: float | None = None
            first_cpu = 0.0
            while first is None and time.monotonic() < deadline and worker.poll() is None:
                if any(check_message(m) for m in reader.consume(100, 0.02)):
                    first, first_cpu = time.monotonic() - started, cpu_seconds(worker.pid)
            while counter.count() < events and time.monotonic() < deadline and worker.poll() is None:
                time.sleep(0.2)
            if first is None or worker.poll() is not None or counter.count() < events:
                raise RuntimeError(
                    f"the worker did not score {events} events in {timeout:.0f} s: see {log_path}"
                )
            return {
                "start_s": first,
                "start_cpu_s": first_cpu,
                "rss_mb": rss_mb(worker.pid),
                "peak_rss_mb": rss_mb(worker.pid, "VmHWM"),
            }
        finally:
            reader.close()
            worker.terminate()
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


# -- per-stage profile ------------------------------------------------------------------------------
STAGES = ("consume", "decode+validate", "encode", "model call", "alert build", "produce", "flush/commit")


def profile_stages(settings: Settings, n_events: int, stream: str = "kdd") -> dict[str, float]:
    """µs per event spent in each stage of the worker's path, measured stage by stage on the real
    broker with the production model: the messages already in ``settings``' topic for ``stream``.

    Stages run one after another on each batch (no overlap), so each figure is that stage's own cost.
    The consumer joins its group and receives its first messages before the clock starts, so
    ``consume`` is the cost of taking prefetched messages, not of the group join.
    """
    model = open_registry(settings).load(stream, inference_only=True)  # as the worker serves it
    model.warm_up()
    decode = decoder_for(stream, model.encoder)
    consumer = make_consumer(settings, f"profile-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([settings.topic(stream)])
    producer = make_producer(settings, None, **{"delivery.report.only.error": True})
    spent = dict.fromkeys(STAGES, 0.0)
    seen = 0
    deadline = time.monotonic() + 300
    ready: list = []
    while not ready and time.monotonic() < deadline:
        ready = [m for m in consumer.consume(1, 1.0) if check_message(m)]
    consumer.seek(TopicPartition(ready[0].topic(), ready[0].partition(), ready[0].offset()))
    time.sleep(1.0)  # let librdkafka prefetch
    detected_at = datetime.now().astimezone().isoformat(timespec="milliseconds")
    alerts_topic, scores_topic = settings.topic("alerts"), settings.topic("scores")
    while seen < n_events and time.monotonic() < deadline:
        t0 = time.perf_counter()
        messages = [
            m for m in consumer.consume(min(settings.batch_size, n_events - seen), 1.0) if check_message(m)
        ]
        if not messages:
            continue
        t1 = time.perf_counter()
        decoded = decode(messages)
        t2 = time.perf_counter()
        X = model.encoder.transform(decoded.raw)
        t3 = time.perf_counter()
        explain = explainer(model.detector)
        _ = explain(X) if explain is not None else model.detector.score(X)
        t4 = time.perf_counter()
        scored = model.score_encoded(X)  # the model call again, subtracted below
        t5 = time.perf_counter()
        meta = BatchMeta.of(decoded.messages, decoded.event_times, decoded.labels, decoded.keys)
        outputs = [(alerts_topic, k, v) for k, v in build_alerts(model, meta, scored, detected_at)]
        outputs += [(scores_topic, k, v) for k, v in build_score_records(model, meta, scored)]
        t6 = time.perf_counter()
        for topic, key, value in outputs:
            producer.produce(topic, value, key)
        t7 = time.perf_counter()
        producer.flush(60)
        offsets = {(m.topic(), m.partition()): m.offset() + 1 for m in messages}
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
        )
        t8 = time.perf_counter()
        model_call = t4 - t3
        for stage, seconds in zip(
            STAGES,
            (t1 - t0, t2 - t1, t3 - t2, model_call, max(t5 - t4 - model_call, 0) + t6 - t5, t7 - t6, t8 - t7),
            strict=True,
        ):
            spent[stage] += seconds
        seen += len(messages)
    consumer.close()
    return {stage: round(seconds / max(seen, 1) * 1e6, 3) for stage, seconds in spent.items()}


# -- scoring-stage sweep ------------------------------------------------------------------------------
SWEEP_SIZES = (1, 16, 64, 256, 1024, 4096, 16384)


def scoring_sweep(
    model: ScoringModel, X: np.ndarray, sizes: Sequence[int] = SWEEP_SIZES, seconds: float = 1.0
) -> list[dict[str, float]]:
    """The model call alone (encoded rows in, scores and explanations out) at each batch size:
    events/s and milliseconds per call, on whatever device the Keras backend runs on."""
    points = []
    for size in sizes:
        batch = X[np.arange(size) % len(X)]
        model.score_encoded(batch)  # compile / warm up this size
        calls, started = 0, time.perf_counter()
        while True:
            model.score_encoded(batch)
            calls += 1
            elapsed = time.perf_counter() - started
            if elapsed >= seconds and calls >= 3:
                break
        points.append(
            {
                "batch": size,
                "eps": round(size * calls / elapsed),
                "ms_per_call": round(elapsed / calls * 1000, 3),
            }
        )
    return points


# -- plots --------------------------------------------------------------------------------------------
def plot_latency_curve(curve: list[dict[str, Any]], path: Path) -> Path:
    """p50 and p99 against offered rate, with each point's spread over repetitions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [p["rate_eps"] for p in curve]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for key, style in (("p50", "o-"), ("p99", "s--")):
        values = [p[key] for p in curve]
        low = [max(v - p["spread"][key][0], 0) for v, p in zip(values, curve, strict=True)]
        high = [max(p["spread"][key][1] - v, 0) for v, p in zip(values, curve, strict=True)]
        ax.errorbar(rates, values, yerr=[low, high], fmt=style, capsize=3, label=key)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (events/s)")
    ax.set_ylabel("event time -> alert acknowledged (ms)")
    ax.set_title("anomstream latency (one worker, KDD corrected)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_soak(samples: list[list[float]], warmup_s: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot([s[0] for s in samples], [s[1] for s in samples])
    ax.axvline(warmup_s, color="grey", linestyle=":", label="end of warm-up")
    ax.set_xlabel("seconds")
    ax.set_ylabel("worker RSS (MB)")
    ax.set_title("anomstream soak: worker memory")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
