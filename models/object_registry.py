"""The S3 store of a registry: the same keys as the folder store (:mod:`models.registry_store`), as
objects under ``s3://bucket/prefix``, plus every artifact once, named by its sha256::

    _blobs/sha256/<digest>                           every artifact (create-only)
    <stream>/<detector>/v0003/manifest.json          the seal: written last, create-only
    <stream>/<detector>/v0003/status.json            candidate | rejected | retired (mutable)
    <stream>/production.json                         the alias, swapped on its ETag (``If-Match``)

A version exists once its manifest does: artifacts go first, so a half-published version (blobs, no
manifest) is invisible. Blobs are content-addressed, so two trainers racing for one version number
never write the same key with different bytes; the loser of the manifest's create-only write takes the
next number. :meth:`S3Store.fetch` downloads a version's blobs, checks each sha256 and renames the
verified folder into its cache (``<cache>/<stream>/<detector>/v0003-<manifest digest>``); from there
the registry's own verification and loading apply unchanged. Manifests, statuses and the alias are
read from the store directly: no question about a model downloads it.

Every conditional write is read back ``cas_settle_s`` later: a server that checks a precondition and
writes in two steps (s3proxy 3.0.0 does; docs/registry.md) can let two racing writers pass the check,
and only the one whose bytes stayed may report success.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from models.detectors import DETECTORS
from models.registry_store import (
    MANIFEST,
    RegistryError,
    RegistryIntegrityError,
    check_detector,
    check_stream,
    decode_json,
    encode_json,
    is_stream_name,
    plain_artifact_name,
    version_key,
)
from stream.objectstore import ObjectStore, PreconditionFailed
from stream.settings import ObjectStoreSettings

BLOBS = "_blobs/sha256"  # not a stream name: stream names start with a letter or digit


class S3Store:
    """A registry's keys at ``s3://bucket/prefix``; ``cache`` is the local folder verified versions
    are downloaded into (and new versions staged in)."""

    def __init__(self, url: str, settings: ObjectStoreSettings, cache: Path) -> None:
        self.objects = ObjectStore(url, settings)
        digest = hashlib.sha256(self.objects.url.encode()).hexdigest()[:12]
        self.cache = Path(cache) / f"{self.objects.bucket}-{digest}"
        self.location = self.objects.url
        self.settle_s = settings.cas_settle_s

    def _written(self, key: str, data: bytes) -> bool:
        """Whether ``data`` is what the store holds at ``key`` once racing writes have landed."""
        if self.settle_s:
            time.sleep(self.settle_s)
        found = self.objects.get(key)
        return found is not None and found[0] == data

    # -- small keys -----------------------------------------------------------------------------
    def get(self, key: str) -> tuple[bytes, str] | None:
        return self.objects.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.objects.put(key, data)

    def swap(self, key: str, data: bytes, expected: str | None) -> bool:
        try:
            self.objects.put_if(key, data, expected)
        except (PreconditionFailed, KeyError):  # KeyError: If-Match on a key deleted meanwhile
            return False
        return self._written(key, data)

    def streams(self) -> list[str]:
        names = (p.rstrip("/") for p in self.objects.list("", delimiter="/"))
        return sorted(n for n in names if is_stream_name(n))

    def detectors(self, stream: str) -> list[str]:
        prefix = f"{check_stream(stream)}/"
        names = (p[len(prefix) :].rstrip("/") for p in self.objects.list(prefix, delimiter="/"))
        return sorted(n for n in names if n in DETECTORS)

    def versions(self, stream: str, detector: str) -> list[int]:
        prefix = f"{check_stream(stream)}/{check_detector(detector)}/v"
        keys = (key[len(prefix) :].split("/") for key in self.objects.list(prefix))
        return sorted({int(k[0]) for k in keys if len(k) == 2 and k[1] == MANIFEST and k[0].isdigit()})

    # -- whole versions -------------------------------------------------------------------------
    def staging(self, stream: str, detector: str) -> Path:
        folder = self.cache / ".staging" / check_stream(stream) / check_detector(detector)
        folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=folder, prefix="new-"))

    def publish(
        self, staging: Path, stream: str, detector: str, manifest: dict[str, Any]
    ) -> tuple[int, Path]:
        for relative, digest in manifest["artifacts"].items():
            # A blob that exists holds the same bytes (it is named by them), or fails the readers' check.
            with contextlib.suppress(PreconditionFailed):
                self.objects.put_new(f"{BLOBS}/{digest}", (staging / relative).read_bytes())
        for _ in range(100):
            version = max(self.versions(stream, detector), default=0) + 1
            manifest["version"] = version
            data = encode_json(manifest)
            key = version_key(stream, detector, version, MANIFEST)
            try:
                self.objects.put_new(key, data)
            except PreconditionFailed:
                continue
            if not self._written(key, data):
                continue  # a racing trainer's manifest replaced ours (a non-atomic server)
            (staging / MANIFEST).write_bytes(data)
            return version, self._cache(staging, stream, detector, version, data)
        raise RegistryError(f"could not allocate a version of {stream}/{detector} in {self.location}")

    def _cache(self, staging: Path, stream: str, detector: str, version: int, manifest: bytes) -> Path:
        """Rename a complete, verified version folder into the cache, keyed by its manifest's digest."""
        digest = hashlib.sha256(manifest).hexdigest()[:16]
        target = self.cache / stream / detector / f"v{version:04d}-{digest}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, target)
        except OSError:  # another process cached the same version first: its copy is as good
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def fetch(self, stream: str, detector: str, version: int, manifest: bytes) -> Path:
        digest = hashlib.sha256(manifest).hexdigest()[:16]
        target = self.cache / stream / detector / f"v{version:04d}-{digest}"
        if (target / MANIFEST).is_file():
            return target
        label = f"{stream}/{detector} v{version}"
        artifacts = decode_json(manifest, "manifest", label).get("artifacts")
        if not isinstance(artifacts, dict) or not artifacts:
            raise RegistryIntegrityError(f"{label}: the manifest lists no artifacts: retrain or restore it")
        staging = self.staging(stream, detector)
        try:
            for name, digest in artifacts.items():
                relative = plain_artifact_name(name, label)
                blob = self.objects.get(f"{BLOBS}/{digest}") if isinstance(digest, str) else None
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
            (staging / MANIFEST).write_bytes(manifest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._cache(staging, stream, detector, version, manifest)
