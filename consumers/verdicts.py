"""Analysts' verdicts on alerts and incidents, on the ``feedback`` topic: given from the command line
or the dashboard (:func:`give_verdict`, :func:`give_incident_verdict`), read back by the retrain
(:func:`read_verdicts`) and by ``anomstream verdicts list`` (:func:`iter_feedback`).

A verdict names an alert by its ``alert_id``. The id is a hash of the alerted event's coordinates
(:func:`consumers.outputs.alert_id`), so it cannot be turned back into them: the alert is looked up
on the alerts topic, newest first (verdicts are mostly on recent alerts), and its stream, model and
source are copied into the :class:`~stream.messages.Feedback`, so the verdict is auditable (who,
when, on which model version) and a retrain finds the event without reading the alerts topic.

An incident verdict names an incident by its id (the ``incidents`` topic, keyed by it): it covers
every alert of the incident, the union of its ``incident-members`` messages, those that joined after
the verdict until it closed included. The retrain resolves it to the alerted events' coordinates.

``benign`` teaches: the event is normal traffic a retrain may learn. ``malicious`` guards: the event
is never learnt and joins the attacks a candidate must still detect. The last verdict on an alert
(or on an incident) counts (an analyst may change their mind); the topic keeps every one of them. An
event that carries a malicious verdict (its own or its incident's) is malicious, whatever benign
verdict also covers it: a benign word never teaches what another verdict called an attack.

>>> check_verdict("maybe")
Traceback (most recent call last):
...
consumers.verdicts.InvalidVerdictError: verdict must be benign or malicious, got 'maybe'
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import get_args

import msgspec
from confluent_kafka import Message

from consumers.outputs import alert_id as alert_id_of
from stream.errors import AnomstreamError
from stream.kafka import (
    TopicMissingError,
    end_offsets,
    flush_or_raise,
    iter_topic,
    make_admin,
    make_producer,
    partitions_of,
    produce,
    read_ranges,
    search_backwards,
)
from stream.messages import (
    Alert,
    Feedback,
    Verdict,
    decode_alert,
    decode_feedback,
    decode_incident,
    decode_incident_members,
    encode,
)
from stream.settings import Settings

log = logging.getLogger(__name__)

VERDICTS: tuple[str, ...] = get_args(Verdict)
SEARCH_TIMEOUT_S = 30.0
MAX_REASON = 2000
MAX_NAME = 256

Coordinates = tuple[str, int, int]  # (topic, partition, offset) of the alerted event


class VerdictError(AnomstreamError, ValueError):
    """A verdict that cannot be given; the message says why in one line."""


class InvalidVerdictError(VerdictError):
    """The verdict, the analyst's name or the reason is not one anomstream accepts."""


class UnknownAlertError(VerdictError, LookupError):
    """No alert with this id on the alerts topic."""


class UnknownIncidentError(VerdictError, LookupError):
    """No incident with this id on the incidents topic."""


def check_verdict(verdict: str, by: str = "cli", reason: str = "", alert_id: str = "x") -> None:
    """Raise :class:`InvalidVerdictError` unless a Feedback could carry these values (no broker asked)."""
    if verdict not in VERDICTS:
        raise InvalidVerdictError(f"verdict must be {' or '.join(VERDICTS)}, got {verdict!r}")
    if not alert_id or len(alert_id) > MAX_NAME:
        raise InvalidVerdictError(f"an id has 1 to {MAX_NAME} characters, got {len(alert_id)}")
    if not by.strip() or len(by) > MAX_NAME:
        raise InvalidVerdictError(f"the analyst's name (--by) has 1 to {MAX_NAME} characters")
    if len(reason) > MAX_REASON:
        raise InvalidVerdictError(f"the reason is {len(reason)} characters long: at most {MAX_REASON}")


