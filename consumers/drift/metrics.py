"""Prometheus metrics and health endpoints of the drift monitor.

``anomstream drift --metrics-port 9470`` serves ``/metrics``, ``/healthz`` (the loop is alive) and
``/readyz`` (its streams' detectors are calibrated and it is consuming), on every interface, as the
worker's metrics are.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

STALL_S = 60.0  # a loop silent for this long is not healthy


class DriftMetrics:
    def __init__(self, port: int | None = None) -> None:
        self.registry = reg = CollectorRegistry()
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
        self._server: ThreadingHTTPServer | None = None
        if port is not None:
            self._server = _serve(self, port)

    def beat(self) -> None:
        self.alive_at = time.monotonic()

    def healthy(self) -> bool:
        return time.monotonic() - self.alive_at < STALL_S

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _serve(metrics: DriftMetrics, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = metrics.healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
            elif path == "/readyz":
                ok = metrics.ready and metrics.healthy()
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, kind: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet access log
            return

    server = ThreadingHTTPServer(("", port), Handler)
    threading.Thread(target=server.serve_forever, name="drift-metrics", daemon=True).start()
    return server
