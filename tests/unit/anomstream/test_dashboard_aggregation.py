"""The dashboard's server-side aggregation, without a broker: counts, duplicates, windows, samples."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import msgspec
import numpy as np
import pytest

from anomstream.dashboard.aggregate import (
    HIST_BINS,
    NEW_ALERTS_PER_FRAME,
    Aggregator,
    registry_thresholds,
    timeline_entry_of_update,
)
from models.thresholds import SEVERITIES
from stream.messages import (
    Alert,
    ChangePoint,
    DriftEvent,
    FeatureContribution,
    ModelUpdate,
    ScoreRecord,
    SourceRef,
    encode,
)

T0 = 1_800_000_000.0
STATIC = Path(__file__).resolve().parents[3] / "anomstream" / "dashboard" / "static"


def record(offsets: list[int], scores: list[float], alerts: list[bool], labels: list[str | None],
           partition: int = 0, version: int = 1) -> ScoreRecord:  # fmt: skip
    n = len(offsets)
    return ScoreRecord(
        "kdd", "ae", version, "kdd.connections", partition, offsets, scores, alerts, labels, [None] * n
    )


def alert(offset: int, severity: str = "low", score: float = 0.5, version: int = 1, at: str = "") -> Alert:
    return Alert(
        alert_id=f"id-{offset}", stream="kdd", event_id=f"e-{offset}",
        source=SourceRef("kdd.connections", 0, offset, f"e-{offset}"), event_time=None,
        detected_at=at or f"2027-01-15T08:00:{offset % 60:02d}.000+00:00", detector="ae",
        model_version=version,
        score=score, threshold=0.1, severity=severity,  # type: ignore[arg-type]
        top_features=[FeatureContribution("count", 0.2)], label="smurf",
    )  # fmt: skip


def test_counts_precision_recall_and_f1_so_far() -> None:
    agg = Aggregator(("kdd",))
    # tp, fp, fn, tn, tp
    flagged = [True, True, False, False, True]
    labels: list[str | None] = ["smurf", "normal", "neptune", "normal", "smurf"]
    agg.add_score_record(record([0, 1, 2, 3, 4], [0.5, 0.3, 0.01, 0.02, 0.9], flagged, labels), T0)
    view = agg.delta(T0 + 0.5)["streams"]["kdd"]
    assert view["scored"] == 5 and view["alerts"] == 3
    so_far = view["so_far"]
    assert (so_far["tp"], so_far["fp"], so_far["fn"], so_far["tn"]) == (2, 1, 1, 1)
    assert so_far["precision"] == pytest.approx(2 / 3) and so_far["recall"] == pytest.approx(2 / 3)
    assert so_far["f1"] == pytest.approx(2 / 3)


def test_a_republished_record_counts_once() -> None:
    """At-least-once: a retried batch re-publishes its score record; the page counts each offset once."""
    agg = Aggregator(("kdd",))
    first = record([10, 11, 12], [0.1, 0.2, 0.3], [False, True, True], ["normal", "smurf", "smurf"])
    assert agg.add_score_record(first, T0) == 3
    assert agg.add_score_record(first, T0 + 1) == 0
    overlapping = record([12, 13], [0.3, 0.4], [True, True], ["smurf", "smurf"])
    assert agg.add_score_record(overlapping, T0 + 2) == 1
    other_partition = record([12], [0.3], [True], ["smurf"], partition=1)
    assert agg.add_score_record(other_partition, T0 + 2) == 1
    view = agg.delta(T0 + 3)["streams"]["kdd"]
    assert view["scored"] == 5 and view["duplicates"] == 4 and view["so_far"]["tp"] == 4


def test_last_minute_forgets_older_seconds() -> None:
    agg = Aggregator(("kdd",))
    agg.add_score_record(record([0, 1], [0.5, 0.5], [True, True], ["normal", "normal"]), T0)  # 2 fp
    agg.add_score_record(record([2, 3], [0.5, 0.5], [True, True], ["smurf", "smurf"]), T0 + 90)  # 2 tp
    view = agg.delta(T0 + 91)["streams"]["kdd"]
    assert view["so_far"]["precision"] == pytest.approx(0.5)
    assert view["last_minute"]["precision"] == pytest.approx(1.0) and view["last_minute"]["fp"] == 0


def test_rates_from_offsets_and_scores() -> None:
    agg = Aggregator(("kdd",))
    for second in range(6):
        agg.add_offsets("kdd", end_total=1000 * second, committed_total=1000 * second - 300, now=T0 + second)
        n = 800
        offsets = list(range(second * n, (second + 1) * n))
        agg.add_score_record(record(offsets, [0.01] * n, [False] * n, ["normal"] * n), T0 + second)
    view = agg.delta(T0 + 5.5)["streams"]["kdd"]
    assert view["in_rate"] == pytest.approx(1000)
    assert view["scored_rate"] == pytest.approx(800, rel=0.25)
    assert view["lag"] == 300 and view["end_offset"] == 5000


def test_points_are_sampled_never_forwarded_whole() -> None:
    agg = Aggregator(("kdd",), points_per_frame=100)
    n = 20_000
    labels: list[str | None] = ["normal"] * (n // 2) + ["smurf"] * (n // 2)
    agg.add_score_record(record(list(range(n)), list(np.linspace(0.001, 1, n)), [False] * n, labels), T0)
    points = agg.delta(T0 + 0.4)["points"]["kdd"]
    assert len(points["t"]) == len(points["score"]) == len(points["cls"]) == 100
    assert points["t"] == sorted(points["t"]) and points["t"][0] >= T0 and points["t"][-1] < T0 + 0.4
    assert set(points["cls"]) == {0, 1}
    assert agg.delta(T0 + 0.8)["points"]["kdd"]["t"] == []  # drained
    assert len(agg.snapshot(T0 + 1)["points"]["kdd"]["t"]) == 100  # kept for a page opening now


def test_histogram_of_score_over_threshold_by_label() -> None:
    agg = Aggregator(("kdd",), thresholds=lambda stream, detector, version: 0.01)
    scores = [0.001, 0.01, 0.1, 1e-12, 1e6]  # 0.1x, 1x, 10x and two beyond the range
    agg.add_score_record(record(list(range(5)), scores, [False, True, True, False, True],
                                ["normal", "normal", "smurf", "normal", "smurf"]), T0)  # fmt: skip
    view = agg.delta(T0 + 1)["streams"]["kdd"]
    assert view["threshold"] == 0.01 and view["threshold_source"] == "registry"
    normal, anomaly, unlabelled = (np.array(row) for row in view["hist"])
    bin_of = lambda ratio: int((np.log10(ratio) + 3) * HIST_BINS / 6)  # noqa: E731
    assert normal[bin_of(0.1)] == 1 and normal[bin_of(1.0)] == 1 and normal[0] == 1
    assert anomaly[bin_of(10.0)] == 1 and anomaly[-1] == 1 and unlabelled.sum() == 0


def test_threshold_comes_from_alerts_else_an_estimate() -> None:
    agg = Aggregator(("kdd",))
    agg.add_score_record(record([0, 1, 2], [0.01, 0.2, 0.5], [False, True, True], [None] * 3), T0)
    assert agg.streams["kdd"].threshold == 0.2 and agg.streams["kdd"].threshold_source == "estimate"
    agg.add_alert(encode(alert(1)))
    assert agg.streams["kdd"].threshold == 0.1 and agg.streams["kdd"].threshold_source == "alerts"


def test_stragglers_of_a_replaced_model_do_not_switch_back() -> None:
    agg = Aggregator(("kdd",))
    agg.add_score_record(record([0], [0.1], [False], ["normal"], version=1), T0)
    agg.add_score_record(record([1], [0.1], [False], ["normal"], version=2), T0)
    agg.add_score_record(record([2], [0.1], [False], ["normal"], version=1), T0)  # another replica, late
    assert agg.streams["kdd"].model_version == 2
    agg.add_model_update(ModelUpdate("kdd", "ae", 1, "2027-01-15T08:00:00+00:00", reason="rollback"), {})
    agg.add_score_record(record([3], [0.1], [False], ["normal"], version=1), T0)
    assert agg.streams["kdd"].model_version == 1


def test_alerts_newest_per_severity_and_no_duplicates_across_snapshot_and_delta() -> None:
    agg = Aggregator(("kdd",))
    for offset in range(40):
        agg.add_alert(encode(alert(offset, "low")))
    agg.add_alert(encode(alert(100, "critical", score=5.0)))
    snapshot_ids = {a.alert_id for a in agg.snapshot(T0)["alerts"]}
    assert all(isinstance(a, Alert) for a in agg.snapshot(T0)["alerts"])  # whole alerts for the page
    delta = agg.delta(T0)["alerts"]
    # A rare severity is not crowded out by a common one.
    assert [a.severity for a in delta].count("critical") == 1
    assert [a.severity for a in delta].count("low") == NEW_ALERTS_PER_FRAME
    assert [a.detected_at for a in delta] == sorted((a.detected_at for a in delta), reverse=True)
    assert not snapshot_ids & {a.alert_id for a in delta}
    assert len(agg.snapshot(T0)["alerts"]) == 41  # recent alerts are kept for the next page
    assert agg.delta(T0)["alerts"] == []


def test_timeline_from_drift_events_and_model_updates() -> None:
    agg = Aggregator(("kdd",))
    event = DriftEvent("d1", "kdd", 1, "adwin", 0.31, 0.05, ChangePoint("kdd.connections", {"0": 812}, None),
                       "2027-01-15T08:00:00+00:00", "retrain_started")  # fmt: skip
    agg.add_drift_event(event, {})
    agg.add_model_update(ModelUpdate("kdd", "ae", 2, "2027-01-15T08:01:00+00:00", "candidate", "drift:d1"),
                         {"shadow": {"f1": 0.91, "baseline_f1": 0.84}})  # fmt: skip
    agg.add_model_update(
        ModelUpdate("kdd", "ae", 2, "2027-01-15T08:02:00+00:00", "production", "drift:d1"), {}
    )
    snapshot = agg.snapshot(T0)
    assert snapshot["timeline"] == []  # still pending for the next delta
    timeline = agg.delta(T0)["timeline"]
    assert [e["kind"] for e in timeline] == ["promotion", "retrain", "drift"]
    assert timeline[0]["drift_id"] == "d1" and "after drift event d1" in timeline[0]["detail"]
    assert "shadow={f1: 0.91, baseline_f1: 0.84}" in timeline[1]["detail"]
    assert "retrain started" in timeline[2]["detail"]
    assert agg.production["kdd"]["version"] == 2 and agg.production["kdd"]["reason"] == "drift:d1"
    assert [e["kind"] for e in agg.snapshot(T0)["timeline"]] == ["promotion", "retrain", "drift"]


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [("production", "manual", "promotion"), ("production", "rollback", "rollback"),
     ("candidate", "drift:x", "retrain"), ("rejected", "drift:x", "shadow"),
     ("retired", "manual", "retired")],
)  # fmt: skip
def test_model_update_kinds(status: str, reason: str, kind: str) -> None:
    update = ModelUpdate("kdd", "ae", 3, "2027-01-15T08:00:00+00:00", status, reason)  # type: ignore[arg-type]
    assert timeline_entry_of_update(update, {})["kind"] == kind


def test_frames_encode_as_json() -> None:
    agg = Aggregator(("kdd", "ecg"))
    agg.add_score_record(record([0, 1], [0.1, 0.2], [False, True], ["normal", "smurf"]), T0)
    agg.add_alert(encode(alert(1)))
    for frame in (agg.snapshot(T0), agg.delta(T0 + 0.4)):
        decoded = msgspec.json.decode(msgspec.json.encode(frame))
        assert decoded["streams"]["kdd"]["scored"] == 2 and decoded["streams"]["ecg"]["scored"] == 0


def test_the_page_loads_nothing_from_outside() -> None:
    """Works offline: every script and style is served by the dashboard itself."""
    for path in STATIC.glob("*.*"):
        text = path.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), path
        assert "@import" not in text and "fonts.googleapis" not in text, path


def test_vendored_uplot_matches_its_recorded_hashes() -> None:
    folder = STATIC / "vendor" / "uplot"
    recorded = dict(
        re.findall(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", (folder / "VENDORED.md").read_text(), re.M)
    )
    assert set(recorded) == {"LICENSE", "uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in recorded.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (folder / "LICENSE").read_text()


def test_the_alert_head_is_a_view_of_the_alert_contract() -> None:
    """The fields the aggregation decodes are the alert's own, with the same types."""
    from typing import get_type_hints

    from anomstream.dashboard.aggregate import AlertHead

    alert_types = get_type_hints(Alert, include_extras=True)
    for name, kind in get_type_hints(AlertHead, include_extras=True).items():
        assert alert_types[name] == kind, name


