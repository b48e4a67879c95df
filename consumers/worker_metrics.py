"""Prometheus metrics of a scoring worker: throughput, alerts, dead letters, batch sizes and latency,
lag.

``anomstream worker --metrics-port 9464`` serves them at http://HOST:9464/metrics, beside
``/healthz`` (alive: the consume loop turns, and batches complete while there is lag or a batch in
flight: :class:`stream.health.Progress`) and ``/readyz`` (models loaded, joined the group,
broker reachable: see :func:`worker_readiness`); with ``--replicas N`` replica i listens on
port + i. Each worker has its own registry, so several workers in one process (tests, benchmarks)
never collide.

The health server answers from its own thread and never calls the worker's consumer: a
confluent-kafka consumer serialises its calls, and one that polls in a tight loop would keep a
probe waiting for seconds. The loop itself records what a probe needs (:meth:`update_lag`), and
the broker check uses a client of its own.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream.health import HealthServer, Progress, Readiness, ReadinessCheck, always_ready, serve_health
from stream.kafka import make_admin

LAG_REFRESH_S = 2.0
BROKER_CHECK_TIMEOUT_S = 2.0
LOOP_STALE_S = 30.0  # not ready: the consume loop has not turned for this long
LOOP_DEAD_S = 120.0  # not alive: longer than any batch, retry back-off or rebalance takes


class WorkerMetrics:
    def __init__(
        self, port: int | None = None, readiness: ReadinessCheck = always_ready, stall_after_s: float = 120.0
    ) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.events = Counter("anomstream_events_total", "Events scored", ["stream"], registry=reg)
        self.alerts = Counter("anomstream_alerts_total", "Alerts published", ["stream"], registry=reg)
        self.dead_letters = Counter(
            "anomstream_dead_letters_total", "Messages sent to dead-letter", registry=reg
        )
        self.batches = Counter("anomstream_batches_total", "Batches committed", registry=reg)
        self.retries = Counter("anomstream_batch_retries_total", "Batches rewound and retried", registry=reg)
        self.batch_seconds = Histogram(
            "anomstream_batch_seconds",
            "Time from a batch's arrival to its commit",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=reg,
        )
        self.batch_events = Histogram(
            "anomstream_batch_events",
            "Messages per scored batch (dynamic batching: small when idle, large under a backlog)",
            buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384),
            registry=reg,
        )
        self.in_flight = Gauge(
            "anomstream_batches_in_flight", "Batches scored and not yet committed", registry=reg
        )
        self.undeliverable = Counter(
            "anomstream_undeliverable_outputs_total",
            "Outputs the broker refused for good, dead-lettered instead",
            ["topic", "reason"],
            registry=reg,
        )
        self.lag = Gauge(
            "anomstream_consumer_lag", "Messages behind the end", ["topic", "partition"], registry=reg
        )
        self.model_version = Gauge(
            "anomstream_model_version", "Version in use", ["stream", "detector"], registry=reg
        )
        self._last_lag = 0.0
        self._lag_total = 0
        self.progress = Progress(stall_after_s)
        # Written by the consume loop (update_lag), read by the health server's thread.
        self.loop_seen: float | None = None
        self.member_id: str | None = None
        self.assigned: list[str] = []
        self._admin: Any = None
        self._admin_lock = threading.Lock()
        self.port = port
        self.server: HealthServer | None = None
        if port is not None:
            self.server = serve_health(self.registry, port, readiness, liveness=self.alive)

    def update_lag(self, consumer: Consumer, force: bool = False, in_flight: int = 0) -> None:
        """Lag per assigned partition from cached watermarks (no broker round trip per batch).

        Called by the worker's loop after every ``consume()``; it also notes that the loop turns,
        what is pending (lag + batches in flight) and (every LAG_REFRESH_S) the group membership,
        for ``/healthz`` and ``/readyz``.
        """
        self.loop_seen = time.monotonic()
        self.progress.pending(self._lag_total + in_flight)
        if not force and time.monotonic() - self._last_lag < LAG_REFRESH_S:
            return
        self._last_lag = time.monotonic()
        assigned = consumer.assignment()
        self.member_id = consumer.memberid() or None
        self.assigned = sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned)
        total = 0
        for tp in consumer.position(assigned) if assigned else []:
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)
            if high >= 0 and tp.offset >= 0:
                self.lag.labels(tp.topic, str(tp.partition)).set(max(high - tp.offset, 0))
                total += max(high - tp.offset, 0)
        self._lag_total = total

    def alive(self) -> Readiness:
        """Alive until the consume loop, once started, stops turning for LOOP_DEAD_S, or work is
        pending and no batch completed for ``stall_after_s`` (:class:`stream.health.Progress`)."""
        if self.loop_seen is None:
            return Readiness(True, {"loop": "starting"})
        age = time.monotonic() - self.loop_seen
        progress = self.progress.liveness()
        checks = {"loop_seen_s_ago": round(age, 1), **progress.checks}
        return Readiness(age < LOOP_DEAD_S and progress.ready, checks)

    def broker_reachable(self, settings: Any) -> str | None:
        """None when the broker answers a metadata request now, else why not (a client of its own)."""
        with self._admin_lock:
            if self._admin is None:
                self._admin = make_admin(settings)
            try:
                self._admin.list_topics(timeout=BROKER_CHECK_TIMEOUT_S)
            except KafkaException as exc:
                return str(exc.args[0].str() if exc.args else exc)
        return None


def worker_readiness(worker: Any) -> Readiness:
    """A scoring worker is ready when its models are loaded, its consume loop turns, it has joined
    its consumer group and the broker answers. A replica with no partitions (more replicas than
    partitions) is ready: a warm standby that a rebalance hands work at once.

    ``worker`` is a :class:`consumers.worker.ScoringWorker` (duck-typed: ``models``, ``settings``,
    ``metrics``); called from the health server's thread.
    """
    metrics: WorkerMetrics = worker.metrics
    models = {stream: f"{m.detector_name} v{m.version}" for stream, m in worker.models.items()}
    checks: dict[str, Any] = {"models": models}
    if metrics.loop_seen is None:
        return Readiness(False, {**checks, "loop": "not consuming yet"})
    age = time.monotonic() - metrics.loop_seen
    checks["loop_seen_s_ago"] = round(age, 1)
    checks["group"] = "joined" if metrics.member_id else "joining"
    checks["assigned_partitions"] = metrics.assigned
    problem = metrics.broker_reachable(worker.settings)
    checks["broker"] = problem or "reachable"
    ready = bool(models) and age < LOOP_STALE_S and metrics.member_id is not None and problem is None
    return Readiness(ready, checks)