def find_alert(settings: Settings, alert_id: str, timeout: float = SEARCH_TIMEOUT_S) -> Alert:
    """The alert with this id, searched on the alerts topic from its end backwards.

    Raises :class:`UnknownAlertError` when it is not there (or not found within ``timeout``), and
    TopicMissingError when there is no alerts topic.
    """
    topic = settings.topic("alerts")
    # The worker writes the id first ({"alert_id":"..."}); a substring test skips decoding the rest.
    needle = f'"{alert_id}"'.encode()

    def matches(message: Message) -> bool:
        value = message.value() or b""
        if needle not in value:
            return False
        try:
            return decode_alert(value).alert_id == alert_id
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False

    message = search_backwards(settings, topic, matches, timeout=timeout)
    if message is None:
        raise UnknownAlertError(
            f"no alert {alert_id} on topic {topic}: check the id (`anomstream alerts tail --json` prints "
            f"alerts with their ids); the search gives up after {timeout:.0f}s"
        )
    return decode_alert(message.value())


def give_verdict(
    settings: Settings,
    alert_id: str,
    verdict: str,
    by: str,
    reason: str = "",
    *,
    alert: Alert | None = None,
    timeout: float = SEARCH_TIMEOUT_S,
) -> Feedback:
    """Publish an analyst's verdict on one alert on the ``feedback`` topic (keyed by the alert id,
    flushed before returning) and return it.

    ``alert``: the alert as a caller already holds it (the dashboard shows it), which spares the
    search of the alerts topic; its id must be ``alert_id`` and match its own source coordinates.
    Raises InvalidVerdictError or UnknownAlertError (one line each), TopicMissingError when the
    feedback or alerts topic does not exist.
    """
    check_verdict(verdict, by, reason, alert_id)
    if alert is None:
        alert = find_alert(settings, alert_id, timeout)
    elif alert.alert_id != alert_id or alert_id_of(*_coordinates(alert)) != alert_id:
        raise UnknownAlertError(f"no alert {alert_id}: the alert given is another one ({alert.alert_id})")
    topic = settings.topic("feedback")
    partitions_of(make_admin(settings), topic)  # a missing topic: one clear error, not a delivery timeout
    feedback = Feedback(
        alert_id=alert_id,
        verdict=verdict,  # type: ignore[arg-type]  # checked above
        by=by.strip(),
        reason=reason,
        given_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        stream=alert.stream,
        detector=alert.detector,
        model_version=alert.model_version,
        source=alert.source,
    )
    producer = make_producer(settings)
    produce(producer, topic, encode(feedback), alert_id.encode())
    flush_or_raise(producer, 30)
    log.info("verdict %s on alert %s (%s %s v%d, %s) by %s", verdict, alert_id, alert.stream,
             alert.detector, alert.model_version, _where(alert), feedback.by)  # fmt: skip
    return feedback


class IncidentRef(msgspec.Struct):
    """What a verdict copies from an incident (its latest message on ``incidents``, an OCSF Detection
    Finding): the stream, the model and how far it got."""

    uid: str
    stream: str
    detector: str
    model_version: int
    count: int
    closed: bool


CLOSED = 4  # OCSF status_id Resolved: the incident stage closed it after its gap


def find_incident(settings: Settings, incident_id: str, timeout: float = SEARCH_TIMEOUT_S) -> IncidentRef:
    """The latest state of incident ``incident_id``: its newest message on the incidents topic (keyed
    by the id, so every revision lies in one partition, in order).

    Raises :class:`UnknownIncidentError` when there is none (or none found within ``timeout``), and
    TopicMissingError when there is no incidents topic.
    """
    topic, key = settings.topic("incidents"), incident_id.encode()
    found = search_backwards(settings, topic, lambda m: m.key() == key, timeout=timeout)
    if found is None:
        raise UnknownIncidentError(
            f"no incident {incident_id} on topic {topic}: check the id (`anomstream incidents list` prints "
            f"incidents with their ids); the search gives up after {timeout:.0f}s"
        )
    # The search returns the first match of the newest chunk it read: newer revisions may follow it.
    end = end_offsets(settings, topic).get(found.partition(), found.offset() + 1)
    later = read_ranges(settings, topic, {found.partition(): (found.offset(), end)}, timeout=timeout)
    latest = [m for m in later if m.key() == key] or [found]
    try:
        head = decode_incident(latest[-1].value() or b"")
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UnknownIncidentError(f"incident {incident_id} on {topic} does not decode ({exc})") from exc
    return IncidentRef(head.finding_info.uid, head.unmapped.stream, head.unmapped.model.detector,
                       head.unmapped.model.version, head.count, head.status_id == CLOSED)  # fmt: skip


