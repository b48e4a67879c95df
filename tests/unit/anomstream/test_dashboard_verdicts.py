"""Verdicts on the dashboard without a broker: who may give one, what every page is sent, and retrain
outcomes on the timeline."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import orjson
import pytest
from pydantic import SecretStr
from starlette.requests import Request

from anomstream.dashboard.aggregate import Aggregator, timeline_entry_of_update
from anomstream.dashboard.verdicts import VerdictEndpoint, VerdictGate
from stream.messages import Alert, FeatureContribution, Feedback, ModelUpdate, SourceRef
from stream.settings import Settings

TOKEN = SecretStr("correct horse battery staple")


def request(headers: dict[str, str] | None = None, body: bytes = b"{}") -> Request:
    """A POST /api/verdicts as uvicorn hands it over (JSON, from the dashboard's own page)."""
    sent = {"host": "127.0.0.1:8050", "content-type": "application/json", **(headers or {})}
    scope = {"type": "http", "method": "POST", "path": "/api/verdicts", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in sent.items()],
             "client": ("127.0.0.1", 50000)}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def refused(gate: VerdictGate, headers: dict[str, str] | None = None) -> tuple[int, str] | None:
    answer = gate.refusal(request(headers))
    return None if answer is None else (answer.status_code, orjson.loads(answer.body)["error"])


def test_beyond_localhost_without_a_token_verdicts_are_refused_and_the_page_is_told_why() -> None:
    gate = VerdictGate("0.0.0.0", None)
    assert gate.mode == "refused"
    status, message = refused(gate) or (0, "")
    assert status == 403 and "ANOMSTREAM_DASHBOARD__ANALYST_TOKEN" in message
    assert VerdictGate("::", SecretStr("")).mode == "refused", "an empty token is no token"


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "127.0.0.1"])
def test_with_a_token_only_its_bearer_may_give_a_verdict(host: str) -> None:
    gate = VerdictGate(host, TOKEN)
    assert gate.mode == "token"
    assert refused(gate) == (401, "a verdict needs the analysts' token (Authorization: Bearer <token>)")
    assert (refused(gate, {"authorization": "Bearer wrong"}) or (0,))[0] == 401
    assert (refused(gate, {"authorization": f"Basic {TOKEN.get_secret_value()}"}) or (0,))[0] == 401
    assert refused(gate, {"authorization": f"Bearer {TOKEN.get_secret_value()}"}) is None
    assert TOKEN.get_secret_value() not in repr(gate.__dict__.get("mode")) + repr(Settings().dashboard)


def test_on_localhost_no_token_is_needed_but_other_sites_cannot_post_for_the_analyst() -> None:
    gate = VerdictGate("127.0.0.1", None)
    assert gate.mode == "open" and refused(gate) is None
    assert refused(gate, {"origin": "http://127.0.0.1:8050"}) is None
    assert (refused(gate, {"origin": "http://evil.example"}) or (0,))[0] == 403  # a cross-site fetch
    assert (refused(gate, {"host": "evil.example:8050", "origin": "http://evil.example:8050"}) or (0,))[
        0
    ] == 403
    assert (refused(gate, {"content-type": "text/plain"}) or (0,))[0] == 415  # a cross-site form post


def test_a_malformed_verdict_is_one_clear_line_before_any_broker_is_asked() -> None:
    endpoint = VerdictEndpoint(Settings(bootstrap_servers="127.0.0.1:9"), Aggregator(("kdd",)),
                               VerdictGate("127.0.0.1", None))  # fmt: skip
    cases = [(b"not json", "not valid JSON"), (b"[1]", "send {"),
             (b'{"alert_id": "x", "verdict": 1}', "are strings"),
             (b'{"alert_id": "x", "verdict": "maybe"}', "verdict must be benign or malicious")]  # fmt: skip
    for body, says in cases:
        answer = asyncio.run(endpoint.answer(request(body=body)))
        assert answer.status_code == 400 and says in orjson.loads(answer.body)["error"], answer.body


def _alert(offset: int) -> Alert:
    return Alert(
        alert_id=f"id-{offset}", stream="kdd", event_id=f"e-{offset}",
        source=SourceRef("kdd.connections", 0, offset, f"e-{offset}"), event_time=None,
        detected_at=f"2027-01-15T08:00:{offset:02d}.000+00:00", detector="ae", model_version=1, score=0.5,
        threshold=0.1, severity="low", top_features=[FeatureContribution("count", 0.2)], label=None,
    )  # fmt: skip


def test_alerts_sent_to_pages_are_known_by_id_and_verdicts_reach_every_page() -> None:
    agg = Aggregator(("kdd",))
    for offset in range(3):
        agg.add_alert(msgspec.json.encode(_alert(offset)))
    assert agg.shown_alert("id-1") is None, "not sent to a page yet"
    agg.delta()
    assert agg.shown_alert("id-1") == _alert(1)
    verdict = Feedback("id-1", "benign", "ann (dashboard)", "backup", "2027-01-15T08:01:00.000+00:00", "kdd",
                       "ae", 1, SourceRef("kdd.connections", 0, 1, "e-1"))  # fmt: skip
    agg.add_feedback(verdict)
    shown = {"verdict": "benign", "by": "ann (dashboard)", "given_at": verdict.given_at, "reason": "backup"}
    assert agg.delta()["verdicts"] == {"id-1": shown}
    assert agg.delta()["verdicts"] == {}, "sent once"
    assert agg.snapshot()["verdicts"] == {"id-1": shown}, "a page that opens later sees it too"


def test_retrain_outcomes_show_why_and_their_shadow_figures_apart_from_promotions() -> None:
    rejected = ModelUpdate("kdd", "ae", 3, "2027-01-15T08:00:00+00:00", status="rejected", reason="drift:abc",
                           shadow={"alert_rate_production": 0.0555, "alert_rate_candidate": 0.0531},
                           detail="alert rate on normal-looking data must fall by 10%")  # fmt: skip
    entry = timeline_entry_of_update(rejected, {})
    assert entry["kind"] == "shadow" and entry["title"] == "ae v3 rejected by its shadow evaluation"
    assert "must fall by 10%" in entry["detail"] and "alert_rate_candidate=0.0531" in entry["detail"]
    candidate = ModelUpdate("kdd", "ae", 4, "2027-01-15T08:05:00+00:00", status="candidate",
                            reason="drift:def", shadow={"recall_candidate": 0.97})  # fmt: skip
    entry = timeline_entry_of_update(candidate, {})
    assert entry["kind"] == "retrain" and "recall_candidate=0.97" in entry["detail"]
    promoted = timeline_entry_of_update(ModelUpdate("kdd", "ae", 4, "t", reason="drift:def"), {})
    assert promoted["kind"] == "promotion"
