"""Prometheus metrics of a scoring worker: throughput, alerts, dead letters, batch sizes and latency,
lag.

``anomstream worker --metrics-port 9464`` serves them at http://HOST:9464/metrics; with
``--replicas N`` replica i listens on port + i. Each worker has its own registry, so several
workers in one process (tests, benchmarks) never collide.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LAG_REFRESH_S = 2.0


class WorkerMetrics:
    def __init__(self, port: int | None = None) -> None:
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
        self.port = port
        if port is not None:
            start_http_server(port, registry=self.registry)

    def update_lag(self, consumer: Consumer, force: bool = False) -> None:
        """Lag per assigned partition from cached watermarks (no broker round trip per batch)."""
        if not force and time.monotonic() - self._last_lag < LAG_REFRESH_S:
            return
        assigned = consumer.assignment()
        if not assigned:
            return
        self._last_lag = time.monotonic()
        for tp in consumer.position(assigned):
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)
            if high >= 0 and tp.offset >= 0:
                self.lag.labels(tp.topic, str(tp.partition)).set(max(high - tp.offset, 0))