def give_incident_verdict(
    settings: Settings,
    incident_id: str,
    verdict: str,
    by: str = "cli",
    reason: str = "",
    *,
    timeout: float = SEARCH_TIMEOUT_S,
) -> Feedback:
    """Publish an analyst's verdict on one incident on the ``feedback`` topic (keyed by the incident id,
    flushed before returning) and return it: one message for every alert of the incident, those that
    join it until it closes included (the retrain finds them on ``incident-members``).

    Raises InvalidVerdictError or UnknownIncidentError (one line each), TopicMissingError when the
    feedback or incidents topic does not exist.
    """
    check_verdict(verdict, by, reason, incident_id)
    incident = find_incident(settings, incident_id, timeout)
    topic = settings.topic("feedback")
    partitions_of(make_admin(settings), topic)  # a missing topic: one clear error, not a delivery timeout
    feedback = Feedback(
        alert_id=None,
        verdict=verdict,  # type: ignore[arg-type]  # checked above
        by=by.strip(),
        reason=reason,
        given_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        stream=incident.stream,
        detector=incident.detector,
        model_version=incident.model_version,
        source=None,
        incident_id=incident_id,
    )
    producer = make_producer(settings)
    produce(producer, topic, encode(feedback), incident_id.encode())
    flush_or_raise(producer, 30)
    log.info("verdict %s on incident %s (%s %s v%d, %d alerts so far) by %s", verdict, incident_id,
             incident.stream, incident.detector, incident.model_version, incident.count,
             feedback.by)  # fmt: skip
    return feedback


@dataclass(frozen=True)
class Verdicts:
    """The analysts' verdicts on one stream's alerts and incidents, as a retrain uses them."""

    benign: frozenset[Coordinates] = frozenset()  # (topic, partition, offset) of the alerted event
    malicious: frozenset[Coordinates] = frozenset()
    by_alert: dict[str, Feedback] = field(default_factory=dict)  # the last verdict per alert_id (audit)
    rejected: int = 0  # malformed / other-stream messages skipped
    by_incident: dict[str, Feedback] = field(default_factory=dict)  # the last verdict per incident_id
    incident_alerts: dict[str, int] = field(default_factory=dict)  # judged incident -> alerts found
    overruled: int = 0  # events a benign verdict covered that a malicious one also covers: malicious

    def audit(self, limit: int = 20) -> dict[str, object]:
        """What a retrain's manifest records about the verdicts it used (the largest incidents first)."""
        incidents = sorted(self.by_incident.items(), key=lambda kv: -self.incident_alerts.get(kv[0], 0))
        return {
            "alert_verdicts": len(self.by_alert),
            "incident_verdicts": len(self.by_incident),
            "benign_events": len(self.benign),
            "malicious_events": len(self.malicious),
            "benign_overruled_by_malicious": self.overruled,
            "incidents": [
                {
                    "incident_id": i,
                    "verdict": f.verdict,
                    "by": f.by,
                    "given_at": f.given_at,
                    "alerts": self.incident_alerts.get(i, 0),
                }
                for i, f in incidents[:limit]
            ],  # fmt: skip
        }


def judged_events(
    by_alert: dict[str, Feedback],
    by_incident: dict[str, Feedback],
    members: dict[str, set[Coordinates]],
) -> tuple[frozenset[Coordinates], frozenset[Coordinates], int]:
    """The alerted events analysts judged benign and malicious: each alert verdict's own event, and
    every member of each judged incident (``members``: incident id -> its alerts' events). An event
    any verdict calls malicious is malicious, never benign (the count of such overruled benign events
    is returned third).

    >>> from stream.messages import SourceRef
    >>> v = lambda verdict, **kw: Feedback(None, verdict, "a", "", "t", "kdd", "ae", 1, None, **kw)
    >>> a = Feedback("a1", "malicious", "a", "", "t", "kdd", "ae", 1, SourceRef("kdd", 0, 5, None))
    >>> benign, malicious, overruled = judged_events(
    ...     {"a1": a}, {"i1": v("benign", incident_id="i1")}, {"i1": {("kdd", 0, 5), ("kdd", 0, 6)}})
    >>> sorted(benign), sorted(malicious), overruled
    ([('kdd', 0, 6)], [('kdd', 0, 5)], 1)
    """
    kinds: dict[str, set[Coordinates]] = {v: set() for v in VERDICTS}
    for feedback in by_alert.values():
        if feedback.source is not None:
            kinds[feedback.verdict].add(_coordinates(feedback))
    for incident_id, feedback in by_incident.items():
        kinds[feedback.verdict].update(members.get(incident_id, ()))
    overruled = kinds["benign"] & kinds["malicious"]
    return frozenset(kinds["benign"] - overruled), frozenset(kinds["malicious"]), len(overruled)


