"""What the incident stage made of a run, read back from its topics: the incident rows of
``anomstream up``'s summary, and the wait for the stage to catch up that the bench shares.

* incidents: the distinct incidents of a stream on ``incident-members`` (each published in the
  stage's batch transaction, so under ``--eos`` every alert is counted once);
* open: those whose latest message on ``incidents`` is not a close;
* alerts grouped: the alerts in their members, the union of their IncidentMembers messages;
* purity, when alerts carried ground-truth labels: the alert-weighted share of each incident's
  majority label (issue 25's goal: >= 0.95 on the demo's ``corrected`` stream).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec
from confluent_kafka import TopicPartition

from consumers.incidents.listing import read_incidents
from stream.kafka import end_offsets, make_consumer, read_ranges
from stream.messages import IncidentMembers, decode_incident_members
from stream.settings import Settings

CLOSE = 3  # OCSF activity_id of an incident's last message


@dataclass(frozen=True)
class IncidentSummary:
    incidents: int = 0
    open: int = 0
    alerts: int = 0
    labelled: int = 0  # alerts that carried a ground-truth label
    purity: float | None = None  # None: no alert carried a label


def summarize(members: Iterable[IncidentMembers], open_incidents: int) -> IncidentSummary:
    """The summary of one stream's members messages.

    >>> from stream.messages import MemberAlert, SourceRef
    >>> src = SourceRef(topic="kdd", partition=0, offset=0, key="k")
    >>> def m(incident, *labels):
    ...     return IncidentMembers(incident, "kdd", [MemberAlert("a", src, x) for x in labels])
    >>> summarize([m("i1", "neptune.", "neptune."), m("i1", "normal."), m("i2", "smurf.")], 1)
    IncidentSummary(incidents=2, open=1, alerts=4, labelled=4, purity=0.75)
    """
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    alerts = 0
    for message in members:
        alerts += len(message.alerts)
        found = labels[message.incident_id]
        found.update(alert.label for alert in message.alerts if alert.label is not None)
    labelled = sum(sum(c.values()) for c in labels.values())
    majority = sum(max(c.values()) for c in labels.values() if c)
    purity = round(majority / labelled, 4) if labelled else None
    return IncidentSummary(len(labels), open_incidents, alerts, labelled, purity)


def members_offsets(settings: Settings) -> dict[int, int]:
    """Where ``incident-members`` ends now: what :func:`read_summary` counts from (a run's own)."""
    return end_offsets(settings, settings.topic("incident_members"))


def read_summary(settings: Settings, stream: str, since: dict[int, int] | None = None) -> IncidentSummary:
    """The summary of ``stream``'s incidents as the stage's topics hold them now, counting the members
    published after the offsets ``since`` (:func:`members_offsets` at the start of a run: a broker
    kept from an earlier run also keeps that run's incidents)."""
    topic = settings.topic("incident_members")
    starts = since or {}
    ranges = {p: (starts.get(p, 0), end) for p, end in end_offsets(settings, topic).items()}
    members = []
    for message in read_ranges(settings, topic, ranges, timeout=120):
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):  # not the stage's
            decoded = decode_incident_members(message.value() or b"")
            if decoded.stream == stream:
                members.append(decoded)
    ours = {m.incident_id for m in members}
    still_open = sum(
        1 for i in read_incidents(settings, stream) if i.finding_info.uid in ours and i.activity_id != CLOSE
    )
    return summarize(members, still_open)


def wait_grouped(settings: Settings, timeout_s: float, transactional_alerts: bool = False) -> bool:
    """Wait until the incident stage's group has committed every alert on the alerts topic as it
    ends now (call it once the alerts stopped coming); False past ``timeout_s``.

    ``transactional_alerts``: the workers wrote the alerts under ``--eos``, so each partition ends
    with a transaction marker the stage's committed offset stops one short of.
    """
    topic = settings.topic("alerts")
    ends = end_offsets(settings, topic)
    slack = 1 if transactional_alerts else 0
    consumer = make_consumer(settings, settings.incidents.group_id)
    partitions = [TopicPartition(topic, p) for p, end in ends.items() if end > 0]
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # a slow broker answer: asked again
                done = consumer.committed(partitions, timeout=10)
                if all(tp.offset >= ends[tp.partition] - slack for tp in done):
                    return True
            time.sleep(0.5)
        return False
    finally:
        consumer.close()


__all__ = ["IncidentSummary", "members_offsets", "read_summary", "summarize", "wait_grouped"]
