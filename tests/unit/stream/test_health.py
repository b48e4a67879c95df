"""The health server: /metrics, /healthz and /readyz on one port, over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from stream.health import Health, HealthServer, Readiness


@pytest.fixture
def state() -> dict:
    return {"ready": False, "raise": False}


@pytest.fixture
def server(state: dict) -> Iterator[HealthServer]:
    registry = CollectorRegistry()
    Counter("anomstream_things_total", "Things", registry=registry).inc(3)

    def readiness() -> Readiness:
        if state["raise"]:
            raise ConnectionError("broker gone")
        return Readiness(state["ready"], {"assigned_partitions": ["t[0]"] if state["ready"] else []})

    server = HealthServer(Health(registry, readiness), port=0, host="127.0.0.1").start()
    yield server
    server.close()


def get(server: HealthServer, path: str, accept: str | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}", headers={"Accept": accept or ""}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_metrics_serve_the_registry_in_both_formats(server: HealthServer) -> None:
    status, content_type, body = get(server, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    assert "anomstream_things_total 3.0" in body.decode()
    status, content_type, body = get(server, "/metrics", "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and body.decode().endswith("# EOF\n")


def test_healthz_answers_while_not_ready(server: HealthServer) -> None:
    assert get(server, "/healthz")[0] == 200
    status, _, body = get(server, "/readyz")
    assert status == 503 and json.loads(body) == {"ready": False, "checks": {"assigned_partitions": []}}


def test_readyz_follows_the_callback(server: HealthServer, state: dict) -> None:
    state["ready"] = True
    status, content_type, body = get(server, "/readyz?verbose=1")
    assert status == 200 and content_type == "application/json"
    assert json.loads(body)["checks"] == {"assigned_partitions": ["t[0]"]}


def test_a_failing_readiness_check_is_not_ready_and_says_why(server: HealthServer, state: dict) -> None:
    state["raise"] = True
    status, _, body = get(server, "/readyz")
    assert status == 503 and json.loads(body)["checks"]["error"] == "ConnectionError: broker gone"
    assert get(server, "/healthz")[0] == 200  # alive: the process still serves


def test_unknown_paths_are_404(server: HealthServer) -> None:
    status, _, body = get(server, "/nope")
    assert status == 404 and b"/readyz" in body


def test_probe_exit_status_is_the_health_check(server: HealthServer, state: dict) -> None:
    base = f"http://127.0.0.1:{server.port}"

    def probe(*paths: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "stream.health", *(base + p for p in paths)]
        return subprocess.run(command, capture_output=True, text=True, timeout=30)

    assert probe("/healthz").returncode == 0
    failed = probe("/healthz", "/readyz")
    assert failed.returncode == 1 and "503" in failed.stderr
    state["ready"] = True
    assert probe("/healthz", "/readyz").returncode == 0
    server.close()
    assert probe("/healthz").returncode == 1


def test_healthz_follows_a_liveness_callback() -> None:
    alive = {"ok": True}
    health = Health(CollectorRegistry(), liveness=lambda: Readiness(alive["ok"], {"loop_seen_s_ago": 1.0}))
    server = HealthServer(health, port=0, host="127.0.0.1").start()
    try:
        assert get(server, "/healthz")[0] == 200
        alive["ok"] = False
        status, _, body = get(server, "/healthz")
        assert status == 503 and json.loads(body) == {"alive": False, "checks": {"loop_seen_s_ago": 1.0}}
    finally:
        server.close()


def test_worker_readiness_and_liveness_from_what_the_loop_recorded() -> None:
    """The health thread reads what the consume loop noted; it never calls the worker's consumer."""
    import time
    from types import SimpleNamespace

    from consumers.worker_metrics import LOOP_DEAD_S, WorkerMetrics, worker_readiness
    from stream.settings import Settings

    metrics = WorkerMetrics()
    model = SimpleNamespace(detector_name="ae", version=3)
    # Nothing listens on port 1: the broker check fails fast and says so.
    worker = SimpleNamespace(
        metrics=metrics, models={"kdd": model}, settings=Settings(bootstrap_servers="127.0.0.1:1")
    )
    assert metrics.alive().ready  # still loading: alive
    answer = worker_readiness(worker)
    assert not answer.ready and answer.checks["loop"] == "not consuming yet"

    metrics.loop_seen, metrics.member_id, metrics.assigned = time.monotonic(), "member-1", ["t[0]"]
    answer = worker_readiness(worker)
    assert not answer.ready and answer.checks["broker"] != "reachable"
    assert answer.checks["models"] == {"kdd": "ae v3"} and answer.checks["assigned_partitions"] == ["t[0]"]

    metrics.loop_seen = time.monotonic() - LOOP_DEAD_S - 1
    assert not metrics.alive().ready


def test_liveness_means_progress_not_a_turning_loop() -> None:
    """Issue 19: a worker whose publisher was stuck for minutes, with lag, still answered /healthz 200."""
    from stream.health import Progress

    progress = Progress(stall_after_s=30)
    progress.pending(0, now=0.0)
    assert progress.liveness(now=1000.0).ready, "idle with nothing pending stays healthy"
    progress.pending(120, now=1000.0)  # lag appears after an idle hour: the clock starts now
    assert progress.liveness(now=1020.0).ready
    progress.pending(120, now=1031.0)
    stalled = progress.liveness(now=1031.0)
    assert not stalled.ready and stalled.checks["pending"] == 120
    progress.completed(now=1032.0)
    assert progress.liveness(now=1040.0).ready, "a completed batch heals it"