def iter_feedback(settings: Settings, timeout: float = 30.0) -> Iterator[tuple[Message, Feedback | None]]:
    """Every message of the feedback topic up to its end, in partition order, each with its decoded
    verdict (None when it does not decode). TopicMissingError when there is no feedback topic."""
    for message in iter_topic(settings, settings.topic("feedback"), timeout=timeout):
        try:
            yield message, decode_feedback(message.value() or b"")
        except (msgspec.DecodeError, msgspec.ValidationError):
            yield message, None


def incident_members(
    settings: Settings, incident_ids: set[str], timeout: float = 60.0
) -> dict[str, set[Coordinates]]:
    """The alerted events of each incident in ``incident_ids``: the union of its ``incident-members``
    messages (no members topic: none). Other incidents' messages are skipped by key, undecoded."""
    members: dict[str, set[Coordinates]] = {i: set() for i in incident_ids}
    keys = {i.encode() for i in incident_ids}
    topic = settings.topic("incident_members")
    bad = 0
    try:
        for message in iter_topic(settings, topic, timeout=timeout):
            if message.key() not in keys:
                continue
            try:
                batch = decode_incident_members(message.value() or b"")
            except (msgspec.DecodeError, msgspec.ValidationError):
                bad += 1
                continue
            members.setdefault(batch.incident_id, set()).update(
                (a.source.topic, a.source.partition, a.source.offset) for a in batch.alerts
            )
    except TopicMissingError:
        log.warning("no %s topic: the judged incidents' alerts cannot be found", topic)
    if bad:
        log.warning("skipped %d malformed message(s) of judged incidents on %s", bad, topic)
    return members


def read_verdicts(settings: Settings, stream: str, timeout: float = 30.0) -> Verdicts:
    """Every verdict on ``stream``'s alerts and incidents: the feedback topic read to its end (no
    group, no commits), the last verdict per alert and per incident kept, each judged incident's
    alerts found on ``incident-members``. A message that does not decode is counted in ``rejected``
    and logged (one line in all), never raised; no feedback topic: no verdicts.
    """
    last: dict[str, Feedback] = {}
    incidents: dict[str, Feedback] = {}
    rejected = malformed = 0
    first_bad: str | None = None
    topic = settings.topic("feedback")
    try:
        # One alert's (incident's) verdicts share its key, hence a partition: offset order is the order given.
        for message, feedback in iter_feedback(settings, timeout):
            if feedback is None:
                rejected += 1
                malformed += 1
                first_bad = first_bad or f"{topic}[{message.partition()}]@{message.offset()}"
                continue
            if feedback.stream != stream:
                rejected += 1
            elif feedback.incident_id is not None:
                incidents[feedback.incident_id] = feedback
            elif feedback.alert_id is not None and feedback.source is not None:
                last[feedback.alert_id] = feedback
            else:
                rejected += 1
    except TopicMissingError:
        log.info("no %s topic: no analysts' verdicts", topic)
        return Verdicts()
    if first_bad is not None:
        log.warning("skipped %d malformed verdict(s) on %s (first at %s)", malformed, topic, first_bad)
    members = incident_members(settings, set(incidents), max(timeout, 60.0)) if incidents else {}
    benign, malicious, overruled = judged_events(last, incidents, members)
    if overruled:
        log.info("%d event(s) judged benign also carry a malicious verdict: not learnt", overruled)
    sizes = {i: len(members.get(i, ())) for i in incidents}
    return Verdicts(benign, malicious, last, rejected, incidents, sizes, overruled)


def _coordinates(item: Alert | Feedback) -> Coordinates:
    assert item.source is not None  # an alert, or an alert's verdict
    return item.source.topic, item.source.partition, item.source.offset


def _where(alert: Alert) -> str:
    return f"{alert.source.topic}[{alert.source.partition}]@{alert.source.offset}"
