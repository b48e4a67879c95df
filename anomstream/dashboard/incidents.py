"""Incidents on the dashboard: the ``incidents`` topic (OCSF Detection Findings, the latest message
per incident id counts) summarised for the page, and an incident's alerts looked up on demand.

The page leads with incidents, not alerts: an analyst judges a group of similar alerts at a glance
(what they share, how many, since when, the label mix of a labelled replay) and gives one verdict
for all of them. Incidents are few (the stage makes at most one per hundreds of alerts), so the
board keeps the newest :data:`INCIDENTS_KEPT` whole and sends a page the first :data:`SHOWN` of
them, open ones first, whenever one changes.

An incident's alerts are not kept: asked for, they are read from ``incident-members`` (every alert
that joined it), or, before the stage has published any, taken from the incident's own sample of
alert ids; each is then completed from the alerts this dashboard sent to pages, else from the
alerts topic (one backward search for all of them, bounded in time).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec
from confluent_kafka import Message

from stream.kafka import TopicMissingError, search_backwards
from stream.messages import Alert
from stream.settings import Settings

log = logging.getLogger(__name__)

INCIDENTS_KEPT = 500
SHOWN = 50
MAX_ALERTS = 100  # an incident's alerts shown on demand: the newest members, at most this many
LOOKUP_TIMEOUT_S = 10.0
RESOLVED = 4  # OCSF status_id of a closed incident


class IncidentBoard:
    """The latest message of each incident (the highest revision wins: a replayed batch may
    re-publish an older one) and the verdicts given on incidents. Not thread-safe by itself: used
    under the aggregator's lock."""

    def __init__(self) -> None:
        self.incidents: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.verdicts: dict[str, dict[str, Any]] = {}
        self.changed = False
        self.received = 0

    def add(self, finding: dict[str, Any]) -> bool:
        """Keep an incident message; False when it is not one (no finding_info.uid) or is older."""
        incident_id = (finding.get("finding_info") or {}).get("uid")
        if not isinstance(incident_id, str) or not incident_id:
            return False
        self.received += 1
        known = self.incidents.get(incident_id)
        if known is not None and _revision(known) > _revision(finding):
            return False
        self.incidents[incident_id] = finding
        self.incidents.move_to_end(incident_id)
        while len(self.incidents) > INCIDENTS_KEPT:
            self.incidents.popitem(last=False)
        self.changed = True
        return True

    def add_verdict(self, incident_id: str, entry: dict[str, Any]) -> None:
        self.verdicts[incident_id] = entry
        while len(self.verdicts) > INCIDENTS_KEPT * 4:
            self.verdicts.pop(next(iter(self.verdicts)))
        self.changed = True

    def get(self, incident_id: str) -> dict[str, Any] | None:
        return self.incidents.get(incident_id)

    def view(self) -> list[dict[str, Any]]:
        """What a page shows: open incidents first, then the most recently active."""
        rows = [row_of(f, self.verdicts.get(i)) for i, f in self.incidents.items()]
        rows.sort(key=lambda r: (r["open"], r["last_seen"] or 0), reverse=True)
        return rows[:SHOWN]

    def drain(self) -> list[dict[str, Any]] | None:
        """The view when something changed since the last call, else None (a delta omits it)."""
        if not self.changed:
            return None
        self.changed = False
        return self.view()


def _revision(finding: dict[str, Any]) -> int:
    revision = (finding.get("unmapped") or {}).get("revision")
    return revision if isinstance(revision, int) else -1


def row_of(finding: dict[str, Any], verdict: dict[str, Any] | None = None) -> dict[str, Any]:
    """One incident as the page shows it (times in epoch milliseconds, as OCSF has them)."""
    info = finding.get("finding_info") or {}
    unmapped = finding.get("unmapped") or {}
    model = unmapped.get("model") or {}
    group = unmapped.get("group") or {}
    given = verdict or unmapped.get("verdict")  # the dashboard's own reading is newer than the stage's echo
    return {
        "id": info.get("uid"),
        "revision": unmapped.get("revision"),
        "open": finding.get("status_id") != RESOLVED,
        "status": finding.get("status") or "",
        "severity": str(finding.get("severity") or "").lower(),
        "count": finding.get("count"),
        "first_seen": info.get("first_seen_time", finding.get("start_time")),
        "last_seen": info.get("last_seen_time", finding.get("end_time")),
        "stream": unmapped.get("stream"),
        "model": f"{model.get('detector')} v{model.get('version')}" if model else None,
        "title": info.get("title") or finding.get("message") or "",
        "message": finding.get("message") or "",
        "group": {
            "kind": group.get("kind"),
            "fields": group.get("fields") or {},
            "features": group.get("features") or [],
        },  # fmt: skip
        "top_features": unmapped.get("top_features") or [],
        "labels": unmapped.get("labels"),
        "verdict": given,
        "sample": len(unmapped.get("alert_ids") or []),
    }


