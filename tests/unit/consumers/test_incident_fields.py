"""A dataset schema's ``[incidents] group_by``: the worker copies those fields' values into each alert
(alert rows only), and the incident stage groups that stream's alerts by them."""

from __future__ import annotations

import numpy as np
import pytest

from consumers.incidents.grouping import GroupingPolicy, PartitionGrouper, PartitionState, alert_ref
from consumers.outputs import BatchMeta, build_alerts, group_fields
from models.detectors.classical import PCADetector
from models.features import RecordsRaw, TableEncoder
from models.scoring import ScoringModel
from models.thresholds import QuantileThreshold
from stream.datasets.schema import DatasetSchema
from stream.errors import ConfigurationError
from stream.messages import decode_alert


def firewall_model(group_by: list[str]) -> ScoringModel:
    schema = DatasetSchema(name="fw", features={"numeric": ["bytes", "port"], "categorical": ["proto"]},
                           incidents={"group_by": group_by})  # fmt: skip
    rng = np.random.default_rng(0)
    normal = RecordsRaw(
        np.column_stack([rng.normal(100, 5, 500), np.full(500, 443.0)]),
        np.full((500, 1), "tcp", dtype=object),
    )
    encoder = TableEncoder(["bytes", "port"], ["proto"], schema=schema).fit(normal)
    X = encoder.transform(normal)
    detector = PCADetector().fit(X)
    threshold = QuantileThreshold(0.01).fit(detector.score(X))
    return ScoringModel("fw", "pca", 1, encoder, detector, threshold)


def test_alerts_carry_the_group_by_fields_and_group_by_them() -> None:
    model = firewall_model(["port", "proto"])
    raw = RecordsRaw(
        np.array([[100.0, 443.0], [9000.0, 22.0], [9100.0, 22.0], [9000.0, 3389.0]]),
        np.array([["tcp"], ["tcp"], ["tcp"], ["udp"]], dtype=object),
    )
    scored = model.score(raw)
    rows = scored.alert_rows.tolist()
    assert rows == [1, 2, 3]
    fields = group_fields(model, raw, rows)
    assert fields == [{"port": "22", "proto": "tcp"}, {"port": "22", "proto": "tcp"},
                      {"port": "3389", "proto": "udp"}]  # fmt: skip
    meta = BatchMeta(["fw"] * 4, [0] * 4, [0, 1, 2, 3], [b"a", b"b", b"c", b"d"], [None] * 4, [None] * 4)
    values = [v for _, v in build_alerts(model, meta, scored, "2026-01-01T00:00:00Z", fields)]
    assert [decode_alert(v).fields for v in values] == fields
    grouper = PartitionGrouper(PartitionState("alerts", 0), GroupingPolicy())
    result = grouper.add([alert_ref(v, i) for i, v in enumerate(values)], wall_ms=0)
    assert sorted(len(m) for m in result.members.values()) == [1, 2]
    assert {tuple(i.fields.items()) for i in grouper.open_incidents} == {
        (("port", "22"), ("proto", "tcp")), (("port", "3389"), ("proto", "udp"))}  # fmt: skip


def test_a_stream_without_group_by_pays_nothing_and_an_unknown_field_is_refused() -> None:
    model = firewall_model([])
    raw = RecordsRaw(np.array([[9000.0, 22.0]]), np.array([["tcp"]], dtype=object))
    assert group_fields(model, raw, [0]) is None
    with pytest.raises(ConfigurationError, match="no feature column"):
        group_fields(firewall_model(["dst"]), raw, [0])
