"""anomstream installs five top-level packages side by side: ``anomstream``, ``stream``,
``producers``, ``consumers`` and ``models`` (the layout the project card names). The last four are
common words: a user's own ``models`` package (a Django app's, say) earlier on ``sys.path``, or
already imported, would be imported in place of ours, and fail far from the cause.

So ``import anomstream`` (and with it the command line, before it imports anything else of ours)
checks that each of the four resolves to the folder ``anomstream`` itself came from, and otherwise
stops with one line naming the package in the way and what to do. Finding a module's location
imports nothing (``importlib.util.find_spec`` on a top-level name only asks the finders).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SIBLINGS = ("stream", "producers", "consumers", "models")


class ShadowedPackageError(ImportError):
    """One of anomstream's top-level packages resolves to someone else's."""


def _folder(name: str) -> Path | None:
    """The package folder ``name`` is (or would be) imported from; None when it is not found."""
    module = sys.modules.get(name)
    if module is not None:
        locations = list(getattr(module, "__path__", []) or [])
        origin = getattr(module, "__file__", None)
    else:
        spec = importlib.util.find_spec(name)
        if spec is None:
            return None
        locations = list(spec.submodule_search_locations or [])
        origin = spec.origin
    if locations:
        return Path(locations[0]).resolve()
    return Path(origin).resolve().parent if origin else None


def check_siblings(home: Path | None = None) -> None:
    """Raise :class:`ShadowedPackageError` when ``stream``, ``producers``, ``consumers`` or ``models``
    is not the one installed beside ``anomstream`` (in ``home``: where ``anomstream`` was found)."""
    root = (home or Path(__file__).resolve().parent).parent
    for name in SIBLINGS:
        found = _folder(name)
        if found is not None and found.parent == root:
            continue
        where = f"is imported from {found}" if found is not None else "cannot be found"
        raise ShadowedPackageError(
            f"anomstream's package {name!r} {where}, not from {root / name}: another package named "
            f"{name!r} comes first on sys.path (the current folder or PYTHONPATH): run anomstream from "
            "another folder, or take that folder off PYTHONPATH (docs/operations.md, 'Package names')"
        )
