"""What analysts use: ``alerts tail`` and ``verdict``, ``incidents list`` and ``verdict``, ``verdicts
list``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from anomstream.commands.common import (
    alerts_app,
    incidents_app,
    settings,
    verdicts_app,
)
from anomstream.options import one_of


@alerts_app.command("tail")
def alerts_tail(
    stream: Annotated[str | None, typer.Option(help="only alerts of this stream")] = None,
    severity: Annotated[
        str | None,
        typer.Option(
            help="minimum severity: low, medium, high, critical",
            callback=one_of("low", "medium", "high", "critical"),
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON alert per line")] = False,
    from_beginning: Annotated[bool, typer.Option(help="start at the oldest alert")] = False,
    limit: Annotated[int | None, typer.Option(help="stop after N alerts", min=1)] = None,
) -> None:
    """Follow the alerts topic."""
    from consumers.alerts import tail
    from stream.kafka import wait_for_broker

    s = settings()
    wait_for_broker(s, timeout=10)
    tail(s, stream, severity, as_json, from_beginning, limit)


@alerts_app.command("verdict")
def alerts_verdict(
    alert_id: Annotated[str, typer.Argument(help="the alert's alert_id (alerts tail --json shows it)")],
    verdict: Annotated[str, typer.Argument(help="benign (normal traffic: may be learnt) or malicious")],
    reason: Annotated[str, typer.Option(help="why, for the audit trail")] = "",
    by: Annotated[str | None, typer.Option(help="the analyst (default: $USER, else 'cli')")] = None,
) -> None:
    """An analyst's verdict on an alert, published on the feedback topic (the retrain learns benign
    events, never malicious ones)."""
    import os

    from consumers.verdicts import check_verdict, give_verdict
    from stream.kafka import wait_for_broker

    analyst = by if by is not None else os.environ.get("USER") or "cli"
    check_verdict(verdict, analyst, reason, alert_id)
    s = settings()
    wait_for_broker(s, timeout=10)
    given = give_verdict(s, alert_id, verdict, analyst, reason)
    model = f"{given.detector} v{given.model_version}"
    assert given.source is not None  # an alert verdict carries its alert's coordinates
    where = f"{given.source.topic}[{given.source.partition}]@{given.source.offset}"
    print(f"{given.verdict} on alert {given.alert_id} ({given.stream}, {model}, {where}) by {given.by} "
          f"at {given.given_at}: published on {s.topic('feedback')}")  # fmt: skip


@incidents_app.command("verdict")
def incidents_verdict(
    incident_id: Annotated[str, typer.Argument(help="the incident's id (incidents list shows it)")],
    verdict: Annotated[str, typer.Argument(help="benign (normal traffic: may be learnt) or malicious")],
    reason: Annotated[str, typer.Option(help="why, for the audit trail")] = "",
    by: Annotated[str | None, typer.Option(help="the analyst (default: $USER, else 'cli')")] = None,
) -> None:
    """One verdict for every alert of an incident (those that join it until it closes included),
    published on the feedback topic: the retrain learns benign ones, never malicious ones."""
    import os

    from consumers.verdicts import check_verdict, give_incident_verdict
    from stream.kafka import wait_for_broker

    analyst = by if by is not None else os.environ.get("USER") or "cli"
    check_verdict(verdict, analyst, reason, incident_id)
    s = settings()
    wait_for_broker(s, timeout=10)
    given = give_incident_verdict(s, incident_id, verdict, analyst, reason)
    model = f"{given.detector} v{given.model_version}"
    print(f"{given.verdict} on incident {given.incident_id} ({given.stream}, {model}) by {given.by} "
          f"at {given.given_at}: published on {s.topic('feedback')}")  # fmt: skip


@verdicts_app.command("list")
def verdicts_list(
    stream: Annotated[str | None, typer.Option(help="only verdicts on this stream")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one feedback message (JSON) per line")] = False,
) -> None:
    """Every verdict given so far, alert and incident verdicts alike, oldest first (the feedback topic
    keeps them all: the last one on an alert or incident is the one a retrain uses)."""
    from rich.table import Table

    from consumers.verdicts import iter_feedback
    from stream.kafka import wait_for_broker
    from stream.messages import encode

    s = settings()
    wait_for_broker(s, timeout=10)
    given = [f for _, f in iter_feedback(s) if f is not None and (stream is None or f.stream == stream)]
    given.sort(key=lambda f: f.given_at)
    if as_json:
        for feedback in given:
            print(encode(feedback).decode())
        return
    table = Table(title=f"verdicts on {s.topic('feedback')}: {len(given)}")
    for column in ("given at", "verdict", "on", "stream", "model", "by", "reason"):
        table.add_column(column)
    for f in given:
        on = f"incident {f.incident_id}" if f.incident_id is not None else f"alert {f.alert_id}"
        table.add_row(f.given_at, f.verdict, on, f.stream, f"{f.detector} v{f.model_version}", f.by, f.reason)
    Console().print(table)


@incidents_app.command("list")
def incidents_list(
    stream: Annotated[str | None, typer.Option(help="only incidents of this stream")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="only incidents not closed yet")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON incident per line")] = False,
) -> None:
    """The incidents' current state: the latest message of each incident."""
    from consumers.incidents.listing import read_incidents
    from stream.kafka import wait_for_broker
    from stream.messages import encode

    s = settings()
    wait_for_broker(s, timeout=10)
    found = read_incidents(s, stream, open_only)
    if as_json:
        for incident in found:
            sys.stdout.write(encode(incident).decode() + "\n")
        return
    from anomstream.incident_views import incidents_table

    Console().print(incidents_table(found))
