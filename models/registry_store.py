"""Where a registry's bytes live: the store contract, the folder store, and what both stores share
(the errors, the names that become keys).

One layout of keys, on both stores (:mod:`models.registry` is the one class that reads and writes
it; :class:`FolderStore` keeps the keys as files, :class:`models.object_registry.S3Store` as objects)::

    <stream>/<detector>/v0003/manifest.json   the seal, written once (create-only), last
    <stream>/<detector>/v0003/status.json     candidate | rejected | retired, and why (mutable)
    <stream>/production.json                  the alias, replaced by compare-and-swap only

Every read of a key returns its bytes and a *generation* (the folder store: the sha256 of the
bytes; S3: the ETag). :meth:`RegistryStore.swap` writes only if the key still has the generation
the caller read, so of two promoters that read the same alias, one wins and the other is told,
whichever store holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from models.detectors import DETECTORS
from stream.atomic import atomic_write
from stream.errors import AnomstreamError

MANIFEST = "manifest.json"
ALIAS = "production.json"
STATUS = "status.json"

_STREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class RegistryError(AnomstreamError, RuntimeError):
    """The registry has no such model, cannot do what was asked, or holds a malformed file."""


class RegistryConflictError(RegistryError):
    """Another writer changed the production alias (or took the version number) between our read and
    our write: nothing of ours was switched."""


class RegistryIntegrityError(RegistryError):
    """An artifact is missing, unlisted, outside its folder, or does not match its sha256, or a model
    holds a non-finite threshold or weight: the model is neither written, loaded nor promoted."""


# -- names that become keys -----------------------------------------------------------------------
def is_stream_name(name: str) -> bool:
    return bool(_STREAM_NAME.match(name))


def check_stream(stream: str) -> str:
    """A stream name is a plain name (it becomes a folder): letters, digits, ``_`` and ``-``."""
    if not isinstance(stream, str) or not _STREAM_NAME.match(stream):
        raise RegistryError(f"{stream!r} is not a stream name (letters, digits, '_' or '-')")
    return stream


def check_detector(name: Any, where: str = "") -> str:
    """A detector name must be one of the zoo's: it becomes a folder and picks the class to load."""
    if not isinstance(name, str) or name not in DETECTORS:
        place = f" in {where}" if where else ""
        raise RegistryError(f"unknown detector {name!r}{place}; known: {', '.join(sorted(DETECTORS))}")
    return name


def check_version(value: Any, where: str = "") -> int:
    """A version is a positive integer (a JSON number, not a string or a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        place = f" in {where}" if where else ""
        raise RegistryError(f"version {value!r}{place} is not a positive integer")
    return value


def plain_artifact_name(name: Any, where: str) -> PurePosixPath:
    """An artifact name as listed in a manifest: relative, POSIX, no ``..``, no empty or hidden part."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        raise RegistryIntegrityError(f"{where}: artifact name {name!r} is not a plain relative name")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("", ".", "..") or part.startswith(".") for part in path.parts):
        raise RegistryIntegrityError(
            f"{where}: artifact name {name!r} leaves its version folder: only plain names inside it"
        )
    return path


def version_key(stream: str, detector: str, version: int, name: str) -> str:
    """The key of a version's file.

    >>> version_key("kdd", "ae", 3, "status.json")
    'kdd/ae/v0003/status.json'
    """
    return f"{check_stream(stream)}/{check_detector(detector)}/v{check_version(version):04d}/{name}"


def alias_key(stream: str) -> str:
    return f"{check_stream(stream)}/{ALIAS}"


def decode_json(data: bytes, what: str, where: str) -> dict[str, Any]:
    """A registry JSON object, or one RegistryError naming where it is (not JSON, not an object)."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{what} {where} is unreadable or not valid JSON ({exc}): restore it") from None
    if not isinstance(value, dict):
        raise RegistryError(f"{what} {where} must hold a JSON object, not {type(value).__name__}: restore it")
    return value


def encode_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=2, default=str).encode()


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    """A registry JSON file, or one RegistryError naming the file (missing, unreadable, not JSON,
    not an object)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RegistryError(f"{what} {path} is missing") from None
    except OSError as exc:
        raise RegistryError(f"{what} {path} is unreadable ({exc}): restore it") from None
    return decode_json(data, what, str(path))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the contract ---------------------------------------------------------------------------------
