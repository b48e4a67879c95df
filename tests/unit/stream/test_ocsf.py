"""The vendored OCSF Detection Finding schema is what the pinned generator makes, and the validator
accepts an incident message built per the contract and refuses broken ones."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from stream.ocsf import (
    DETECTION_FINDING_SCHEMA,
    OCSF_VERSION,
    detection_finding_schema,
    generate_detection_finding_schema,
    schema_text,
    validate_detection_finding,
)


def contract_incident(activity: str = "Create") -> dict[str, Any]:
    """An incident message exactly as the incident contract spells it (times in epoch milliseconds)."""
    activity_id = {"Create": 1, "Update": 2, "Close": 3}[activity]
    statuses = {"Create": (1, "New"), "Update": (2, "In Progress"), "Close": (4, "Resolved")}
    status_id, status = statuses[activity]
    first, last = 1_765_000_000_000, 1_765_000_042_500
    return {
        "activity_id": activity_id,
        "activity_name": activity,
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 200400 + activity_id,
        "type_name": f"Detection Finding: {activity}",
        "severity_id": 4,
        "severity": "High",
        "status_id": status_id,
        "status": status,
        "time": last + 1_200,
        "start_time": first,
        "end_time": last,
        "count": 412,
        "message": "412 alerts on kdd: serror_rate, flag=S0",
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "anomstream", "vendor_name": "anomstream", "version": "0.1.0"},
            "uid": "inc-kdd-3-1207:2",
        },
        "finding_info": {
            "uid": "inc-kdd-3-1207",
            "title": "412 anomalous kdd connections sharing flag=S0",
            "desc": "serror_rate, srv_serror_rate, flag=S0 lead the reconstruction error",
            "first_seen_time": first,
            "last_seen_time": last,
            "analytic": {"name": "ae", "type_id": 99, "type": "Other", "uid": "kdd/ae", "version": "3"},
        },
        "unmapped": {
            "stream": "kdd",
            "model": {"detector": "ae", "version": 3},
            "group": {"kind": "features", "fields": {"service": "private"}, "features": ["serror_rate"]},
            "top_features": [{"name": "serror_rate", "contribution": 0.41}],
            "alert_ids": ["kdd-0001207", "kdd-0001208"],
            "verdict": None,
            "labels": {"neptune.": 412},
            "revision": 2,
            "partition": 3,
        },
    }


def test_the_vendored_schema_is_what_the_pinned_generator_makes() -> None:
    """stream/schemas/ocsf/ is generated, not hand-edited: see its SOURCES.md."""
    regenerated = schema_text(generate_detection_finding_schema())
    assert DETECTION_FINDING_SCHEMA.read_text() == regenerated, "stale: run python -m stream.ocsf"


def test_the_vendored_schema_is_a_valid_2020_12_schema_of_class_2004() -> None:
    schema = detection_finding_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/{OCSF_VERSION}/classes/detection_finding")
    assert schema["properties"]["class_uid"]["const"] == 2004


@pytest.mark.parametrize("activity", ["Create", "Update", "Close"])
def test_a_contract_incident_validates(activity: str) -> None:
    assert validate_detection_finding(contract_incident(activity)) == []


def test_an_open_verdict_and_no_labels_still_validate() -> None:
    doc = contract_incident("Update")
    doc["unmapped"]["verdict"] = {"verdict": "benign", "by": "cli", "reason": "backup job", "given_at": 1}
    doc["unmapped"]["labels"] = None
    assert validate_detection_finding(doc) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d.pop("finding_info"), "(root): 'finding_info' is a required property"),
        (lambda d: d.pop("severity_id"), "(root): 'severity_id' is a required property"),
        (lambda d: d["finding_info"].pop("uid"), "/finding_info: 'uid' is a required property"),
        (lambda d: d["finding_info"]["analytic"].pop("type_id"), "/finding_info/analytic: 'type_id' is"),
        (lambda d: d.update(class_uid=2001), "/class_uid: 2004 was expected"),
        (lambda d: d.update(type_uid=300401), "/type_uid: 300401 is not one of"),
        (lambda d: d.update(time="2026-12-07T15:00:00Z"), "/time: '2026-12-07T15:00:00Z' is not of type"),
        (lambda d: d.update(stream="kdd"), "(root): Additional properties are not allowed ('stream' was"),
        (lambda d: d["metadata"].pop("product"), "/metadata: 'product' is a required property"),
    ],
)
def test_a_broken_incident_is_refused_with_the_reason(breakage: Any, expected: str) -> None:
    doc = copy.deepcopy(contract_incident())
    breakage(doc)
    errors = validate_detection_finding(doc)
    assert any(line.startswith(expected) for line in errors), errors
