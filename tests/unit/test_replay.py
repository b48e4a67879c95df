"""Replay events: the body is exactly the 41 features, the label rides in a header, pacing holds."""

from __future__ import annotations

import time

import orjson
import pytest

from producers.kdd import kdd_events
from producers.replay import Pacer
from stream.datasets import find_kdd_file, read_kdd
from stream.messages import KDD_FEATURES, decode_kdd_connection
from stream.signals import StopFlag
from tests.support import require_data


def test_kdd_events_carry_the_41_features_and_validate() -> None:
    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "test"), limit=500)
    events = list(kdd_events(frame, "corrected"))
    assert len(events) == 500 and len({e.key for e in events}) == 500
    for event, (_, row) in zip(events, frame.iterrows(), strict=True):
        body = orjson.loads(event.value)
        assert list(body) == list(KDD_FEATURES), "label must never be in the scored fields"
        assert event.label == row["label"]
        assert body["src_bytes"] == row["src_bytes"] and body["service"] == row["service"]
        decode_kdd_connection(event.value)


def test_limit_and_loop() -> None:
    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "test"), limit=10)
    looped = list(kdd_events(frame, "c", loop=True, limit=25))
    assert len(looped) == 25
    assert looped[0].value == looped[10].value and looped[0].key != looped[10].key
    assert looped[24].key == b"c-2-0000004"


@pytest.mark.parametrize("rate", [2000.0, 10000.0])
def test_pacer_holds_the_requested_rate(rate: float) -> None:
    pacer, stop, sent = Pacer(rate), StopFlag(install=False), 0
    started = time.perf_counter()
    while sent < rate * 0.5:  # half a second worth of events, in chunks of 50
        sent += 50
        pacer.wait(sent, stop)
    elapsed = time.perf_counter() - started
    assert 0.45 <= elapsed <= 0.7, f"{sent} events at {rate}/s took {elapsed:.3f}s"


def test_pacer_stops_waiting_when_stopped() -> None:
    pacer, stop = Pacer(1.0), StopFlag(install=False)
    stop.set()
    started = time.perf_counter()
    pacer.wait(100, stop)  # would otherwise sleep ~100 s
    assert time.perf_counter() - started < 0.1
