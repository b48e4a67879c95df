"""All-or-nothing file writes: the one helper behind every file anomstream rewrites in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.atomic import atomic_write, write_json_atomic


def test_a_write_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "alias.json"
    write_json_atomic(target, {"version": 1})
    write_json_atomic(target, {"version": 2}, indent=2)
    assert json.loads(target.read_text()) == {"version": 2}
    assert list(tmp_path.iterdir()) == [target]


def test_an_error_while_writing_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_json_atomic(target, {"offsets": {"0": 10}})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"offsets": {"0": object()}})  # fails half-way through the dump
    assert json.loads(target.read_text()) == {"offsets": {"0": 10}}
    assert list(tmp_path.iterdir()) == [target]


def test_a_failed_check_discards_the_new_content(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    seen: list[bytes] = []

    def refuse(written: Path) -> None:
        seen.append(written.read_bytes())  # the complete content, flushed, before the rename
        raise ValueError("checksum mismatch")

    with pytest.raises(ValueError, match="checksum"), atomic_write(target, "wb", check=refuse) as out:
        out.write(b"downloaded bytes")
    assert seen == [b"downloaded bytes"] and not any(tmp_path.iterdir())


def test_the_writers_share_the_helper() -> None:
    """The registry's folder store, the state store (online checkpoints, drift state and calibrations
    go through it) and dataset downloads write through stream.atomic; none keeps a
    temporary-file-and-rename of its own, and the state's users write through the state store."""
    root = Path(__file__).resolve().parents[3]
    for module in ("models/registry_store.py", "stream/state_store.py", "stream/datasets/fetch.py"):
        source = (root / module).read_text()
        assert "from stream.atomic import" in source, module
        assert "mkstemp" not in source and "os.replace" not in source, module
    users = ("models/checkpoints.py", "consumers/drift/state.py", "consumers/drift/calibration_cache.py")
    for module in users:
        source = (root / module).read_text()
        assert "stream.state_store import" in source, module
        assert "mkstemp" not in source and "os.replace" not in source and "write_text" not in source, module
