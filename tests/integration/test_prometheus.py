"""A real Prometheus (Debian's ``prometheus``) scrapes a running worker and the dashboard with the
jobs of ``deploy/prometheus/prometheus.yml``; every metric the Grafana dashboard queries is in what it
scraped, and every panel's query returns data."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import yaml

from stream.broker import free_port
from stream.settings import Settings
from tests.support import corrected_sample, replay, spawn_worker, wait_until
from tests.support.operators import PROMETHEUS_CONFIG, grafana_queries, load_yaml, metric_names
from tests.support.web import get_json, http_status, require_binary, spawn_dashboard, stop

pytestmark = pytest.mark.integration


def local_config(targets: dict[str, str]) -> dict:
    """The deploy configuration with each job's service discovery replaced by a local target, and
    a one-second scrape interval; jobs, paths and relabelling stay as they are."""
    config = load_yaml(PROMETHEUS_CONFIG)
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s"})
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job = {k: v for k, v in job.items() if not k.endswith("_sd_configs") and k != "static_configs"}
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    return config


def test_prometheus_scrapes_every_metric_the_grafana_dashboard_queries(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    prometheus = require_binary("/usr/bin/prometheus", "prometheus")
    settings = kafka_settings
    worker_port, dash_port, prom_port, drift_port = free_port(), free_port(), free_port(), free_port()
    worker = spawn_worker(settings, "--metrics-port", str(worker_port), log_path=tmp_path / "worker.log")
    dashboard = spawn_dashboard(settings, dash_port, tmp_path / "dashboard.log")
    # The drift monitor exports the drift panels' counter (the dashboard's own is named otherwise).
    monitor = subprocess.Popen(
        [sys.executable, "-m", "anomstream", "drift", "--stream", "kdd", "--metrics-port", str(drift_port)],
        env=settings.environment(),
        stdout=(tmp_path / "drift.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    server = None
    try:
        assert wait_until(lambda: http_status(f"http://127.0.0.1:{worker_port}/readyz") == 200, 120), (
            tmp_path / "worker.log"
        ).read_text()[-3000:]
        assert wait_until(lambda: http_status(f"http://127.0.0.1:{dash_port}/readyz") == 200, 60)
        assert wait_until(lambda: http_status(f"http://127.0.0.1:{drift_port}/readyz") == 200, 120), (
            tmp_path / "drift.log"
        ).read_text()[-3000:]
        replay(settings, corrected_sample(settings.data_dir, 3000, seed=5))

        config = local_config(
            {
                "anomstream-workers": f"127.0.0.1:{worker_port}",
                "anomstream-dashboard": f"127.0.0.1:{dash_port}",
                "anomstream-drift": f"127.0.0.1:{drift_port}",
            }
        )
        assert {job["job_name"] for job in config["scrape_configs"]} == {
            "anomstream-workers",
            "anomstream-dashboard",
            "anomstream-drift",
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        command = [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ]
        server = subprocess.Popen(
            command, stdout=(tmp_path / "prometheus.log").open("ab"), stderr=subprocess.STDOUT
        )
        api = f"http://127.0.0.1:{prom_port}"
        assert wait_until(lambda: http_status(f"{api}/-/ready") == 200, 60), (
            tmp_path / "prometheus.log"
        ).read_text()

        def targets_up() -> bool:
            active = get_json(f"{api}/api/v1/targets")["data"]["activeTargets"]
            return len(active) == 3 and all(t["health"] == "up" for t in active)

        assert wait_until(targets_up, 30), get_json(f"{api}/api/v1/targets")

        queries = grafana_queries()
        wanted = set().union(*(metric_names(q) for q in queries))
        assert len(wanted) >= 10, wanted

        def scraped() -> set[str]:
            return set(get_json(f"{api}/api/v1/label/__name__/values")["data"])

        wait_until(lambda: wanted <= scraped(), 20)
        assert not wanted - scraped(), (
            f"the Grafana dashboard queries metrics nobody exports: {wanted - scraped()}"
        )

        def answer(expr: str) -> list:
            reply = get_json(f"{api}/api/v1/query?query={urllib.parse.quote(expr)}")
            assert reply["status"] == "success", (expr, reply)
            return reply["data"]["result"]

        # rate() and deriv() need two samples in their window: a few scrapes.
        wait_until(lambda: all(answer(q) for q in queries), 30)
        empty = [q for q in queries if not answer(q)]
        assert not empty, f"panel queries without data: {empty}"
        events = answer('sum(anomstream_events_total{job="anomstream-workers"})')
        assert float(events[0]["value"][1]) == 3000
    finally:
        if server is not None:
            stop(server)
        stop(worker, 60)
        stop(dashboard)
        stop(monitor)
