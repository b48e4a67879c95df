"""Analysts' verdicts on alerts, on the ``feedback`` topic: given from the command line or the
dashboard (:func:`give_verdict`), read back by the retrain (:func:`read_verdicts`).

A verdict names an alert by its ``alert_id``. The id is a hash of the alerted event's coordinates
(:func:`consumers.outputs.alert_id`), so it cannot be turned back into them: the alert is looked up
on the alerts topic, newest first (verdicts are mostly on recent alerts), and its stream, model and
source are copied into the :class:`~stream.messages.Feedback`, so the verdict is auditable (who,
when, on which model version) and a retrain finds the event without reading the alerts topic.

``benign`` teaches: the event is normal traffic a retrain may learn. ``malicious`` guards: the event
is never learnt and joins the attacks a candidate must still detect. The last verdict on an alert
counts (an analyst may change their mind); the topic keeps every one of them.

>>> check_verdict("maybe")
Traceback (most recent call last):
...
consumers.verdicts.InvalidVerdictError: verdict must be benign or malicious, got 'maybe'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import get_args

import msgspec
from confluent_kafka import Message

from consumers.outputs import alert_id as alert_id_of
from stream.errors import AnomstreamError
from stream.kafka import (
    TopicMissingError,
    flush_or_raise,
    iter_topic,
    make_admin,
    make_producer,
    partitions_of,
    produce,
    search_backwards,
)
from stream.messages import Alert, Feedback, Verdict, decode_alert, decode_feedback, encode
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


def check_verdict(verdict: str, by: str = "cli", reason: str = "", alert_id: str = "x") -> None:
    """Raise :class:`InvalidVerdictError` unless a Feedback could carry these values (no broker asked)."""
    if verdict not in VERDICTS:
        raise InvalidVerdictError(f"verdict must be {' or '.join(VERDICTS)}, got {verdict!r}")
    if not alert_id or len(alert_id) > MAX_NAME:
        raise InvalidVerdictError(f"an alert id has 1 to {MAX_NAME} characters, got {len(alert_id)}")
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


@dataclass(frozen=True)
class Verdicts:
    """The analysts' verdicts on one stream's alerts, as a retrain uses them."""

    benign: frozenset[Coordinates] = frozenset()  # (topic, partition, offset) of the alerted event
    malicious: frozenset[Coordinates] = frozenset()
    by_alert: dict[str, Feedback] = field(default_factory=dict)  # the last verdict per alert_id (audit)
    rejected: int = 0  # malformed / other-stream messages skipped


def read_verdicts(settings: Settings, stream: str, timeout: float = 30.0) -> Verdicts:
    """Every verdict on ``stream``'s alerts: the feedback topic read to its end (no group, no
    commits), the last verdict per alert kept. A message that does not decode is counted in
    ``rejected`` and logged (one line in all), never raised; no feedback topic: no verdicts.
    """
    last: dict[str, Feedback] = {}
    rejected = malformed = 0
    first_bad: str | None = None
    topic = settings.topic("feedback")
    try:
        # One alert's verdicts share its key, hence a partition: offset order is the order given.
        for message in iter_topic(settings, topic, timeout=timeout):
            try:
                feedback = decode_feedback(message.value() or b"")
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                rejected += 1
                malformed += 1
                first_bad = first_bad or f"{topic}[{message.partition()}]@{message.offset()}: {exc}"
                continue
            if feedback.stream != stream:
                rejected += 1
                continue
            last[feedback.alert_id] = feedback
    except TopicMissingError:
        log.info("no %s topic: no analysts' verdicts", topic)
        return Verdicts()
    if first_bad is not None:
        log.warning("skipped %d malformed verdict(s) on %s (first at %s)", malformed, topic, first_bad)
    kinds: dict[str, set[Coordinates]] = {v: set() for v in VERDICTS}
    for feedback in last.values():
        kinds[feedback.verdict].add(_coordinates(feedback))
    return Verdicts(frozenset(kinds["benign"]), frozenset(kinds["malicious"]), last, rejected)


def _coordinates(item: Alert | Feedback) -> Coordinates:
    return item.source.topic, item.source.partition, item.source.offset


def _where(alert: Alert) -> str:
    return f"{alert.source.topic}[{alert.source.partition}]@{alert.source.offset}"


class IncidentFeedback(msgspec.Struct):
    """An analyst's verdict on a whole incident, as :func:`give_incident_verdict` publishes it: the
    Feedback fields, with ``incident_id`` set and ``alert_id`` null (the incident contract)."""

    incident_id: str
    verdict: str
    by: str
    reason: str
    given_at: str
    alert_id: None = None


def give_incident_verdict(
    settings: Settings, incident_id: str, verdict: str, by: str = "cli", reason: str = ""
) -> IncidentFeedback:
    """Publish an analyst's verdict on one incident on the ``feedback`` topic (keyed by the incident
    id, flushed before returning) and return it. A minimal version for the dashboard: the verdicts
    branch carries the full one (the retrain's side of it)."""
    check_verdict(verdict, by, reason, incident_id)
    topic = settings.topic("feedback")
    partitions_of(make_admin(settings), topic)  # a missing topic: one clear error, not a delivery timeout
    feedback = IncidentFeedback(
        incident_id=incident_id,
        verdict=verdict,
        by=by.strip(),
        reason=reason,
        given_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )
    producer = make_producer(settings)
    produce(producer, topic, encode(feedback), incident_id.encode())
    flush_or_raise(producer, 30)
    log.info("verdict %s on incident %s by %s", verdict, incident_id, feedback.by)
    return feedback
