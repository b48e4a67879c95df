"""Prometheus metrics the dashboard exports about what it reads, beside its own health.

The workers count what they score; the dashboard, which reads every alert, drift event and model
update anyway, exports what only a reader of those topics sees: alerts by severity, drift events,
model updates, the production model, and each input topic's end offset and the group's lag (visible
even when no worker runs). The Grafana dashboard in ``deploy/grafana`` queries both.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from anomstream.dashboard.aggregate import SEVERITIES

MODEL_STATUSES = ("production", "candidate", "rejected", "retired")


class DashboardMetrics:
    def __init__(self, streams: tuple[str, ...]) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.alerts = Counter(
            "anomstream_observed_alerts_total", "Alerts by severity", ["stream", "severity"],
            registry=reg,
        )  # fmt: skip
        # Not the drift monitor's anomstream_drift_events_total: Prometheus scrapes both, and a panel
        # that sums one name over every job would count each event twice.
        self.drift_events = Counter(
            "anomstream_observed_drift_events_total", "Drift events read from drift-events", ["stream"],
            registry=reg,
        )  # fmt: skip
        self.model_updates = Counter(
            "anomstream_model_updates_total", "Model updates read from model-updates", ["stream", "status"],
            registry=reg,
        )  # fmt: skip
        self.production_version = Gauge(
            "anomstream_production_model_version", "Version of the stream's production model", ["stream"],
            registry=reg,
        )  # fmt: skip
        self.input_end_offset = Gauge(
            "anomstream_input_end_offset", "Sum of the input topic's end offsets", ["stream"], registry=reg
        )
        self.group_lag = Gauge(
            "anomstream_group_lag", "Input events the worker group has not committed yet", ["stream"],
            registry=reg,
        )  # fmt: skip
        self.records = Counter(
            "anomstream_dashboard_messages_total", "Messages the dashboard read", ["topic"], registry=reg
        )
        self.invalid = Counter(
            "anomstream_dashboard_invalid_messages_total", "Messages that did not decode", registry=reg
        )
        self.clients = Gauge("anomstream_dashboard_clients", "Browsers connected", registry=reg)
        self.frames = Counter("anomstream_dashboard_frames_total", "Updates pushed to browsers", registry=reg)
        # Known label values start at zero, so rate() and increase() see the first event.
        for stream in streams:
            for severity in SEVERITIES:
                self.alerts.labels(stream, severity)
            self.drift_events.labels(stream)
            for status in MODEL_STATUSES:
                self.model_updates.labels(stream, status)
