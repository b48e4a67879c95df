"""The operators' configuration in ``deploy/`` and ``docker-compose.yml``, read for tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.data import REPO

DEPLOY = REPO / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA_DASHBOARD = DEPLOY / "grafana" / "dashboards" / "anomstream.json"
GRAFANA_DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "anomstream.yml"
COMPOSE = REPO / "docker-compose.yml"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def grafana_panels(dashboard: dict | None = None) -> list[dict]:
    """Every panel, rows' panels included."""
    dashboard = dashboard or json.loads(GRAFANA_DASHBOARD.read_text())
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def grafana_queries() -> list[str]:
    """The PromQL of every target of every panel."""
    return [target["expr"] for panel in grafana_panels() for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names a query reads: anomstream's own, and Prometheus' ``up``."""
    names = set(re.findall(r"\b(anomstream_[a-z0-9_]+)\b", expr))
    if re.search(r"\bup\s*\{", expr):
        names.add("up")
    return names


def option(command: list[str], name: str) -> str:
    """The value after ``name`` in a compose command list."""
    return command[command.index(name) + 1]
