"""Replay events: the body is exactly the 41 features, the label rides in a header, pacing holds."""

from __future__ import annotations

import threading

import orjson
import pytest

from producers.kdd import kdd_events
from producers.replay import Pacer
from stream.datasets import find_kdd_file, read_kdd
from stream.messages import KDD_FEATURES, decode_kdd_connection
from stream.signals import StopFlag
from tests.support import FakeClock, require_data, wait_until


@pytest.mark.data
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


@pytest.mark.data
def test_limit_and_loop() -> None:
    frame = read_kdd(find_kdd_file(require_data("kdd99").parent, "test"), limit=10)
    looped = list(kdd_events(frame, "c", loop=True, limit=25))
    assert len(looped) == 25
    assert looped[0].value == looped[10].value and looped[0].key != looped[10].key
    assert looped[24].key == b"c-2-0000004"


@pytest.mark.parametrize("rate", [2000.0, 10000.0])
def test_pacer_holds_the_requested_rate(rate: float) -> None:
    clock, stop, sent = FakeClock(), StopFlag(install=False), 0
    pacer, started = Pacer(rate, clock), clock.t
    while sent < rate * 0.5:  # half a second worth of events, in chunks of 50
        sent += 50
        clock.advance(0.001)  # producing a chunk takes a millisecond
        pacer.wait(sent, stop)
    assert clock.t - started == pytest.approx(0.5), f"{sent} events at {rate}/s took {clock.t - started}s"
    assert all(s == pytest.approx(50 / rate - 0.001) for s in clock.sleeps)  # one sleep per chunk


def test_pacer_behind_schedule_does_not_sleep() -> None:
    clock, stop = FakeClock(), StopFlag(install=False)
    pacer = Pacer(100.0, clock)
    clock.advance(2.0)  # a broker stall: 200 events are due already
    pacer.wait(150, stop)
    assert clock.sleeps == []
    pacer.wait(250, stop)  # catches up without ever sleeping ahead of its schedule
    assert clock.sleeps == [pytest.approx(0.5)]


def test_pacer_stops_waiting_when_stopped() -> None:
    pacer, stop = Pacer(1.0), StopFlag(install=False)
    stop.set()
    waited = threading.Thread(target=pacer.wait, args=(100, stop), daemon=True)  # would sleep ~100 s
    waited.start()
    assert wait_until(lambda: not waited.is_alive(), timeout=30, interval=0.01)
