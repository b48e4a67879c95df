"""``anomstream incidents list``: the incidents as a table."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.table import Table

from stream.messages import Incident

SEVERITY_STYLE = {"Low": "dim", "Medium": "yellow", "High": "red", "Critical": "bold red"}


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def incidents_table(incidents: list[Incident]) -> Table:
    """One row per incident: its id, state, severity, count, first/last seen, what its alerts share
    and, in a replay, the label mix."""
    table = Table(
        "incident",
        "status",
        "severity",
        "alerts",
        "first seen",
        "last seen",
        "shared",
        "labels",
        title=f"{len(incidents)} incidents",
    )
    for incident in incidents:
        u = incident.unmapped
        shared = ", ".join([*(f"{k}={v}" for k, v in u.group.fields.items()), *u.group.features[:3]])
        labels = ", ".join(
            f"{k} {v:,}" for k, v in sorted((u.labels or {}).items(), key=lambda kv: -kv[1])[:3]
        )
        style = SEVERITY_STYLE.get(incident.severity, "")
        table.add_row(
            incident.finding_info.uid,
            incident.status,
            f"[{style}]{incident.severity}[/]",
            f"{incident.count:,}",
            _when(incident.start_time),
            _when(incident.end_time),
            shared,
            labels,
        )
    return table
