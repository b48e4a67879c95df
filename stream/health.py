"""``/metrics``, ``/healthz`` and ``/readyz`` for every long-running process, on one port.

Workers, the drift monitor and the dashboard each serve:

* ``/metrics``: their Prometheus registry (text format, or OpenMetrics when the scraper asks for it);
* ``/healthz``: 200 while the process is alive: it serves, and its liveness callback agrees; 503
  means "restart me". Alive means progress (:class:`Progress`): a process with work pending (lag,
  a batch in flight) that completed none for ``ANOMSTREAM_RESILIENCE__STALL_AFTER_S`` is stuck,
  one idle with nothing pending is not;
* ``/readyz``: 200 when the process's readiness callback says it is ready (partitions assigned,
  model loaded, broker reachable), else 503; the body is JSON with each check, so an operator sees
  *why* a replica is not ready.

>>> from prometheus_client import CollectorRegistry
>>> health = Health(CollectorRegistry(), lambda: Readiness(False, {"model": "not loaded"}))
>>> health.ready()[0], health.alive()[0]
(503, 200)

``python -m stream.health http://127.0.0.1:9464/healthz http://127.0.0.1:9464/readyz`` exits 0 when
every URL answers 200: a container health check that needs neither curl nor wget.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    """The answer of a readiness callback: ready or not, and what each check found."""

    ready: bool
    checks: Mapping[str, Any] = field(default_factory=dict)


ReadinessCheck = Callable[[], Readiness]


class Progress:
    """Liveness that means progress: stuck is "work pending, and none completed for ``stall_after_s``".

    The process's loop reports what is pending (:meth:`pending`: lag plus batches in flight) and each
    unit of work completed (:meth:`completed`); the health server's thread asks :meth:`liveness`.
    The clock starts when work appears, so an idle hour followed by new lag is not "stalled for an
    hour". Plain attribute writes and reads: safe across the two threads.

    >>> progress = Progress(stall_after_s=60)
    >>> progress.pending(0); progress.liveness().ready
    True
    >>> progress.pending(5, now=0.0); progress.liveness(now=61.0).ready
    False
    >>> progress.completed(now=61.0); progress.liveness(now=62.0).ready
    True
    """

    def __init__(self, stall_after_s: float) -> None:
        self.stall_after_s = stall_after_s
        self.waiting = 0
        self.since: float | None = None  # when pending work was last seen to appear or move

    def pending(self, count: int, now: float | None = None) -> None:
        """How much work waits now (lag + in flight); 0 when idle."""
        now = time.monotonic() if now is None else now
        if count <= 0:
            self.since = None
        elif self.since is None:
            self.since = now
        self.waiting = max(count, 0)

    def completed(self, now: float | None = None) -> None:
        """A unit of work (a batch, a record) was completed."""
        if self.since is not None or self.waiting:
            self.since = time.monotonic() if now is None else now

    def liveness(self, now: float | None = None) -> Readiness:
        now = time.monotonic() if now is None else now
        if self.since is None:
            return Readiness(True, {"pending": 0})
        stalled = now - self.since
        checks = {
            "pending": self.waiting,
            "no_progress_s": round(stalled, 1),
            "stall_after_s": self.stall_after_s,
        }
        return Readiness(stalled < self.stall_after_s, checks)


def always_ready() -> Readiness:
    return Readiness(True)


class Health:
    """What the three endpoints answer, independent of the HTTP server that serves them.

    The dashboard mounts these on its own web server; every other process uses :class:`HealthServer`.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: ReadinessCheck = always_ready,
        liveness: ReadinessCheck = always_ready,
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        self.liveness = liveness

    def metrics(self, accept: str | None = None) -> tuple[int, str, bytes]:
        encoder, content_type = choose_encoder(accept or "")
        return 200, content_type, encoder(self.registry)

    def alive(self) -> tuple[int, str, bytes]:
        return self._check(self.liveness, "alive")

    def ready(self) -> tuple[int, str, bytes]:
        return self._check(self.readiness, "ready")

    @staticmethod
    def _check(check: ReadinessCheck, name: str) -> tuple[int, str, bytes]:
        try:
            answer = check()
        except Exception as exc:  # noqa: BLE001 - a failing check means "no", said in the body
            answer = Readiness(False, {"error": f"{type(exc).__name__}: {exc}"})
        body = {name: answer.ready, "checks": dict(answer.checks)}
        return (200 if answer.ready else 503), "application/json", json.dumps(body, default=str).encode()

    def answer(self, path: str, accept: str | None = None) -> tuple[int, str, bytes]:
        """The response to a GET of ``path`` (query strings are ignored)."""
        route = path.split("?", 1)[0].rstrip("/") or "/"
        if route == "/metrics":
            return self.metrics(accept)
        if route == "/healthz":
            return self.alive()
        if route == "/readyz":
            return self.ready()
        return 404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz or /readyz\n"


class _Handler(BaseHTTPRequestHandler):
    health: Health  # set on the subclass made per server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        status, content_type, body = self.health.answer(self.path, self.headers.get("Accept"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("health %s: " + format, self.address_string(), *args)


class HealthServer:
    """A small threaded HTTP server for one process's :class:`Health`, in a daemon thread.

    ``port=0`` picks a free port (read it back from ``port``). Binds every interface by default, as
    Prometheus' own exporter does, so a scraper on another host or container can reach it.
    """

    def __init__(self, health: Health, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
        handler = type("HealthHandler", (_Handler,), {"health": health})
        self.health = health
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"health:{port}", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("metrics, /healthz and /readyz on port %d", self.port)
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_health(
    registry: CollectorRegistry,
    port: int,
    readiness: ReadinessCheck = always_ready,
    host: str = "0.0.0.0",  # noqa: S104
    liveness: ReadinessCheck = always_ready,
) -> HealthServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``port`` until the process exits."""
    return HealthServer(Health(registry, readiness, liveness), port, host).start()


def probe(urls: list[str], timeout: float = 3.0) -> int:
    """Exit status for a container health check: 0 when every URL answers 200, else 1 (says why)."""
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own URLs
                response.read()
        except urllib.error.HTTPError as exc:
            print(f"{url}: {exc.code} {exc.read().decode(errors='replace').strip()}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"{url}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":  # python -m stream.health URL...: a health check without curl
    if len(sys.argv) < 2:
        sys.exit("usage: python -m stream.health URL [URL...]")
    sys.exit(probe(sys.argv[1:]))
