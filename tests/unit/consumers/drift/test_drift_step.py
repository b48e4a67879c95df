"""The drift monitor's step with no broker: score records of two input partitions in, the change they
carry out as one detection placed in both partitions; a retried batch, a peer's event and the feature
test's findings handled as the monitor's loop hands them over (the real drift watch, calibrated on
seeded scores)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from consumers.drift.calibration_cache import WatchSpec
from consumers.drift.feature_sampler import FEATURE_KS, FeatureDetection
from consumers.drift.following import ModelFollower
from consumers.drift.merge import Pending
from consumers.drift.monitor_metrics import DriftMetrics
from consumers.drift.step import Detection, DriftStep
from consumers.drift.watches import MonitorStats, StreamWatches
from models.drift import DriftConfig, FeatureTestResult, WatchConfig, calibrate
from models.model_id import ModelId
from stream.messages import ChangePoint, DriftEvent, ScoreRecord
from stream.settings import Settings

RECORD = 250  # events per score record
BEFORE, AFTER = 10_000, 10_000  # events before and after the change, alternating partitions by record
START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> WatchConfig:
    reference = np.random.default_rng(0).normal(size=5_000)
    # One false alarm per 100,000 scores: none expected in the 20,000 of a test.
    score: DriftConfig = calibrate("adwin", reference[reference < 2.33], target_ert=100_000, seed=0)
    return WatchConfig(score)


class Production:
    """The registry's production model of ``kdd``, as the follower reads it: version 1, always."""

    def __init__(self, config: WatchConfig) -> None:
        self.config = config

    def production(self, stream: str) -> ModelId | None:
        return ModelId("pca", 1) if stream == "kdd" else None

    def spec(self, stream: str, detector: str | None = None, version: int | None = None) -> WatchSpec:
        return WatchSpec(stream, ModelId("pca", 1), self.config, "sha-1")


class FeatureTestResults:
    """The feature test's side of the step (a thread reading the input topic in the monitor): the
    samples offered, and the findings the test queued for the step's next poll."""

    def __init__(self) -> None:
        self.offered: list[int] = []
        self.found: list[FeatureDetection] = []
        self.tests_run: Mapping[str, int] = {}

    def offer(self, stream: str, model: ModelId, topic: str, partition: int, offsets: list[int],
              first_time: str | None) -> None:  # fmt: skip
        self.offered += offsets

    def poll(self) -> list[FeatureDetection]:
        found, self.found = self.found, []
        return found


def make_step(config: WatchConfig, features: FeatureTestResults | None = None) -> DriftStep:
    follower = ModelFollower(Production(config), ["kdd"])
    follower.start(["kdd"])
    stats, metrics = MonitorStats(), DriftMetrics()
    return DriftStep(Settings(), StreamWatches(follower, metrics, stats), stats, metrics, features)


def changing_records(shift: float = 1.5) -> list[Pending]:
    """Records of 250 events, alternating between input partitions 0 and 1, 10 ms apart in event time;
    the scores' mean moves by ``shift`` at event 10,000 (offset 5,000 of each partition)."""
    rng = np.random.default_rng(7)
    scores = np.r_[rng.normal(size=BEFORE), rng.normal(shift, 1.0, size=AFTER)]
    items = []
    for index, first in enumerate(range(0, BEFORE + AFTER, RECORD)):
        partition, offset = index % 2, (index // 2) * RECORD
        chunk = scores[first : first + RECORD]
        times = [(START + timedelta(milliseconds=10 * (first + i))).isoformat(timespec="milliseconds")
                 for i in range(RECORD)]  # fmt: skip
        record = ScoreRecord("kdd", "pca", 1, "kdd.connections", partition,
                             list(range(offset, offset + RECORD)), chunk.tolist(), (chunk > 2.33).tolist(),
                             [None] * RECORD, times)  # fmt: skip
        items.append(Pending(0, index, times[0], record, ("kdd.connections", partition)))
    return items


def test_a_clear_change_is_returned_once_placed_in_every_input_partition(config: WatchConfig) -> None:
    step = make_step(config)
    items = changing_records()
    found = [detection for item in items for detection in step.handle(item)]

    assert len(found) == 1, found
    detection = found[0]
    assert isinstance(detection, Detection) and detection.unit.stream == "kdd"
    assert detection.event.detector == "adwin" and detection.topic == "kdd.connections"
    # The change began at offset 5,000 of both partitions (seed 7: ADWIN's cut falls on it).
    assert detection.offsets.keys() == {"0", "1"}
    assert all(abs(offset - 5_000) <= 100 for offset in detection.offsets.values()), detection.offsets
    assert detection.when is not None and detection.anchor is not None
    assert detection.anchor[1] == detection.offsets[str(detection.anchor[0])]
    assert all(detection.detected[p] >= detection.offsets[p] for p in ("0", "1")), detection.detected
    assert (step.stats.records, step.stats.scores) == (len(items), BEFORE + AFTER)
    assert step.input_topics == {"kdd": "kdd.connections"}

    # A worker's retried batches: watched once, nothing detected again.
    assert [d for item in items[-8:] for d in step.handle(item)] == []
    assert step.stats.duplicates == 8 * RECORD


def test_no_change_no_detection(config: WatchConfig) -> None:
    step = make_step(config)
    assert [d for item in changing_records(shift=0.0) for d in step.handle(item)] == []


def test_a_peer_s_event_quiets_the_watch_of_its_model_version_only(config: WatchConfig) -> None:
    step = make_step(config)
    items = changing_records()
    for item in items[: BEFORE // RECORD]:
        assert step.handle(item) == []

    def peer(stream: str, version: int) -> DriftEvent:
        change = ChangePoint("kdd.connections", {"0": 0}, None)
        return DriftEvent("peer-1", stream, version, "adwin", 1.0, 0.5, change, "2024-01-01T00:00:00.000Z")

    assert not step.acknowledge(peer("ecg", 1)) and not step.acknowledge(peer("kdd", 2))
    assert step.acknowledge(peer("kdd", 1))
    assert step.watches.units["kdd"].watch.quiet_until == BEFORE + config.cooldown
    # The change this monitor would have found is the peer's: within its cooldown, not returned.
    assert [d for item in items[BEFORE // RECORD :] for d in step.handle(item)] == []


def test_feature_samples_are_offered_and_a_finding_is_returned_once_per_cooldown(
    config: WatchConfig,
) -> None:
    features = FeatureTestResults()
    step = make_step(config, features)
    for item in changing_records(shift=0.0)[:8]:  # 2,000 events, about 1% alerting
        step.handle(item)
    admitted = int(step.watches.units["kdd"].watch.admitted)
    assert len(features.offered) == -(-admitted // Settings().drift.feature_sample_every)

    result = FeatureTestResult(True, 9.0, 3.0, [("duration", 0.4, 1e-9), ("src_bytes", 0.3, 1e-6)])
    window = {"1": 620, "0": 600}  # the window's first sample per partition, partition 1's first
    finding = FeatureDetection("kdd", ModelId("pca", 1), result, window, "2024-01-01T00:00:05.000Z")
    features.found = [finding, finding]
    taken = list(step.feature_detections())

    assert len(taken) == 1, "the second finding falls in the cooldown the first one started"
    detection = taken[0]
    assert detection.event.detector == FEATURE_KS and detection.event.position == 2_000
    assert detection.anchor == (1, 620) and detection.when == "2024-01-01T00:00:05.000Z"
    assert detection.detail == "duration (D=0.40), src_bytes (D=0.30)"
    assert step.watches.units["kdd"].watch.quiet_until == 2_000 + config.cooldown
