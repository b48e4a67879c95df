"""The model registry in an S3-compatible object store, behind the same API as the folder one.

Layout under ``s3://bucket/prefix``::

    _blobs/sha256/<digest>                           every artifact, named by its sha256 (create-only)
    <stream>/<detector>/v0003/manifest.json          the seal: written last, create-only
    <stream>/<detector>/v0003/status.json            candidate | rejected | retired (mutable)
    <stream>/production.json                         the alias, flipped by compare-and-swap on its ETag

A version exists once its manifest does: artifacts go first, so a half-published version (blobs, no
manifest) is invisible. Blobs are content-addressed, so two trainers racing for one version number
never write the same key with different bytes; the loser of the manifest's create-only write takes the
next number. A reader downloads a version's blobs, checks each sha256 and renames the verified folder
into its cache (``<cache>/<stream>/<detector>/v0003-<manifest digest>``); from there the folder
registry's own verification and loading apply unchanged.

Every conditional write is read back ``cas_settle_s`` later: a server that checks a precondition and
writes in two steps (s3proxy 3.0.0 does; docs/registry.md) can let two racing writers pass the check,
and only the one whose bytes stayed may report success.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from models.model_id import Manifest, ProductionAlias
from models.registry import (
    ALIAS,
    DETECTORS,
    MANIFEST,
    STATUS,
    ModelRef,
    Registry,
    RegistryConflictError,
    RegistryError,
    RegistryIntegrityError,
    alias_from_json,
    check_detector,
    check_stream,
    check_version,
    plain_artifact_name,
)
from stream.objectstore import ObjectStore, PreconditionFailed
from stream.settings import ObjectStoreSettings

BLOBS = "_blobs/sha256"  # not a stream name: stream names start with a letter or digit


def _decode(data: bytes, what: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{what} {where} is not valid JSON ({exc}): restore it") from None
    if not isinstance(value, dict):
        raise RegistryError(f"{what} {where} must hold a JSON object, not {type(value).__name__}")
    return value


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=2, default=str).encode()


class ObjectStoreRegistry(Registry):
    """A registry at ``s3://bucket/prefix``; ``cache`` is the local folder verified versions are
    downloaded into (and new versions staged in)."""

    def __init__(self, url: str, settings: ObjectStoreSettings, cache: Path) -> None:
        self.store = ObjectStore(url, settings)
        digest = hashlib.sha256(self.store.url.encode()).hexdigest()[:12]
        super().__init__(Path(cache) / f"{self.store.bucket}-{digest}")
        self.location = self.store.url
        self.settle_s = settings.cas_settle_s

    # -- keys -----------------------------------------------------------------------------------
    @staticmethod
    def _version_key(stream: str, detector: str, version: int, name: str) -> str:
        return f"{check_stream(stream)}/{check_detector(detector)}/v{check_version(version):04d}/{name}"

    def _written(self, key: str, data: bytes) -> bool:
        """Whether ``data`` is what the store holds at ``key`` once racing writes have landed."""
        if self.settle_s:
            time.sleep(self.settle_s)
        found = self.store.get(key)
        return found is not None and found[0] == data

    # -- writing --------------------------------------------------------------------------------
    def _staging_parent(self, stream: str, name: str) -> Path:
        folder = self.root / ".staging" / stream / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _publish(self, staging: Path, folder: Path, stream: str, name: str, manifest: dict) -> ModelRef:
        for relative, digest in manifest["artifacts"].items():
            # A blob that exists holds the same bytes (it is named by them), or fails the readers' check.
            with contextlib.suppress(PreconditionFailed):
                self.store.put_new(f"{BLOBS}/{digest}", (staging / relative).read_bytes())
        for _ in range(100):
            version = max(self.versions(stream, name), default=0) + 1
            manifest["version"] = version
            data = _encode(manifest)
            key = self._version_key(stream, name, version, MANIFEST)
            try:
                self.store.put_new(key, data)
            except PreconditionFailed:
                continue
            if not self._written(key, data):
                continue  # a racing trainer's manifest replaced ours (a non-atomic server)
            (staging / MANIFEST).write_bytes(data)
            return ModelRef(stream, name, version, self._cache(staging, stream, name, version, data))
        raise RegistryError(f"could not allocate a version of {stream}/{name} in {self.location}")

    def _cache(self, staging: Path, stream: str, name: str, version: int, manifest: bytes) -> Path:
        """Rename a complete, verified version folder into the cache, keyed by its manifest's digest."""
        target = self.root / stream / name / f"v{version:04d}-{hashlib.sha256(manifest).hexdigest()[:16]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, target)
        except OSError:  # another process cached the same version first: its copy is as good
            shutil.rmtree(staging, ignore_errors=True)
        return target

    # -- reading --------------------------------------------------------------------------------
    def versions(self, stream: str, detector: str) -> list[int]:
        """Published versions: those whose manifest exists (blobs alone are not a version)."""
        prefix = f"{check_stream(stream)}/{check_detector(detector)}/v"
        keys = (key[len(prefix) :].split("/") for key in self.store.list(prefix))
        return sorted({int(k[0]) for k in keys if len(k) == 2 and k[1] == MANIFEST and k[0].isdigit()})

    def _streams(self) -> tuple[str, ...]:
        names = (p.rstrip("/") for p in self.store.list("", delimiter="/"))
        return tuple(sorted(n for n in names if not n.startswith("_") and n))

    def _detectors(self, stream: str) -> tuple[str, ...]:
        names = (p[len(stream) + 1 :].rstrip("/") for p in self.store.list(f"{stream}/", delimiter="/"))
        return tuple(sorted(n for n in names if n in DETECTORS))

    def _manifest_bytes(self, stream: str, detector: str, version: int) -> bytes:
        found = self.store.get(self._version_key(stream, detector, version, MANIFEST))
        if found is None:
            raise RegistryError(f"no model {stream}/{detector} v{version} in {self.location}")
        return found[0]

    def manifest(self, stream: str, detector: str, version: int) -> Manifest:
        where = f"{self.location}/{self._version_key(stream, detector, version, MANIFEST)}"
        return cast(Manifest, _decode(self._manifest_bytes(stream, detector, version), "manifest", where))

    def _version_dir(self, stream: str, detector: str, version: int) -> Path:
        # The folder registry's resolve() finds a version here: the verified cached copy, fetched once.
        return self._download(stream, detector, version)

    def _download(self, stream: str, detector: str, version: int) -> Path:
        data = self._manifest_bytes(stream, detector, version)
        target = self.root / stream / detector / f"v{version:04d}-{hashlib.sha256(data).hexdigest()[:16]}"
        if (target / MANIFEST).is_file():
            return target
        label = f"{stream}/{detector} v{version}"
        artifacts = _decode(data, "manifest", label).get("artifacts")
        if not isinstance(artifacts, dict) or not artifacts:
            raise RegistryIntegrityError(f"{label}: the manifest lists no artifacts: retrain or restore it")
        staging = Path(tempfile.mkdtemp(dir=self._staging_parent(stream, detector), prefix="download-"))
        try:
            for name, digest in artifacts.items():
                relative = plain_artifact_name(name, label)
                blob = self.store.get(f"{BLOBS}/{digest}") if isinstance(digest, str) else None
                if blob is None:
                    raise RegistryIntegrityError(
                        f"{label}: {name} (blob {digest}) is missing from {self.location}: "
                        "the version is incomplete; retrain it"
                    )
                if hashlib.sha256(blob[0]).hexdigest() != digest:
                    raise RegistryIntegrityError(
                        f"{label}: {name} does not match its sha256 in the manifest: refusing it; "
                        "retrain or restore the object"
                    )
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                (staging / relative).write_bytes(blob[0])
            (staging / MANIFEST).write_bytes(data)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._cache(staging, stream, detector, version, data)

    # -- statuses and the alias -----------------------------------------------------------------
    def _read_status(self, stream: str, detector: str, version: int) -> tuple[dict[str, Any] | None, str]:
        key = self._version_key(stream, detector, version, STATUS)
        found = self.store.get(key)
        where = f"{self.location}/{key}"
        return (_decode(found[0], "status", where) if found else None), where

    def _write_status(self, stream: str, detector: str, version: int, status: str, reason: str) -> None:
        record = self._status_record(stream, detector, version, status, reason)
        self.store.put(self._version_key(stream, detector, version, STATUS), _encode(record))

    def _read_alias(self, stream: str) -> tuple[dict[str, Any] | None, str]:
        found = self.store.get(f"{check_stream(stream)}/{ALIAS}")
        where = f"{self.location}/{stream}/{ALIAS}"
        return (_decode(found[0], "production alias", where) if found else None), where

    def _flip_alias(
        self, stream: str, change: Callable[[ProductionAlias | None], ProductionAlias | None]
    ) -> tuple[ProductionAlias | None, ProductionAlias | None]:
        """Compare-and-swap on the alias's ETag: of two promoters that read the same alias, one wins
        and the other gets :class:`RegistryConflictError` (it decided on a state that is gone)."""
        key = f"{check_stream(stream)}/{ALIAS}"
        found = self.store.get(key)
        where = f"{self.location}/{key}"
        current = alias_from_json(_decode(found[0], "production alias", where), where) if found else None
        alias = change(current)
        if alias is None:
            return None, current
        data = _encode(alias.to_json())
        conflict = RegistryConflictError(
            f"the production alias of {stream!r} changed while switching it to {alias.model}: nothing was "
            f"switched; see `anomstream models list --stream {stream}` "
            "and try again"
        )
        try:
            self.store.put_if(key, data, found[1] if found else None)
        except PreconditionFailed:
            raise conflict from None
        if not self._written(key, data):
            raise conflict
        return alias, current
