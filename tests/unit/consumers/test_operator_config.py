"""Prometheus, Grafana and compose agree with each other and with the processes they watch."""

from __future__ import annotations

import json
import re
import subprocess

from prometheus_client import CollectorRegistry

from anomstream.dashboard.metrics import DashboardMetrics
from consumers.drift.monitor_metrics import DriftMetrics
from consumers.worker_metrics import WorkerMetrics
from tests.support.operators import (
    COMPOSE,
    GRAFANA_DASHBOARD,
    GRAFANA_DATASOURCES,
    GRAFANA_PROVIDERS,
    PROMETHEUS_CONFIG,
    grafana_panels,
    grafana_queries,
    load_yaml,
    metric_names,
    option,
)
from tests.support.web import require_binary


def jobs() -> dict[str, dict]:
    return {job["job_name"]: job for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}


def test_promtool_accepts_the_configuration() -> None:
    promtool = require_binary("/usr/bin/promtool", "prometheus")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_worker_replica_the_drift_monitor_and_the_dashboard() -> None:
    services = load_yaml(COMPOSE)["services"]
    scraped = jobs()
    for job, service in (
        ("anomstream-workers", "worker"),
        ("anomstream-gpu-workers", "worker-gpu"),
        ("anomstream-incidents", "incidents"),
    ):
        (sd,) = scraped[job]["dns_sd_configs"]  # Docker DNS answers with every replica
        assert sd["names"] == [service] and sd["type"] == "A"
        assert str(sd["port"]) == option(services[service]["command"], "--metrics-port")
    (drift,) = scraped["anomstream-drift"]["dns_sd_configs"]
    assert drift["names"] == ["drift"]
    (static,) = scraped["anomstream-dashboard"]["static_configs"]
    assert static["targets"] == [f"dashboard:{option(services['dashboard']['command'], '--port')}"]


def test_compose_health_checks_probe_healthz_and_readyz() -> None:
    services = load_yaml(COMPOSE)["services"]
    for name, port_option in (
        ("worker", "--metrics-port"),
        ("worker-gpu", "--metrics-port"),
        ("incidents", "--metrics-port"),
        ("dashboard", "--port"),
    ):
        port = option(services[name]["command"], port_option)
        test = services[name]["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", "stream.health"], name
        assert test[4:] == [f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{port}/readyz"], name
    grafana = services["grafana"]
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert (
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in services["prometheus"]["volumes"]
    )


def test_grafana_is_provisioned_with_the_datasource_its_panels_use() -> None:
    (datasource,) = load_yaml(GRAFANA_DATASOURCES)["datasources"]
    (provider,) = load_yaml(GRAFANA_PROVIDERS)["providers"]
    services = load_yaml(COMPOSE)["services"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in services["grafana"]["volumes"]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    panels = grafana_panels(dashboard)
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"] and metric_names(target["expr"]), target


def test_the_dashboard_shows_what_operators_asked_for() -> None:
    """Throughput, lag, batch latency, alerts by severity, dead letters, model version, drift events."""
    queries = " ".join(t["expr"] for p in grafana_panels() for t in p["targets"])
    for metric in ("anomstream_events_total", "anomstream_consumer_lag", "anomstream_batch_seconds_bucket",
                   "anomstream_observed_alerts_total", "anomstream_dead_letters_total",
                   "anomstream_model_version", "anomstream_drift_events_total"):  # fmt: skip
        assert metric in queries, metric
    assert "by (severity)" in queries


def exported(registry: CollectorRegistry) -> set[str]:
    """The series names a registry exposes, labelled families included (they have no sample yet)."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
                "summary": ("", "_sum", "_count")}  # fmt: skip
    return {family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]}


def test_no_two_processes_export_a_metric_that_a_panel_sums_across_jobs() -> None:
    """Prometheus scrapes the workers, the drift monitor and the dashboard; a panel that reads a name
    two of them export, without picking a job, counts the same events twice."""
    processes = {
        "anomstream-workers": exported(WorkerMetrics().registry),
        "anomstream-drift": exported(DriftMetrics().registry),
        "anomstream-dashboard": exported(DashboardMetrics(("kdd",)).registry),
    }
    assert set(processes) <= set(jobs())
    for query in grafana_queries():
        for name in metric_names(query) - {"up"}:
            exporters = sorted(job for job, names in processes.items() if name in names)
            assert exporters, f"{name} (in {query!r}) is exported by no process"
            picks_a_job = re.search(rf"\b{name}\s*{{[^}}]*\bjob\s*=", query) is not None
            assert len(exporters) == 1 or picks_a_job, f"{query!r} sums {name} across {exporters}"
