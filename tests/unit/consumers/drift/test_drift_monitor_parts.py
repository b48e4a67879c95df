"""The drift monitor's parts without a broker: the model follower (which production model each stream's
watch follows, with a clock of its own), the watches fed plain score records, and the checkpoint
bookkeeping (what a save covers, where an assigned partition resumes, a restart resumes the watch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from consumers.drift.calibration_cache import WatchSpec
from consumers.drift.checkpoint import MonitorCheckpoint
from consumers.drift.following import ModelFollower
from consumers.drift.monitor_metrics import DriftMetrics
from consumers.drift.state import CheckpointStore
from consumers.drift.watches import MonitorStats, StreamWatches
from models.drift import DriftConfig, WatchConfig, calibrate
from models.model_id import ModelId
from stream.messages import ScoreRecord


@pytest.fixture(scope="module")
def config() -> WatchConfig:
    reference = np.random.default_rng(0).normal(size=5_000)
    score: DriftConfig = calibrate("adwin", reference[reference < 2.33], target_ert=10_000, seed=0)
    return WatchConfig(score)


class Aliases:
    """A registry's production aliases, as the follower reads them (a dict the test moves)."""

    def __init__(self, config: WatchConfig, production: dict[str, ModelId]) -> None:
        self.config = config
        self.production_of = production
        self.reads = 0

    def production(self, stream: str) -> ModelId | None:
        self.reads += 1
        return self.production_of.get(stream)

    def spec(self, stream: str, detector: str | None = None, version: int | None = None) -> WatchSpec:
        model = (detector, version) if detector and version else self.production_of[stream]
        return WatchSpec(stream, ModelId(str(model[0]), int(model[1])), self.config, f"sha-{model[1]}")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(version: int, offsets: range, partition: int = 0) -> ScoreRecord:
    n = len(offsets)
    scores = np.random.default_rng(version).normal(size=n).tolist()
    return ScoreRecord("kdd", "pca", version, "kdd.connections", partition, list(offsets), scores,
                       [False] * n, [None] * n, ["2024-01-01T00:00:00.000Z"] * n)  # fmt: skip


def test_the_follower_rereads_the_alias_at_most_every_recheck_period(config: WatchConfig) -> None:
    aliases, clock = Aliases(config, {"kdd": ("pca", 1)}), Clock()
    follower = ModelFollower(aliases, None, clock=clock, recheck_s=2.0)
    follower.start(["kdd", "ecg"])
    assert set(follower.specs) == {"kdd"} and follower.specs["kdd"].model == ("pca", 1)
    assert follower.refresh("kdd", ("pca", 1)) is None  # the watched model: no registry read
    reads = aliases.reads
    aliases.production_of["kdd"] = ("pca", 2)
    assert follower.refresh("kdd", ("pca", 2)) is not None and follower.specs["kdd"].model == ("pca", 2)
    assert follower.refresh("kdd", ("pca", 3)) is None and aliases.reads == reads + 1  # within 2 s
    aliases.production_of["kdd"] = ("pca", 3)
    clock.now += 2.0
    assert follower.refresh("kdd", ("pca", 3)) is not None and follower.specs["kdd"].model == ("pca", 3)


def test_the_follower_adopts_only_wanted_streams_with_a_model(config: WatchConfig) -> None:
    aliases, clock = Aliases(config, {}), Clock()
    follower = ModelFollower(aliases, ["ecg"], clock=clock)
    follower.start(["kdd", "ecg"])
    assert follower.specs == {}
    assert follower.adopt("kdd") is None and aliases.reads == 1  # unwanted: not even asked
    assert follower.adopt("ecg") is None  # no production model yet
    aliases.production_of["ecg"] = ("autoencoder", 4)
    assert follower.adopt("ecg") is None  # asked 0 s ago
    assert follower.updated("ecg") is not None  # a model update is acted on at once
    assert follower.updated("ecg") is None  # and only once
    assert follower.specs["ecg"].model == ("autoencoder", 4)


def test_watches_count_each_input_offset_once_and_skip_other_versions(config: WatchConfig) -> None:
    aliases = Aliases(config, {"kdd": ("pca", 1)})
    follower = ModelFollower(aliases, None, clock=Clock())
    follower.start(["kdd"])
    stats = MonitorStats()
    watches = StreamWatches(follower, DriftMetrics(), stats)
    watched = watches.watch(record(1, range(0, 100)))
    assert watched is not None and watched.unit.watch.n == 100 and watched.events == []
    partly = watches.watch(record(1, range(50, 150)))  # a retried batch overlapping the last one
    assert partly is not None and partly.offsets.tolist() == list(range(100, 150))
    assert watches.watch(record(1, range(0, 20), partition=1)) is not None  # another input partition
    assert watches.watch(record(7, range(150, 200))) is None  # not the production model
    assert (stats.scores, stats.duplicates, stats.stale) == (170, 50, 50)
    assert watches.units["kdd"].high == {0: 149, 1: 19}


def test_a_checkpoint_covers_what_was_read_and_a_restart_resumes_the_watch(
    config: WatchConfig, tmp_path: Path
) -> None:
    aliases = Aliases(config, {"kdd": ("pca", 1)})
    follower = ModelFollower(aliases, None, clock=Clock())
    follower.start(["kdd"])
    watches = StreamWatches(follower, DriftMetrics(), MonitorStats())
    checkpoint = MonitorCheckpoint(CheckpointStore(tmp_path, "drift", "a"))
    assert checkpoint.restore(follower.specs, "topic-1") == {}  # nothing saved yet
    assert checkpoint.resume_at(0, -1001, committed=-1001) == -1001  # no offset: the reset policy's
    assert checkpoint.resume_at(1, 40, committed=40) == 40
    assert checkpoint.needed({1})  # partition 1 is not covered by any save
    watches.watch(record(1, range(0, 300)))
    checkpoint.dirty = True
    checkpoint.next_offsets[1] = 41
    checkpoint.save(watches.units.values(), "topic-1")
    assert not checkpoint.needed({1}) and checkpoint.covered({0, 1}) == {1: 41}
    checkpoint.store.close()

    again = MonitorCheckpoint(CheckpointStore(tmp_path, "drift", "a"))
    units = again.restore(follower.specs, "topic-1")
    assert units["kdd"].watch.n == 300 and units["kdd"].high == {0: 299}
    assert units["kdd"].watch.state() == watches.units["kdd"].watch.state()
    # The checkpoint is ahead of a commit that was lost; another monitor's later commit wins.
    assert again.resume_at(1, 30, committed=30) == 41
    assert again.resume_at(1, 60, committed=60) == 60
    again.drop({1})
    assert again.covered({1}) == {}
    # Taken on another topic (a recreated one): nothing of it applies.
    assert MonitorCheckpoint(again.store).restore(follower.specs, "topic-2") == {}
    again.store.close()
