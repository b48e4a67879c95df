"""What tests share: the datasets, the measurements summary, and helpers for streams on a real broker.

Fixtures are in :mod:`tests.support.plugin` (loaded by ``tests/conftest.py``).
"""

from tests.support.data import REPO, corrected_sample, data_root, require_data, schema_validator
from tests.support.report import measure
from tests.support.streams import (
    committed_count,
    input_offsets,
    make_settings,
    replay,
    replay_events,
    run_worker,
    score_records,
    scored_offsets,
    spawn_worker,
)
from tests.support.timing import FakeClock, wait_until

__all__ = [
    "REPO",
    "FakeClock",
    "committed_count",
    "corrected_sample",
    "data_root",
    "input_offsets",
    "make_settings",
    "measure",
    "replay",
    "replay_events",
    "require_data",
    "run_worker",
    "schema_validator",
    "score_records",
    "scored_offsets",
    "spawn_worker",
    "wait_until",
]
