"""Incidents and event-time points in the dashboard's aggregation, without a broker: the latest
revision of each incident, open ones first, verdicts on incidents read from ``feedback``, and scores
placed at their event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from anomstream.dashboard.aggregate import POINTS_WINDOW_S, Aggregator
from anomstream.dashboard.feed import _incident_verdict
from anomstream.dashboard.incidents import SHOWN, IncidentBoard, row_of
from stream.messages import ScoreRecord

T0 = 1_800_000_000.0


def finding(incident_id: str, revision: int, status_id: int = 2, last_ms: int = 0, count: int = 10,
            labels: dict[str, int] | None = None) -> dict[str, Any]:  # fmt: skip
    """An incident message as the contract has it (the fields the page reads)."""
    return {
        "activity_id": 2, "status_id": status_id,
        "status": {1: "New", 2: "In Progress", 4: "Resolved"}[status_id],
        "severity_id": 4, "severity": "High", "count": count, "time": last_ms, "start_time": 1000,
        "end_time": last_ms, "message": f"{count} alerts on kdd: serror_rate, flag=S0",
        "finding_info": {"uid": incident_id, "title": f"{count} alerts: flag=S0", "first_seen_time": 1000,
                         "last_seen_time": last_ms},
        "unmapped": {"stream": "kdd", "model": {"detector": "ae", "version": 3},
                     "group": {"kind": "fields", "fields": {"flag": "S0"}, "features": ["serror_rate"]},
                     "top_features": [{"name": "serror_rate", "contribution": 0.4}],
                     "alert_ids": ["a1", "a2"], "verdict": None, "labels": labels, "revision": revision,
                     "partition": 0},
    }  # fmt: skip


def test_the_latest_revision_of_each_incident_counts() -> None:
    board = IncidentBoard()
    assert board.add(finding("inc-kdd-0-5", 2, count=20))
    assert not board.add(finding("inc-kdd-0-5", 1, count=10)), "a replayed older revision is ignored"
    assert not board.add({"finding_info": {}}), "not an incident"
    (row,) = board.view()
    assert (row["id"], row["count"], row["revision"], row["severity"]) == ("inc-kdd-0-5", 20, 2, "high")
    assert row["group"]["fields"] == {"flag": "S0"} and row["top_features"][0]["name"] == "serror_rate"
    assert row["model"] == "ae v3" and row["sample"] == 2


def test_open_incidents_first_then_the_most_recent() -> None:
    board = IncidentBoard()
    board.add(finding("closed-late", 1, status_id=4, last_ms=9000))
    board.add(finding("open-early", 1, last_ms=2000))
    board.add(finding("open-late", 1, last_ms=5000))
    assert [r["id"] for r in board.view()] == ["open-late", "open-early", "closed-late"]
    assert [r["open"] for r in board.view()] == [True, True, False]
    for i in range(SHOWN + 10):
        board.add(finding(f"more-{i}", 1, status_id=4, last_ms=i))
    assert len(board.view()) == SHOWN


def test_a_delta_carries_incidents_only_when_one_changed() -> None:
    agg = Aggregator(("kdd",))
    assert agg.delta(T0)["incidents"] is None
    agg.add_incident(finding("inc-1", 1, labels={"neptune.": 9, "normal.": 1}))
    first = agg.delta(T0 + 0.4)["incidents"]
    assert first is not None and first[0]["labels"] == {"neptune.": 9, "normal.": 1}
    assert agg.delta(T0 + 0.8)["incidents"] is None
    assert agg.snapshot(T0 + 1)["incidents"][0]["id"] == "inc-1"  # a page opening now gets them all
    agg.add_incident_verdict("inc-1", {"verdict": "benign", "by": "ann", "given_at": "x", "reason": ""})
    changed = agg.delta(T0 + 1.2)["incidents"]
    assert changed is not None and changed[0]["verdict"]["verdict"] == "benign"


def test_the_incidents_verdict_is_the_stages_echo_until_the_dashboard_reads_one() -> None:
    echoed = finding("inc-1", 3)
    echoed["unmapped"]["verdict"] = {"verdict": "malicious", "by": "cli", "reason": "", "given_at": "t"}
    assert row_of(echoed)["verdict"]["verdict"] == "malicious"
    assert row_of(echoed, {"verdict": "benign", "by": "ann"})["verdict"]["verdict"] == "benign"


def test_a_verdict_on_an_incident_is_told_from_one_on_an_alert() -> None:
    on_incident = {"incident_id": "inc-1", "alert_id": None, "verdict": "benign", "by": "ann (dashboard)",
                   "reason": "backups", "given_at": "2027-01-01T00:00:00+00:00"}  # fmt: skip
    incident_id, entry = _incident_verdict(msgspec.json.encode(on_incident)) or ("", {})
    assert incident_id == "inc-1" and entry["verdict"] == "benign" and entry["reason"] == "backups"
    assert _incident_verdict(msgspec.json.encode({**on_incident, "alert_id": "a1"})) is None
    with pytest.raises(msgspec.ValidationError):
        _incident_verdict(msgspec.json.encode({**on_incident, "verdict": "maybe"}))


def scores_at(times: list[datetime | None], partition: int = 0, first: int = 0) -> ScoreRecord:
    n = len(times)
    return ScoreRecord("kdd", "ae", 1, "kdd.connections", partition, list(range(first, first + n)),
                       [0.01] * n, [False] * n, ["normal"] * n,
                       [t.isoformat() if t else None for t in times])  # fmt: skip


def test_scores_are_placed_at_their_event_time_and_kept_after_the_stream_ends() -> None:
    agg = Aggregator(("kdd",), points_per_frame=1000)
    hours_ago = datetime.fromtimestamp(T0, UTC) - timedelta(hours=3)
    times = [hours_ago + timedelta(seconds=s) for s in range(90)]
    agg.add_score_record(scores_at(times[45:]), T0)  # one partition's later events arrive first
    agg.add_score_record(scores_at(times[:45], partition=1), T0)
    sample = agg.delta(T0 + 0.4)["points"]["kdd"]["t"]
    assert sample == sorted(sample) and sample == [t.timestamp() for t in times]
    # Ten minutes of wall time later (the replay has ended), a page opening still gets the last
    # minute of event time, not nothing (which drew the chart at epoch 0).
    for k in range(3):
        agg.delta(T0 + 600 + k)
    kept = agg.snapshot(T0 + 600)["points"]["kdd"]["t"]
    assert kept == sorted(kept) and len(kept) == 90
    agg.add_score_record(scores_at([hours_ago + timedelta(seconds=200)], first=100), T0 + 601)
    agg.delta(T0 + 601.4)
    newest = agg.snapshot(T0 + 602)["points"]["kdd"]["t"]
    # The minute before the newest point: the first 90 s are more than POINTS_WINDOW_S before it.
    assert POINTS_WINDOW_S < 200 - 90 and newest == [(hours_ago + timedelta(seconds=200)).timestamp()]


def test_an_event_without_a_time_is_placed_at_its_arrival() -> None:
    agg = Aggregator(("kdd",))
    agg.add_score_record(scores_at([None, None, None]), T0)
    sample = agg.delta(T0 + 0.4)["points"]["kdd"]["t"]
    assert len(sample) == 3 and all(T0 <= t < T0 + 0.4 for t in sample)
