"""The dashboard's web server: Starlette on uvicorn, one server-sent-event stream per browser.

A frame is made and encoded once per interval for every browser together: the cost of a frame does
not grow with the number of pages open, nor with the event rate (see :mod:`aggregate`). A page
first gets a *snapshot* (the last minute of sampled scores, recent alerts, the whole timeline), then
*deltas*; a page that falls behind gets a fresh snapshot instead of the deltas it missed.

Routes: ``/`` the page, ``/static/*`` its assets (vendored, no CDN), ``/events`` the stream,
``/api/snapshot`` the current state as JSON (``/api/snapshot.js``: as the page's first frame),
``POST /api/verdicts`` an analyst's verdict on an alert or an incident (:mod:`.verdicts`: who may
give one depends on where the dashboard listens), ``/api/incidents/{id}/alerts`` an incident's
alerts (:mod:`.incidents`), and ``/metrics``, ``/healthz``, ``/readyz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from anomstream.dashboard.aggregate import Aggregator
from anomstream.dashboard.feed import Feed
from anomstream.dashboard.incidents import incident_alerts
from anomstream.dashboard.metrics import DashboardMetrics
from anomstream.dashboard.verdicts import TOKEN_VARIABLE, VerdictEndpoint, VerdictGate, is_loopback
from stream.health import Health, Readiness
from stream.messages import Alert
from stream.settings import STREAMS, Settings
from stream.signals import ShutdownBound

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
INTERVAL_S = 0.4  # 2.5 updates a second: "at least twice a second" with room for a late tick
KEEPALIVE_S = 15.0


class DashboardError(RuntimeError):
    """The dashboard cannot start (port taken, say); the message says what to do."""


class FrameHub:
    """Makes a delta every ``interval`` seconds and hands it, encoded once, to every browser."""

    def __init__(
        self, aggregator: Aggregator, metrics: DashboardMetrics, interval: float = INTERVAL_S
    ) -> None:
        self.aggregator = aggregator
        self.metrics = metrics
        self.interval = interval
        self.seq = 0
        self.latest = b""
        self.clients = 0
        self.closed = asyncio.Event()
        self.failure: str | None = None  # why frames stopped, when they did (then /readyz says 503)
        self._changed = asyncio.Condition()
        self._encoder = msgspec.json.Encoder()

    def snapshot(self) -> tuple[int, bytes]:
        with self.aggregator.lock:
            frame = self.aggregator.snapshot()
        frame["interval"] = self.interval
        return frame["seq"], self._encoder.encode(frame)

    async def run(self) -> None:
        """A frame every ``interval`` seconds until closed."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self.closed.is_set():
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            await self.frame()

    async def frame(self) -> None:
        """Make one delta and hand it to every page (a test calls it instead of waiting on ``run``)."""
        with self.aggregator.lock:
            frame = self.aggregator.delta()  # drains the per-frame buffers even with no page open
        if not self.clients:
            self.seq = frame["seq"]
            return
        frame["interval"] = self.interval
        data = self._encoder.encode(frame)
        async with self._changed:
            self.seq, self.latest = frame["seq"], data
            self._changed.notify_all()
        self.metrics.frames.inc()

    def finished(self, task: asyncio.Task) -> None:
        """Frames stopped: say why in the log and in /readyz (a bug, not a state to carry on in)."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("frames stopped: %s", exc, exc_info=exc)
        self.failure = f"stopped: {type(exc).__name__}: {exc}"

    async def close(self) -> None:
        self.closed.set()
        async with self._changed:
            self._changed.notify_all()

    async def _next(self, seq: int) -> tuple[int, bytes]:
        """The latest frame once it is newer than ``seq`` (or unchanged after KEEPALIVE_S, or at close)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.seq > seq or self.closed.is_set()), KEEPALIVE_S
                )
            return self.seq, self.latest

    async def stream(self) -> AsyncIterator[bytes]:
        """The server-sent events of one browser, until it goes away or the server stops."""
        self.clients += 1
        self.metrics.clients.inc()
        try:
            seq, data = self.snapshot()
            yield _event("snapshot", seq, data, retry_ms=2000)
            while not self.closed.is_set():
                latest_seq, latest = await self._next(seq)
                if self.closed.is_set():
                    return
                if latest_seq == seq:
                    yield b": keep-alive\n\n"
                elif latest_seq == seq + 1:
                    seq = latest_seq
                    yield _event("delta", seq, latest)
                else:  # this page missed deltas (a slow connection): start it over
                    seq, data = self.snapshot()
                    yield _event("snapshot", seq, data)
        finally:
            self.clients -= 1
            self.metrics.clients.dec()


