"""Where long-running processes keep the state they resume from: a folder, or an object store any
host can reach.

Three kinds of state live here, each a small JSON document under a key that names it:

- ``drift/<group>/<instance>.json``: a drift monitor's checkpoint (its watches and the ``scores``
  offsets they cover);
- ``drift/calibrations/<digest>-<kind>-....json``: a production model's calibrated drift watch;
- ``online/<stream>/<detector>/v0003/<topic>-<partition>.json``: what a model learnt while scoring,
  per input partition.

``ANOMSTREAM_STATE_URL`` chooses the place: unset (or a folder) keeps them under ``state_dir`` as
files replaced atomically; ``s3://bucket/prefix`` keeps them in the object store of the registry's
settings (``ANOMSTREAM_S3__*``), so a process started on another host with an empty state folder
resumes where the lost one stopped. A document is written whole in one PUT: a reader sees the old
one or the new one, never a part.

>>> import tempfile
>>> store = FolderStateStore(Path(tempfile.mkdtemp()))
>>> store.read("drift/g/a.json") is None
True
>>> store.write("drift/g/a.json", {"offsets": {"0": 12}})
>>> store.read("drift/g/a.json")
{'offsets': {'0': 12}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stream.atomic import write_json_atomic

if TYPE_CHECKING:
    from stream.objectstore import ObjectStore
    from stream.settings import Settings


class StateStore(Protocol):
    """JSON documents by key (``/``-separated, relative)."""

    def read(self, key: str) -> dict[str, Any] | None:
        """The document under ``key``; None when there is none."""
        ...

    def write(self, key: str, document: dict[str, Any]) -> None:
        """Replace the document under ``key`` as a whole."""
        ...

    def where(self, key: str) -> str:
        """Where ``key`` lives, for log lines."""
        ...


class FolderStateStore:
    """Files under a folder, each replaced atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def read(self, key: str) -> dict[str, Any] | None:
        path = self.root / key
        return json.loads(path.read_text()) if path.is_file() else None

    def write(self, key: str, document: dict[str, Any]) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, document)

    def where(self, key: str) -> str:
        return str(self.root / key)


class ObjectStateStore:
    """Objects under an ``s3://bucket/prefix`` (the prefix's ``state/`` folder), each one PUT."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def read(self, key: str) -> dict[str, Any] | None:
        found = self.store.get(key)
        return None if found is None else json.loads(found[0])

    def write(self, key: str, document: dict[str, Any]) -> None:
        self.store.put(key, json.dumps(document, sort_keys=True).encode())

    def where(self, key: str) -> str:
        return f"{self.store.url}/{key}"


def state_store(settings: Settings) -> StateStore:
    """The state store ``settings`` name: ``state_url`` (a folder or ``s3://bucket/prefix``), else
    the ``state_dir`` folder."""
    url = settings.state_url
    if url and url.startswith("s3://"):
        from stream.objectstore import ObjectStore  # boto3 only where an object store is used

        return ObjectStateStore(ObjectStore(url, settings.s3))
    return FolderStateStore(Path(url.removeprefix("file://")) if url else settings.state_dir)
