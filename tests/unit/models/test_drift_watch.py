"""DriftWatch: attack bursts are not concept drift unless they outlast any burst in the data; one event
per change; checkpoints resume exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.drift import ALERT_RATE, DriftConfig, DriftWatch, WatchConfig, calibrate

THRESHOLD = 2.33  # ~1% of N(0, 1) normal scores alert


@pytest.fixture(scope="module")
def adwin() -> DriftConfig:
    reference = np.random.default_rng(0).normal(size=10_000)
    return calibrate("adwin", reference[reference < THRESHOLD], target_ert=1_000_000, seed=0)


def normal(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, n)


def flood(n: int, seed: int, missed: float = 0.02) -> np.ndarray:
    """An attack flood: near-identical high scores, a share of them (just) below the threshold."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < missed, 2.0 + 0.01 * rng.random(n), 9.0)


def feed(watch: DriftWatch, scores: np.ndarray, batch: int = 1000) -> list:
    events = []
    for start in range(0, len(scores), batch):
        chunk = scores[start : start + batch]
        events += watch.update(chunk, chunk >= THRESHOLD)
    return events


def test_a_flood_with_missed_attacks_is_not_drift(adwin: DriftConfig) -> None:
    stream = np.r_[normal(20_000, 1), flood(100_000, 2), normal(20_000, 3)]
    watch = DriftWatch(WatchConfig(adwin))
    assert feed(watch, stream) == []
    assert watch.guarded > 99_000
    # Without the burst guard the 2,000 missed attacks look like a change of normal traffic.
    unguarded = DriftWatch(WatchConfig(adwin, burst_rate=2.0))
    events = feed(unguarded, stream)
    assert events and 20_000 <= events[0].position < 22_000


def test_a_shift_of_normal_traffic_is_drift_placed_at_its_start(adwin: DriftConfig) -> None:
    watch = DriftWatch(WatchConfig(adwin))
    events = feed(watch, np.r_[normal(30_000, 4), normal(30_000, 5, shift=0.5)])
    assert [e.detector for e in events] == ["adwin"]
    assert 30_000 <= events[0].position <= 32_000
    assert abs(events[0].change_position - 30_000) <= 300
    assert events[0].statistic > events[0].threshold


def test_a_burst_longer_than_any_attack_is_an_alert_rate_change(adwin: DriftConfig) -> None:
    watch = DriftWatch(WatchConfig(adwin, max_burst=30_000))
    stream = np.r_[normal(10_000, 6), flood(25_000, 7), normal(10_000, 8), flood(50_000, 9)]
    events = feed(watch, stream)
    assert [e.detector for e in events] == [ALERT_RATE]
    burst_start = events[0].change_position
    assert 45_000 <= burst_start <= 45_000 + 500  # the window fills with alerts within 250 events
    assert events[0].position == burst_start + 30_000
    assert events[0].statistic > events[0].threshold


def test_one_event_per_change_then_quiet_for_the_cooldown(adwin: DriftConfig) -> None:
    watch = DriftWatch(WatchConfig(adwin, cooldown=50_000))
    # Changes at 20,000, 40,000 (inside the first one's cooldown) and 100,000.
    stream = np.r_[
        normal(20_000, 10), normal(20_000, 11, 0.4), normal(60_000, 12, 0.8), normal(30_000, 13, 1.2)
    ]
    positions = [e.position for e in feed(watch, stream)]
    assert len(positions) == 2, positions
    assert 20_000 <= positions[0] < 22_000 and 100_000 <= positions[1] < 102_000


def test_acknowledged_change_silences_the_watch(adwin: DriftConfig) -> None:
    watch = DriftWatch(WatchConfig(adwin, cooldown=40_000))
    feed(watch, normal(20_000, 14))
    watch.acknowledge()  # another unit reported the change that follows
    assert feed(watch, normal(30_000, 15, shift=0.8)) == []


def test_checkpoint_in_a_burst_resumes_exactly(adwin: DriftConfig) -> None:
    config = WatchConfig(adwin, max_burst=30_000, cooldown=5_000)
    stream = np.r_[normal(20_000, 16), flood(40_000, 17), normal(20_000, 18, 0.7)]
    whole = DriftWatch(config)
    expected = feed(whole, stream, batch=777)
    resumed, events, at = DriftWatch(config), [], 0
    for cut in (10_001, 20_250, 41_000, 60_100, len(stream)):
        events += feed(resumed, stream[at:cut], batch=777)
        saved = json.loads(json.dumps(resumed.state()))
        resumed = DriftWatch(config)
        resumed.set_state(saved)
        at = cut
    assert [e.detector for e in expected] == [ALERT_RATE, "adwin"]
    assert [(e.detector, e.position, e.change_position) for e in events] == [
        (e.detector, e.position, e.change_position) for e in expected
    ]
    assert (resumed.n, resumed.admitted, resumed.guarded) == (whole.n, whole.admitted, whole.guarded)