def _event(kind: str, seq: int, data: bytes, retry_ms: int | None = None) -> bytes:
    head = f"retry: {retry_ms}\n" if retry_ms else ""
    return f"{head}id: {seq}\nevent: {kind}\n".encode() + b"data: " + data + b"\n\n"


def create_app(settings: Settings, from_beginning: bool = False, interval: float = INTERVAL_S,
               host: str = "127.0.0.1", inputs: Mapping[str, str] | None = None) -> Starlette:  # fmt: skip
    """The dashboard as an ASGI application; its Kafka readers start and stop with it. ``host`` is
    the address it listens on: beyond localhost, verdicts need the analysts' token. ``inputs``: the
    input topic of each dataset schema's stream to show beside the built-in ones (its lag)."""
    streams = tuple(dict.fromkeys([*STREAMS, *(inputs or {})]))
    aggregator = Aggregator(streams)
    gate = VerdictGate(host, settings.dashboard.analyst_token)
    aggregator.status["verdicts"] = gate.mode  # the page asks for the token, or says why not
    metrics = DashboardMetrics(streams)
    feed = Feed(settings, aggregator, metrics, from_beginning, inputs=inputs)
    aggregator.thresholds = feed.threshold
    hub = FrameHub(aggregator, metrics, interval)

    def readiness() -> Readiness:
        answer = feed.readiness()
        checks = {**answer.checks, "frames": hub.failure or f"every {hub.interval:.1f}s"}
        return Readiness(answer.ready and hub.failure is None, checks)

    resilience = settings.resilience
    health = Health(metrics.registry, readiness, lambda: feed.liveness(resilience.stall_after_s))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        feed.start()
        task = asyncio.create_task(hub.run(), name="frames")
        task.add_done_callback(hub.finished)
        try:
            yield
        finally:
            # Bounded: past the grace period the process exits 75 (nothing of the dashboard's is lost).
            bound = ShutdownBound(
                resilience.shutdown_grace_s, "dashboard", lambda: "its Kafka readers"
            ).begin()
            try:
                await hub.close()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await asyncio.to_thread(feed.close)
            finally:
                bound.finished()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def events(request: Request) -> Response:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(hub.stream(), media_type="text/event-stream", headers=headers)

    async def snapshot(request: Request) -> Response:
        return Response(hub.snapshot()[1], media_type="application/json")

    async def first_frame(request: Request) -> Response:
        # The page's first frame as a script: the load event waits for it (not for the event stream,
        # which opens after load), so a headless screenshot or a link preview shows the pipeline.
        body = b"window.anomstreamFirst = " + hub.snapshot()[1] + b";\n"
        return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-store"})

    async def members(request: Request) -> Response:
        incident_id = request.path_params["incident_id"]
        with aggregator.lock:
            finding = aggregator.incidents.get(incident_id)
        if finding is None:
            return JSONResponse({"error": f"no incident {incident_id} on the incidents topic"}, 404)

        def shown(alert_id: str) -> Alert | None:
            with aggregator.lock:
                return aggregator.shown_alert(alert_id)

        found = await asyncio.to_thread(incident_alerts, settings, finding, incident_id, shown)
        return Response(msgspec.json.encode(found), media_type="application/json")

    def health_route(path: str) -> Route:
        async def answer(request: Request) -> Response:
            status, content_type, body = health.answer(path, request.headers.get("accept"))
            return Response(body, status_code=status, media_type=content_type)

        return Route(path, answer)

    routes: list[Any] = [
        Route("/", index),
        Route("/events", events),
        Route("/api/snapshot", snapshot),
        Route("/api/snapshot.js", first_frame),
        Route("/api/incidents/{incident_id:str}/alerts", members),
        Route("/api/verdicts", VerdictEndpoint(settings, aggregator, gate).answer, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        *(health_route(path) for path in ("/metrics", "/healthz", "/readyz")),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.hub, app.state.feed, app.state.aggregator = hub, feed, aggregator
    return app


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts: a taken port is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DashboardError(
            f"cannot listen on {host}:{port} ({exc.strerror}): another program uses the port; "
            "pass --port with a free one"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8050, from_beginning: bool = False,
          announce: Any = print, inputs: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """``anomstream dashboard``: serve until SIGINT/SIGTERM."""
    import uvicorn

    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    announce(
        f"dashboard at http://{shown}:{sock.getsockname()[1]}/ (metrics, /healthz and /readyz beside it)"
    )
    if not is_loopback(host) and settings.dashboard.analyst_token is None:
        announce(f"verdicts are refused on {host}: set {TOKEN_VARIABLE} to take them from analysts")
    config = uvicorn.Config(
        create_app(settings, from_beginning, host=host, inputs=inputs),
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn has shut down gracefully, then re-raises the SIGINT/SIGTERM it caught: for a
        # server, being told to stop is a clean exit.
        log.info("dashboard stopped")
