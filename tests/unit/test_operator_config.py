"""Prometheus, Grafana and compose agree with each other and with the processes they watch."""

from __future__ import annotations

import json
import subprocess

from tests.support.operators import (
    COMPOSE,
    GRAFANA_DASHBOARD,
    GRAFANA_DATASOURCES,
    GRAFANA_PROVIDERS,
    PROMETHEUS_CONFIG,
    grafana_panels,
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
    for job, service in (("anomstream-workers", "worker"), ("anomstream-gpu-workers", "worker-gpu")):
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