class RegistryStore(Protocol):
    """Where the bytes of a registry live. Keys are the layout's (module docstring), relative.

    ``publish`` and ``fetch`` move a whole version between a local folder and the store: the
    folder store renames it into place; the S3 store uploads (or downloads and checks) its
    artifacts by sha256. Everything else reads and writes one small key without touching a model.
    """

    location: str  # what messages name: the folder, or the s3:// URL

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The key's bytes and generation, or None when there is no such key."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Replace the key (mutable records only: statuses)."""
        ...

    def swap(self, key: str, data: bytes, expected: str | None) -> bool:
        """Write ``data`` only if the key still has generation ``expected`` (None: only if it does not
        exist); False, with nothing written, when another writer changed it since."""
        ...

    def streams(self) -> list[str]: ...

    def detectors(self, stream: str) -> list[str]: ...

    def versions(self, stream: str, detector: str) -> list[int]:
        """Published versions: those whose manifest exists."""
        ...

    def staging(self, stream: str, detector: str) -> Path:
        """A new, empty local folder to write a version into before :meth:`publish`."""
        ...

    def publish(
        self, staging: Path, stream: str, detector: str, manifest: dict[str, Any]
    ) -> tuple[int, Path]:
        """Publish the complete ``staging`` folder as the next free version (its number written into
        ``manifest``, the manifest created last and only once); returns the version and its local
        folder. The loser of a race for a number takes the next one."""
        ...

    def fetch(self, stream: str, detector: str, version: int, manifest: bytes) -> Path:
        """A local folder holding the version's artifacts (for :meth:`Registry.verify` and loading)."""
        ...


# -- the folder store -----------------------------------------------------------------------------
class FolderStore:
    """The keys as files under ``root``. Writes are atomic (a temporary file or folder renamed into
    place), so a reader never sees half of one. ``swap`` is a compare-and-swap: under the key's
    lock (``flock``, released by the kernel if the holder dies) it compares the file's sha256 with
    the generation the caller read, and only then renames the new file over it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(f"{self.root / key} is unreadable ({exc}): restore it") from None
        return data, hashlib.sha256(data).hexdigest()

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as handle:
            handle.write(data)

    @contextlib.contextmanager
    def _lock(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with (path.parent / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def swap(self, key: str, data: bytes, expected: str | None) -> bool:
        path = self.root / key
        with self._lock(path):
            found = self.get(key)
            if (found[1] if found else None) != expected:
                return False
            self.put(key, data)
        return True

    def streams(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("*") if p.is_dir() and is_stream_name(p.name))

    def detectors(self, stream: str) -> list[str]:
        folder = self.root / check_stream(stream)
        return sorted(p.name for p in folder.glob("*") if p.is_dir() and p.name in DETECTORS)

    def versions(self, stream: str, detector: str) -> list[int]:
        folder = self.root / check_stream(stream) / check_detector(detector)
        found = (p.name[1:] for p in folder.glob("v[0-9]*") if (p / MANIFEST).is_file())
        return sorted(int(v) for v in found if v.isdigit())

    def staging(self, stream: str, detector: str) -> Path:
        # Beside its siblings, so publishing is one rename.
        folder = self.root / check_stream(stream) / check_detector(detector)
        folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))

    def publish(
        self, staging: Path, stream: str, detector: str, manifest: dict[str, Any]
    ) -> tuple[int, Path]:
        # Two trainers may race for the same number: rename() fails for the loser, who takes the next.
        for _ in range(100):
            version = max(self.versions(stream, detector), default=0) + 1
            manifest["version"] = version
            (staging / MANIFEST).write_bytes(encode_json(manifest))
            target = self.root / version_key(stream, detector, version, "").rstrip("/")
            try:
                os.rename(staging, target)
            except OSError:
                continue
            return version, target
        raise RegistryError(f"could not allocate a version of {stream}/{detector} in {self.location}")

    def fetch(self, stream: str, detector: str, version: int, manifest: bytes) -> Path:
        return self.root / version_key(stream, detector, version, "").rstrip("/")
