"""The crash a recovery test injects: where it fires, with what in flight; and none by default."""

from __future__ import annotations

import pytest

from consumers.faults import CRASH_ENV, NO_FAULTS, CrashBeforeCommit, from_env


class Kills:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.flushes = 0

    def __call__(self, number: int, in_flight: int) -> None:
        self.calls.append((number, in_flight))

    def flush(self) -> None:
        self.flushes += 1


def test_at_least_once_withholds_batch_n_and_kills_once_the_next_is_scored() -> None:
    kills = Kills()
    crash = CrashBeforeCommit(3, kill=kills)
    assert [crash.withhold(n, committed=n - 1) for n in (1, 2)] == [False, False]
    crash.scored(2, kills.flush)
    assert crash.withhold(3, committed=2) and crash.withhold(4, committed=2)  # 3 stays the one named
    crash.scored(3, kills.flush)
    assert kills.calls == [] and kills.flushes == 0
    crash.scored(4, kills.flush)
    assert kills.calls == [(3, 2)] and kills.flushes == 1


def test_at_least_once_kills_after_the_wait_when_nothing_follows() -> None:
    kills = Kills()
    crash = CrashBeforeCommit(1, wait_s=0.0, kill=kills)
    assert crash.withhold(1, committed=0)
    crash.scored(1, kills.flush)  # the deadline starts now, and is already past
    crash.scored(1, kills.flush)
    assert kills.calls[-1] == (1, 1)


def test_exactly_once_kills_with_the_transaction_open_and_the_queue_behind_it() -> None:
    kills = Kills()
    crash = CrashBeforeCommit(3, kill=kills)
    crash.before_commit_transaction(2, committed=1, flush=kills.flush, queued=lambda: 1)
    assert kills.calls == []
    crash.before_commit_transaction(3, committed=2, flush=kills.flush, queued=lambda: 1)
    assert kills.calls == [(3, 2)] and kills.flushes == 1


def test_no_faults_unless_the_environment_names_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CRASH_ENV, raising=False)
    assert from_env() is NO_FAULTS
    assert not NO_FAULTS.withhold(5, committed=10)
    monkeypatch.setenv(CRASH_ENV, "4")
    faults = from_env()
    assert isinstance(faults, CrashBeforeCommit) and faults.batch == 4