# -- an incident's alerts, on demand ----------------------------------------------------------------
def incident_alerts(
    settings: Settings,
    finding: dict[str, Any] | None,
    incident_id: str,
    shown: Callable[[str], Alert | None],
    timeout: float = LOOKUP_TIMEOUT_S,
) -> dict[str, Any]:
    """The alerts of one incident: ``{"incident_id", "from", "members", "alerts"}``, where ``from``
    says where the list came from (``incident-members`` or the incident's ``sample``) and each alert
    is the alert as published, or ``{"alert_id", "source", "label", "found": false}`` when it was not
    found on the alerts topic within ``timeout``."""
    deadline = time.monotonic() + timeout
    members = _members(settings, incident_id, timeout / 2)
    origin = "incident-members"
    if not members and finding is not None:
        origin = "sample"
        ids = (finding.get("unmapped") or {}).get("alert_ids") or []
        members = [{"alert_id": i, "source": None, "label": None} for i in ids if isinstance(i, str)]
    total = len(members)
    members = members[-MAX_ALERTS:]
    found: dict[str, Alert] = {}
    for member in members:
        alert = shown(member["alert_id"])
        if alert is not None:
            found[alert.alert_id] = alert
    wanted = {m["alert_id"] for m in members} - set(found)
    if wanted:
        found |= _search_alerts(settings, wanted, max(1.0, deadline - time.monotonic()))
    alerts: list[Any] = []
    for member in reversed(members):  # newest first, as the alert feed
        alert = found.get(member["alert_id"])
        alerts.append(msgspec.to_builtins(alert) if alert is not None else {**member, "found": False})
    return {"incident_id": incident_id, "from": origin, "members": total, "alerts": alerts}


def _members(settings: Settings, incident_id: str, timeout: float) -> list[dict[str, Any]]:
    """Every alert of the incident on ``incident-members`` (the union of its messages), oldest first."""
    key = incident_id.encode()
    batches: list[tuple[int, int, list[dict[str, Any]]]] = []

    def collect(message: Message) -> bool:
        if message.key() != key:
            return False
        try:
            data = msgspec.json.decode(message.value() or b"")
            alerts = [a for a in data.get("alerts", []) if isinstance(a, dict) and a.get("alert_id")]
        except (msgspec.DecodeError, AttributeError):
            return False
        batches.append((message.partition(), message.offset(), alerts))
        return False  # read on: an incident has one message per stage batch that added to it

    try:
        search_backwards(settings, settings.topic("incident_members"), collect, timeout=timeout)
    except TopicMissingError:
        return []
    seen: dict[str, dict[str, Any]] = {}
    for _, _, alerts in sorted(batches):
        for alert in alerts:
            seen.setdefault(alert["alert_id"], alert)
    return list(seen.values())


def _search_alerts(settings: Settings, wanted: set[str], timeout: float) -> dict[str, Alert]:
    """The alerts with these ids, in one backward search of the alerts topic."""
    found: dict[str, Alert] = {}
    prefix = b'{"alert_id":"'  # the worker writes the id first: no decoding of the others

    def collect(message: Message) -> bool:
        value = message.value() or b""
        end = value.find(b'"', len(prefix)) if value.startswith(prefix) else -1
        alert_id = value[len(prefix) : end].decode(errors="replace") if end > 0 else None
        if alert_id is not None and alert_id in wanted:
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                found[alert_id] = msgspec.json.decode(value, type=Alert)
        return len(found) == len(wanted)

    with contextlib.suppress(TopicMissingError):
        search_backwards(settings, settings.topic("alerts"), collect, timeout=timeout)
    return found
