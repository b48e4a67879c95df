"""All-or-nothing file writes: a reader sees the old file or the new one, never half of either.

Every file anomstream rewrites in place (the registry's alias and statuses, online-state
checkpoints, the drift monitor's state and calibrations, downloaded datasets) goes through
:func:`atomic_write`: the content goes to a temporary file in the same folder, is flushed to disk,
optionally checked, and renamed over the target (``os.replace``, atomic on POSIX); on any error the
temporary file is removed and the target is left as it was.

>>> import json, tempfile
>>> from pathlib import Path
>>> target = Path(tempfile.mkdtemp()) / "state.json"
>>> write_json_atomic(target, {"offsets": {"0": 42}})
>>> json.loads(target.read_text())
{'offsets': {'0': 42}}
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(
    path: Path, mode: str = "w", check: Callable[[Path], None] | None = None
) -> Iterator[IO[Any]]:
    """A handle on a temporary file that replaces ``path`` when the block ends without an error.

    ``mode`` is ``"w"`` (text) or ``"wb"``. ``check`` is called with the complete temporary file
    (flushed, before the rename): raising there discards it, as an error inside the block does.
    The target's folder must exist.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after the rename


def write_json_atomic(path: Path, data: Any, **dump_options: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (``dump_options`` go to :func:`json.dump`)."""
    with atomic_write(path) as handle:
        json.dump(data, handle, **dump_options)
