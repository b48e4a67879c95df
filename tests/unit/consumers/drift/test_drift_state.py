"""Where a change began, in Kafka terms: watch positions mapped back to input offsets per partition."""

from __future__ import annotations

import numpy as np

from consumers.drift.state import SpanLog


def test_change_position_maps_to_the_first_offset_of_every_partition() -> None:
    log = SpanLog()
    # Records interleave partitions 0 and 1; partition 1 skipped offset 12 (a dead letter).
    log.add(0, 0, np.arange(100, 110), ["2024-01-01T00:00:00.000+00:00", "2024-01-01T00:00:09.000+00:00"])
    log.add(10, 1, np.r_[10, 11, 13, 14], ["2024-01-01T00:00:10.000+00:00", "2024-01-01T00:00:13.000+00:00"])
    log.add(14, 0, np.arange(110, 120), ["2024-01-01T00:00:14.000+00:00", "2024-01-01T00:00:23.000+00:00"])
    offsets, when = log.locate(5, high={0: 119, 1: 14, 2: 40})
    # partition 0: position 5 is offset 105; partition 1: its next record starts at offset 10;
    # partition 2 sent nothing since: its change starts with the next offset it will get.
    assert offsets == {"0": 105, "1": 10, "2": 41}
    assert when == "2024-01-01T00:00:05.000+00:00"
    assert log.locate(12, high={0: 119, 1: 14})[0] == {"0": 110, "1": 13}


def test_span_log_round_trips_as_json_lists() -> None:
    log = SpanLog()
    log.add(0, 3, np.arange(5, 25), [None, None])
    again = SpanLog.from_state(log.state())
    assert again.locate(7, {3: 24}) == log.locate(7, {3: 24}) == ({"3": 12}, None)


def test_placed_names_only_the_partitions_watched_past_the_change() -> None:
    """What a monitor catching up on a backlog knows: partition 1 reached the change, partition 0 has
    not been watched past it yet. ``placed`` leaves 0 out (the monitor places it by Kafka's timestamps);
    ``locate_time`` would guess its next offset, a guess that is wrong while a backlog is unread."""
    log = SpanLog()
    log.add(0, 0, np.arange(0, 10), ["2024-01-01T00:00:00.000+00:00", "2024-01-01T00:00:09.000+00:00"])
    log.add(10, 1, np.arange(0, 30), ["2024-01-01T00:00:00.000+00:00", "2024-01-01T00:00:29.000+00:00"])
    change = "2024-01-01T00:00:20.000+00:00"
    assert log.placed(change) == {"1": 20}
    assert log.locate_time(change, high={0: 9, 1: 29}) == {"0": 10, "1": 20}
    assert log.at(30) == (1, 20) and log.at(3) == (0, 3) and log.at(40) is None