def test_severities_are_counted_from_the_score_records_as_the_worker_grades_them() -> None:
    """The dashboard no longer reads every alert (45,000 a second at full speed): the score records
    carry every score, and the severity of each alerting one is its multiple of the threshold."""
    from models.thresholds import FixedThreshold

    threshold = FixedThreshold(0.1)
    rng = np.random.default_rng(5)
    scores = np.exp(rng.uniform(np.log(0.01), np.log(5.0), 4000))
    flagged = threshold.classify(scores)
    expected = dict.fromkeys(("low", "medium", "high", "critical"), 0)
    for severity in threshold.severity(scores[flagged]):
        expected[severity] += 1

    agg = Aggregator(("kdd",), thresholds=lambda stream, detector, version: 0.1)
    agg.add_score_record(record(list(range(4000)), scores.tolist(), flagged.tolist(), [None] * 4000), T0)
    assert agg.streams["kdd"].alerts_by_severity == expected
    assert min(expected.values()) > 0  # every severity occurs, so each boundary is exercised
    assert sum(agg.severity_counted.values()) == int(flagged.sum())
    assert agg.delta(T0 + 0.5)["streams"]["kdd"]["severity_counts"] == expected


def test_a_threshold_with_its_own_ratios_is_graded_on_the_page_as_in_the_alerts(tmp_path: Path) -> None:
    """The page grades with the ratios stored with the model (the registry's threshold), not the
    defaults: the worker's alerts and the page's severity counts agree."""
    from models.detectors.classical import PCADetector
    from models.features import WindowEncoder
    from models.registry import Registry
    from models.thresholds import DEFAULT_RATIOS, QuantileThreshold

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6))
    encoder = WindowEncoder(6).fit(X)
    detector = PCADetector(n_components=3).fit(encoder.transform(X))
    ratios = (1.0, 1.1, 1.3, 1.6)  # not the defaults: a page that grades with those disagrees
    assert ratios != DEFAULT_RATIOS
    threshold = QuantileThreshold(0.05, ratios=ratios).fit(detector.score(encoder.transform(X)))
    registry = Registry(tmp_path)
    registry.save("ecg", detector, encoder, threshold, {"data": "random"})
    model = registry.load("ecg")

    batch = model.score(rng.normal(scale=1.6, size=(3000, 6)))  # what a worker scores and alerts on
    in_alerts = dict.fromkeys(SEVERITIES, 0)
    for severity in batch.severities:
        in_alerts[severity] += 1
    assert min(in_alerts.values()) > 0  # every severity occurs, so each boundary is exercised

    agg = Aggregator(("ecg",), thresholds=registry_thresholds(registry))
    n = len(batch.scores)
    scored = ScoreRecord("ecg", model.detector_name, model.version, "ecg.beats", 0, list(range(n)),
                         batch.scores.tolist(), batch.is_alert.tolist(), [None] * n, [None] * n)  # fmt: skip
    agg.add_score_record(scored, T0)
    assert agg.streams["ecg"].alerts_by_severity == in_alerts
    assert agg.delta(T0 + 0.5)["streams"]["ecg"]["threshold_source"] == "registry"
    assert registry_thresholds(registry)("ecg", "pca", 99) is None  # no such version: no threshold


def test_a_threshold_value_alone_is_graded_with_the_default_ratios() -> None:
    from models.thresholds import FixedThreshold

    scores = np.array([0.15, 0.25, 0.6, 2.5])
    agg = Aggregator(("kdd",), thresholds=lambda stream, detector, version: 0.1)
    agg.add_score_record(record([0, 1, 2, 3], scores.tolist(), [True] * 4, [None] * 4), T0)
    assert list(agg.streams["kdd"].alerts_by_severity.values()) == [1, 1, 1, 1]
    assert FixedThreshold(0.1).severity(scores) == list(SEVERITIES)
