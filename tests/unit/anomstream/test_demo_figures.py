"""The demo's live figures, read off the dashboard's aggregation, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime

from anomstream.dashboard.aggregate import Aggregator
from anomstream.demo import DemoFigures
from stream.messages import ChangePoint, DriftEvent, ModelUpdate, ScoreRecord

T0 = 1_800_000_000.0
START = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def _record(partition: int, offsets: list[int], flags: list[bool], labels: list[str | None]) -> ScoreRecord:
    n = len(offsets)
    return ScoreRecord("kdd", "ae", 1, "kdd.connections", partition, offsets, [0.5] * n, flags, labels,
                       [None] * n)  # fmt: skip


def _drift(event_id: str, detector: str, at: str) -> DriftEvent:
    return DriftEvent(event_id, "kdd", 1, detector, 0.3, 0.05, ChangePoint("kdd.connections", {"0": 5}, None),
                      at, "none")  # fmt: skip


def test_scored_duplicates_precision_and_recall() -> None:
    agg = Aggregator(("kdd",))
    figures = DemoFigures(agg, "kdd", since=START)
    agg.add_score_record(_record(0, [0, 1, 2, 3], [True, True, False, False], ["smurf", "normal", "neptune",
                                                                               "normal"]), T0)  # fmt: skip
    agg.add_score_record(_record(1, [0, 1], [True, False], [None, "normal"]), T0)
    agg.add_score_record(_record(0, [3, 4], [False, True], ["normal", "smurf"]), T0)  # a retried batch
    now = figures.refresh(T0 + 1)
    assert (now.scored, now.duplicates, now.alerts) == (7, 1, 4)
    c = now.confusion
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 2)  # the unlabelled alert counts in none
    assert c.precision == 2 / 3 and c.recall == 2 / 3
    assert now.rate == 7 / 5  # over the last 5 s, as the dashboard's panel


def test_precision_is_undefined_before_any_alert() -> None:
    agg = Aggregator(("kdd",))
    agg.add_score_record(_record(0, [0, 1], [False, False], ["normal", "smurf"]), T0)
    c = DemoFigures(agg, "kdd", since=START).refresh(T0).confusion
    assert c.precision is None and c.recall == 0.0


def test_drift_events_and_model_updates_since_the_demo_started() -> None:
    agg = Aggregator(("kdd",))
    figures = DemoFigures(agg, "kdd", since=START)
    # The feed reads drift-events and model-updates from the beginning: the history is not the demo's.
    agg.add_drift_event(_drift("old", "adwin", "2027-01-15T07:59:59+00:00"), {})
    agg.add_drift_event(_drift("d1", "adwin", "2027-01-15T08:00:30+00:00"), {})
    agg.add_drift_event(_drift("d2", "feature test", "2027-01-15T08:00:40.5+00:00"), {})
    figures.refresh(T0)
    promotion = ModelUpdate("kdd", "ae", 2, "2027-01-15T08:01:00+00:00", "production", "drift:d1")
    agg.add_model_update(promotion, {})
    agg.add_drift_event(_drift("d3", "adwin", "2027-01-15T08:02:00+00:00"), {})
    now = figures.refresh(T0 + 1)
    assert dict(now.drift_events) == {"adwin": 2, "feature test": 1}
    assert now.model_updates == ["ae v2 promoted to production"]
