"""The live accounting of the scores topic (demo summary, benchmark), without a broker."""

from __future__ import annotations

from consumers.tally import Tally


def _record(partition: int, offsets: list[int], flags: list[bool], labels: list[str | None]) -> dict:
    return {"topic": "kdd.connections", "partition": partition, "offsets": offsets, "is_alert": flags,
            "labels": labels}  # fmt: skip


def test_confusion_counts_precision_and_recall_by_hand() -> None:
    tally = Tally()
    tally.add(_record(0, [0, 1, 2, 3], [True, True, False, False], ["smurf", "normal", "neptune", "normal"]))
    tally.add(_record(1, [0, 1], [True, False], [None, "normal"]))
    assert (tally.events, tally.alerts, tally.unlabelled) == (6, 3, 1)
    assert (tally.tp, tally.fp, tally.fn, tally.tn) == (1, 1, 1, 2)
    assert tally.precision == 0.5 and tally.recall == 0.5


def test_an_offset_scored_twice_is_a_duplicate_not_a_second_event() -> None:
    tally = Tally()
    tally.add(_record(0, [5, 6], [True, False], ["smurf", "normal"]))
    tally.add(_record(0, [6, 7], [False, True], ["normal", "smurf"]))  # a redelivered batch overlaps
    assert (tally.events, tally.duplicates, tally.tp, tally.tn) == (3, 1, 2, 1)


def test_an_empty_tally_reports_zero_not_a_division_error() -> None:
    assert Tally().precision == 0.0 and Tally().recall == 0.0
