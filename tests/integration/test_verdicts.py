"""Analysts' verdicts end to end on the session broker: given from the command line and in process,
published on ``feedback`` with the alert's coordinates and model, read back as a retrain reads them."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import orjson
import pytest

from consumers.verdicts import UnknownAlertError, give_verdict, read_verdicts
from stream.kafka import flush_or_raise, make_producer, produce, read_all, search_backwards
from stream.messages import Alert, Feedback, SourceRef, decode_feedback, encode
from stream.settings import Settings
from tests.support import corrected_sample, make_settings, replay, run_worker, schema_validator

pytestmark = pytest.mark.integration

EVENTS = 3000


@pytest.fixture
def alerted(kafka_settings: Settings) -> tuple[Settings, list[dict]]:
    """A scored replay of real ``corrected`` connections, and its alerts in topic order."""
    replay(kafka_settings, corrected_sample(kafka_settings.data_dir, EVENTS, seed=5))
    run_worker(kafka_settings, EVENTS)
    alerts = [orjson.loads(m.value()) for m in read_all(kafka_settings, kafka_settings.topic("alerts"))]
    assert len(alerts) > 100
    return kafka_settings, alerts


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = settings.environment() | {"COLUMNS": "200", "USER": "alice"}
    command = [sys.executable, "-m", "anomstream", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)


def test_a_verdict_from_the_command_line_lands_on_feedback(alerted: tuple[Settings, list[dict]]) -> None:
    settings, alerts = alerted
    alert = alerts[0]  # the oldest: found however far back it is
    given = _cli(settings, "alerts", "verdict", alert["alert_id"], "benign", "--reason", "backup job")
    assert given.returncode == 0, given.stderr
    assert f"benign on alert {alert['alert_id']}" in given.stdout and "by alice" in given.stdout

    messages = read_all(settings, settings.topic("feedback"))
    assert len(messages) == 1 and messages[0].key() == alert["alert_id"].encode()
    feedback = orjson.loads(messages[0].value())
    schema_validator("feedback").validate(feedback)
    assert {k: feedback[k] for k in ("alert_id", "verdict", "by", "reason", "stream", "detector")} == {
        "alert_id": alert["alert_id"], "verdict": "benign", "by": "alice", "reason": "backup job",
        "stream": "kdd", "detector": alert["detector"],
    }  # fmt: skip
    assert feedback["model_version"] == alert["model_version"] and feedback["source"] == alert["source"]

    unknown = _cli(settings, "alerts", "verdict", "0" * 32, "malicious")
    errors = [line for line in unknown.stderr.splitlines() if line.startswith("error:")]
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr, unknown.stderr
    assert errors == [errors[0]] and f"no alert {'0' * 32} on topic {settings.topic('alerts')}" in errors[0]
    assert len(read_all(settings, settings.topic("feedback"))) == 1, "nothing published for an unknown id"


def test_read_verdicts_keeps_the_last_verdict_per_alert_and_skips_what_is_not_one(
    alerted: tuple[Settings, list[dict]],
) -> None:
    settings, alerts = alerted
    first, second, third = alerts[-1], alerts[-2], alerts[len(alerts) // 2]
    give_verdict(settings, first["alert_id"], "benign", "bob", "looked normal")
    give_verdict(settings, first["alert_id"], "malicious", "carol", "it was not")  # changed mind
    give_verdict(settings, second["alert_id"], "benign", "bob")
    give_verdict(settings, third["alert_id"], "malicious", "bob")
    producer = make_producer(settings)
    produce(producer, settings.topic("feedback"), b'{"alert_id": 3}', b"junk")
    other = Feedback("e-1", "benign", "bob", "", "2026-01-01T00:00:00Z", "ecg", "ae", 1,
                     SourceRef("ecg.beats", 0, 7, None))  # fmt: skip
    produce(producer, settings.topic("feedback"), encode(other), b"e-1")
    flush_or_raise(producer)

    verdicts = read_verdicts(settings, "kdd")
    at = lambda a: (a["source"]["topic"], a["source"]["partition"], a["source"]["offset"])  # noqa: E731
    assert verdicts.benign == {at(second)}
    assert verdicts.malicious == {at(first), at(third)}
    assert verdicts.rejected == 2
    assert set(verdicts.by_alert) == {first["alert_id"], second["alert_id"], third["alert_id"]}
    audit = verdicts.by_alert[first["alert_id"]]
    assert (audit.verdict, audit.by, audit.reason, audit.model_version) == (
        "malicious", "carol", "it was not", first["model_version"],
    )  # fmt: skip
    assert read_verdicts(settings, "ecg").benign == {("ecg.beats", 0, 7)}


def test_verdicts_refused_without_an_alert_and_without_topics(alerted: tuple[Settings, list[dict]]) -> None:
    settings, alerts = alerted
    with pytest.raises(UnknownAlertError, match=f"no alert nosuch on topic {settings.topic('alerts')}"):
        give_verdict(settings, "nosuch", "benign", "bob")
    # The alert a caller holds (the dashboard's) spares the search, and must be the one named.
    alert = msgspec.convert(alerts[3], type=Alert)
    with pytest.raises(UnknownAlertError, match="the alert given is another one"):
        give_verdict(settings, alerts[4]["alert_id"], "benign", "bob", alert=alert)
    given = give_verdict(settings, alert.alert_id, "benign", "bob", alert=alert)
    assert decode_feedback(read_all(settings, settings.topic("feedback"))[0].value()) == given
    # Searching back chunk by chunk finds the oldest alert of a partition too.
    oldest = alerts[0]["alert_id"].encode()
    found = search_backwards(
        settings, settings.topic("alerts"), lambda m: oldest in m.value(), first_chunk=50
    )
    assert found is not None and orjson.loads(found.value())["alert_id"] == alerts[0]["alert_id"]
    # No feedback topic yet: no verdicts (the retrain goes on without them).
    bare = make_settings(settings.bootstrap, settings.registry_dir)
    assert read_verdicts(bare, "kdd").by_alert == {}
