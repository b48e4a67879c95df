"""An incident as its messages: the OCSF Detection Finding on ``incidents`` and the members on
``incident-members`` (:class:`stream.messages.Incident`, :class:`stream.messages.IncidentMembers`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from consumers.incidents.grouping import Activity, AlertRef, OpenIncident
from stream.messages import (
    FeatureContribution,
    Incident,
    IncidentGroup,
    IncidentMembers,
    IncidentModel,
    IncidentUnmapped,
    MemberAlert,
    OcsfAnalytic,
    OcsfFindingInfo,
    OcsfMetadata,
    SourceRef,
    encode,
)

SEVERITY_NAMES = {2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
ACTIVITY_NAMES = {Activity.CREATE: "Create", Activity.UPDATE: "Update", Activity.CLOSE: "Close"}
STATUS = {Activity.CREATE: (1, "New"), Activity.UPDATE: (2, "In Progress"), Activity.CLOSE: (4, "Resolved")}
MEMBERS_PER_MESSAGE = 2000  # ~150 bytes each: well under a Kafka message's 1 MB


def shared_features(incident: OpenIncident, k: int = 5) -> list[tuple[str, float]]:
    """The features that explain the incident's alerts most, with their mean contribution."""
    top = sorted(incident.contributions.items(), key=lambda kv: -kv[1])[:k]
    return [(name, total / max(incident.count, 1)) for name, total in top]


def describe(incident: OpenIncident) -> str:
    """One line: how many alerts, where, what they share.

    e.g. ``412 alerts on kdd: src_bytes, service=ecr_i, count``"""
    if incident.kind == "fields":
        shared = ", ".join(f"{k}={v}" for k, v in incident.fields.items())
    else:
        shared = ", ".join(name for name, _ in shared_features(incident, 3))
    return f"{incident.count} alerts on {incident.stream}: {shared or 'no explanation'}"


def incident_message(incident: OpenIncident, activity: Activity, time_ms: int) -> Incident:
    """The OCSF Detection Finding for ``incident`` as it is now."""
    status_id, status = STATUS[activity]
    features = shared_features(incident)
    what = describe(incident)
    return Incident(
        activity_id=int(activity),  # type: ignore[arg-type]
        activity_name=ACTIVITY_NAMES[activity],  # type: ignore[arg-type]
        type_uid=200400 + int(activity),  # type: ignore[arg-type]
        type_name=f"Detection Finding: {ACTIVITY_NAMES[activity]}",
        severity_id=incident.severity_id,  # type: ignore[arg-type]
        severity=SEVERITY_NAMES[incident.severity_id],  # type: ignore[arg-type]
        status_id=status_id,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        time=time_ms,
        start_time=incident.start_ms,
        end_time=incident.end_ms,
        count=incident.count,
        message=what,
        metadata=OcsfMetadata(uid=f"{incident.incident_id}:{incident.revision}"),
        finding_info=OcsfFindingInfo(
            uid=incident.incident_id,
            title=f"{incident.stream} incident: {what.split(': ', 1)[-1]}",
            desc=f"{what}, grouped by {incident.kind} in partition {incident.partition} of the alerts topic",
            first_seen_time=incident.start_ms,
            last_seen_time=incident.end_ms,
            analytic=OcsfAnalytic(
                name=incident.detector,
                uid=f"{incident.stream}/{incident.detector}",
                version=str(incident.model_version),
            ),
        ),
        unmapped=IncidentUnmapped(
            stream=incident.stream,
            model=IncidentModel(incident.detector, incident.model_version),
            group=IncidentGroup(
                kind=incident.kind,  # type: ignore[arg-type]
                fields=dict(incident.fields),
                features=[name for name, _ in features],
            ),
            top_features=[FeatureContribution(name, value) for name, value in features],
            alert_ids=list(incident.alert_ids),
            revision=incident.revision,
            partition=incident.partition,
            labels=dict(incident.labels) if incident.labels else None,
            verdict=incident.verdict,
        ),
    )


def members_messages(incident_id: str, stream: str, alerts: Sequence[AlertRef]) -> Iterator[bytes]:
    """The IncidentMembers values for alerts that joined ``incident_id`` in one batch (split so each
    fits one Kafka message)."""
    for first in range(0, len(alerts), MEMBERS_PER_MESSAGE):
        chunk = alerts[first : first + MEMBERS_PER_MESSAGE]
        yield encode(
            IncidentMembers(
                incident_id=incident_id,
                stream=stream,
                alerts=[MemberAlert(a.alert_id, SourceRef(*a.source), a.label) for a in chunk],
            )
        )
