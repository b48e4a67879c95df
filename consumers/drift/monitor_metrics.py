"""Prometheus metrics and health endpoints of the drift monitor.

``anomstream drift --metrics-port 9470`` serves ``/metrics``, ``/healthz`` (the loop turns, and
score records are watched while some are queued: :class:`stream.health.Progress`) and
``/readyz`` (its streams' detectors are calibrated and it is consuming), on every interface, as the
worker's metrics are (the same :mod:`stream.health` server).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge

from stream.health import HealthServer, Progress, Readiness, serve_health

STALL_S = 60.0  # a loop silent for this long is not healthy


class DriftMetrics:
    def __init__(self, port: int | None = None, stall_after_s: float = 120.0) -> None:
        self.registry = reg = CollectorRegistry()
        self.progress = Progress(stall_after_s)
        self.drift_events = Counter(
            "anomstream_drift_events_total", "Drift events published", ["stream", "detector"], registry=reg
        )
        self.retrains = Counter(
            "anomstream_retrains_total", "Retrains finished, by outcome", ["outcome"], registry=reg
        )
        self.statistic = Gauge(
            "anomstream_drift_statistic", "Drift statistic (largest over this monitor's units)",
            ["stream", "detector"], registry=reg,
        )  # fmt: skip
        self.threshold = Gauge(
            "anomstream_drift_threshold", "Threshold the drift statistic is compared with",
            ["stream", "detector"], registry=reg,
        )  # fmt: skip
        self.scores = Counter(
            "anomstream_drift_scores_total", "Scores watched, by what became of them",
            ["stream", "kind"], registry=reg,
        )  # fmt: skip
        self.in_burst = Gauge(
            "anomstream_drift_in_burst", "1 while an alert burst pauses the score detector", ["stream"],
            registry=reg,
        )  # fmt: skip
        self.model_version = Gauge(
            "anomstream_drift_model_version", "Model version whose scores are watched", ["stream"],
            registry=reg,
        )  # fmt: skip
        self.feature_tests = Counter(
            "anomstream_drift_feature_tests_total", "Feature two-sample tests run", ["stream"], registry=reg
        )
        self.alive_at = time.monotonic()
        self.ready = False
        self.port = port
        self._server: HealthServer | None = None
        if port is not None:
            self._server = serve_health(self.registry, port, self.readiness, liveness=self.liveness)

    def beat(self, pending: int = 0) -> None:
        """The loop turned; ``pending`` score records wait to be watched."""
        self.alive_at = time.monotonic()
        self.progress.pending(pending)

    def healthy(self) -> bool:
        return time.monotonic() - self.alive_at < STALL_S

    def liveness(self) -> Readiness:
        """Alive while the loop turns (beat() at least every STALL_S) and, while records are
        pending, some are watched within ``stall_after_s``."""
        progress = self.progress.liveness()
        checks = {"loop_seen_s_ago": round(time.monotonic() - self.alive_at, 1), **progress.checks}
        return Readiness(self.healthy() and progress.ready, checks)

    def readiness(self) -> Readiness:
        """Ready once its streams' detectors are calibrated and it is consuming, while alive."""
        return Readiness(self.ready and self.healthy(), {"consuming": self.ready, "alive": self.healthy()})

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
