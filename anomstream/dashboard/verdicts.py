"""Verdicts from the dashboard: ``POST /api/verdicts`` with ``{"alert_id", "verdict", "reason", "by"}``,
or ``{"incident_id", ...}`` for one verdict on a whole incident.

A verdict teaches the model (a benign event is learnt at the next retrain), so it is guarded like the
control channel. :class:`VerdictGate` decides who may give one:

* ``open``: the dashboard listens on localhost only and no token is configured. Only a program on
  this host can reach it; a web page elsewhere cannot post for the analyst either (the request must
  be JSON, which a cross-site form cannot send without a preflight this server never grants, its
  ``Origin`` must be the dashboard's own, and its ``Host`` a loopback name, against DNS rebinding).
* ``token``: ``ANOMSTREAM_DASHBOARD__ANALYST_TOKEN`` is set: every verdict carries it as
  ``Authorization: Bearer <token>`` (401 otherwise), wherever the dashboard listens.
* ``refused``: the dashboard listens beyond localhost and no token is configured: 403, saying so.

The alert is the one the dashboard sent to a page (no search of the alerts topic); an id it did not
send is searched for on the alerts topic (404 when it is not there). An incident must be one the
dashboard read on the incidents topic (404 otherwise); its verdict is published by
:func:`consumers.verdicts.give_incident_verdict`, under the same rules.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
from confluent_kafka import KafkaException
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from anomstream.dashboard.aggregate import Aggregator
from consumers.verdicts import UnknownAlertError, VerdictError, give_incident_verdict, give_verdict
from stream.errors import AnomstreamError
from stream.settings import Settings

log = logging.getLogger(__name__)

Mode = Literal["open", "token", "refused"]
TOKEN_VARIABLE = "ANOMSTREAM_DASHBOARD__ANALYST_TOKEN"
MAX_BODY = 8 * 1024
SEARCH_TIMEOUT_S = 10.0  # an alert no page was sent: how long the alerts topic is searched


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to bind, or a Host header's name) reaches this machine only.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.0.0.5", "::")]
    [True, True, True, False, False, False]
    """
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class VerdictGate:
    """Who may give a verdict through this dashboard (see the module's docstring)."""

    def __init__(self, host: str, token: SecretStr | None) -> None:
        self.token = token.get_secret_value().encode() if token and token.get_secret_value() else None
        self.local = is_loopback(host)
        self.mode: Mode = "token" if self.token else "open" if self.local else "refused"

    def refusal(self, request: Request) -> Response | None:
        """The answer to a request that may not give a verdict; None when it may."""
        if self.mode == "refused":
            return _error(403, "verdicts are refused: this dashboard listens beyond localhost and no analyst "
                               f"token is configured; set {TOKEN_VARIABLE}")  # fmt: skip
        origin = request.headers.get("origin")
        host = request.headers.get("host", "")
        if origin is not None and urlsplit(origin).netloc != host:
            return _error(403, f"verdicts from another site ({origin}) are refused")
        if self.mode == "open" and not is_loopback(urlsplit(f"//{host}").hostname or ""):
            return _error(403, f"verdicts are taken on a localhost address only, not {host}")
        if self.mode == "token":
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            assert self.token is not None
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token):
                return _error(401, "a verdict needs the analysts' token (Authorization: Bearer <token>)")
        if "application/json" not in request.headers.get("content-type", ""):
            return _error(415, "send the verdict as JSON (Content-Type: application/json)")
        return None


class VerdictEndpoint:
    """``POST /api/verdicts``: check, publish on ``feedback``, show on every page at once."""

    def __init__(self, settings: Settings, aggregator: Aggregator, gate: VerdictGate) -> None:
        self.settings = settings
        self.aggregator = aggregator
        self.gate = gate

    async def answer(self, request: Request) -> Response:
        refused = self.gate.refusal(request)
        if refused is not None:
            return refused
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, f"a verdict is at most {MAX_BODY} bytes")
        try:
            asked = _fields(body)
        except ValueError as exc:
            return _error(400, str(exc))
        by = f"{asked['by']} (dashboard)" if asked["by"] else "dashboard"
        if asked["incident_id"]:
            return await self._on_incident(request, asked, by)
        with self.aggregator.lock:
            alert = self.aggregator.shown_alert(asked["alert_id"])
        try:
            feedback = await asyncio.to_thread(
                give_verdict, self.settings, asked["alert_id"], asked["verdict"], by, asked["reason"],
                alert=alert, timeout=SEARCH_TIMEOUT_S,
            )  # fmt: skip
        except UnknownAlertError as exc:
            return _error(404, str(exc))
        except VerdictError as exc:
            return _error(400, str(exc))
        except (AnomstreamError, KafkaException) as exc:  # a missing topic, an unreachable broker
            log.warning("verdict on %s not published: %s", asked["alert_id"], exc)
            return _error(503, f"the verdict was not published: {exc}")
        client = request.client.host if request.client else "?"
        log.info("verdict %s on alert %s by %s from %s", feedback.verdict, feedback.alert_id, by, client)
        with self.aggregator.lock:
            self.aggregator.add_feedback(feedback)
        return Response(msgspec.json.encode(feedback), media_type="application/json")

    async def _on_incident(self, request: Request, asked: dict[str, str], by: str) -> Response:
        incident_id = asked["incident_id"]
        with self.aggregator.lock:
            known = self.aggregator.incidents.get(incident_id) is not None
        if not known:
            return _error(404, f"no incident {incident_id} among those this dashboard read on the incidents "
                               "topic: check the id (`anomstream incidents list`)")  # fmt: skip
        try:
            feedback = await asyncio.to_thread(
                give_incident_verdict, self.settings, incident_id, asked["verdict"], by, asked["reason"]
            )
        except VerdictError as exc:
            return _error(400, str(exc))
        except (AnomstreamError, KafkaException) as exc:
            log.warning("verdict on incident %s not published: %s", incident_id, exc)
            return _error(503, f"the verdict was not published: {exc}")
        client = request.client.host if request.client else "?"
        log.info("verdict %s on incident %s by %s from %s", feedback.verdict, incident_id, by, client)
        entry = {"verdict": feedback.verdict, "by": feedback.by, "given_at": feedback.given_at,
                 "reason": feedback.reason}  # fmt: skip
        with self.aggregator.lock:
            self.aggregator.add_incident_verdict(incident_id, entry)
        return Response(msgspec.json.encode(feedback), media_type="application/json")


def _fields(body: bytes) -> dict[str, str]:
    try:
        data: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ValueError("the verdict is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError('send {"alert_id": ..., "verdict": "benign" or "malicious", "reason": ...}')
    fields = {name: data.get(name) or "" for name in ("alert_id", "incident_id", "verdict", "reason", "by")}
    if not all(isinstance(value, str) for value in fields.values()):
        raise ValueError("alert_id, incident_id, verdict, reason and by are strings")
    if bool(fields["alert_id"]) == bool(fields["incident_id"]):
        raise ValueError("a verdict names one alert (alert_id) or one incident (incident_id)")
    return {name: value.strip() if name == "by" else value for name, value in fields.items()}


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)
