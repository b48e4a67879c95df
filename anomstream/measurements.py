"""Pieces of ``anomstream bench`` that do not drive the whole pipeline: repetition statistics, latency
from the topics, the per-stage profile, the scoring-stage batch-size sweep, and the plots.

The profile and the sweep are reusable on their own::

    from anomstream.measurements import profile_stages, scoring_sweep
    profile_stages(settings, n_events=50_000)   # µs/event per stage of the worker, on a real broker
    scoring_sweep(model, raw)                   # the model call alone, per batch size, any device
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import TopicPartition

from consumers.decoding import DECODERS
from consumers.outputs import BatchMeta, build_alerts, build_score_records
from models.registry import open_registry
from models.scoring import ScoringModel
from stream.kafka import check_message, iter_topic, make_consumer, make_producer
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


# -- per-stage profile ------------------------------------------------------------------------------
STAGES = ("consume", "decode+validate", "encode", "model call", "alert build", "produce", "flush/commit")


def profile_stages(settings: Settings, n_events: int, stream: str = "kdd") -> dict[str, float]:
    """µs per event spent in each stage of the worker's path, measured stage by stage on the real
    broker with the production model: the messages already in ``settings``' topic for ``stream``.

    Stages run one after another on each batch (no overlap), so each figure is that stage's own cost.
    The consumer joins its group and receives its first messages before the clock starts, so
    ``consume`` is the cost of taking prefetched messages, not of the group join.
    """
    model = open_registry(settings).load(stream)
    model.warm_up()
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
        decoded = DECODERS[stream](messages, getattr(model.encoder, "length", None))
        t2 = time.perf_counter()
        X = model.encoder.transform(decoded.raw)
        t3 = time.perf_counter()
        explain = getattr(model.detector, "explain", None)
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
