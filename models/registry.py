"""Versioned model registry on the file system.

Layout::

    REGISTRY/<stream>/<detector>/v0003/manifest.json   stream, detector, version, features, training
                                      /encoder.json     description, metrics, shadow results, and the
                                      /threshold.json   sha256 of every artifact   (sealed)
                                      /detector/...     whatever the detector's save() wrote (sealed)
                                      /status.json      candidate | rejected | retired, and why (mutable)
    REGISTRY/<stream>/production.json                   alias: {detector, version, reason, history}

Writes are atomic (a temporary folder or file renamed into place), so a worker never sees half a
model. A version folder is sealed once published: its manifest lists every artifact with its sha256.
What changes afterwards (the version's status) lives in ``status.json`` beside it, never in the
manifest. Loading and promoting verify the seal before anything is read or switched:

- every artifact name is a plain relative name inside its version folder (no ``..``, no absolute
  path, no symbolic link that leads outside);
- every artifact the detector kind needs (:func:`required_artifacts`: what its class declares in
  ``ARTIFACTS``) is listed and present, and every listed file matches its sha256; only listed files
  are ever read;
- every registry file that is not what it should be (truncated JSON, wrong types, a detector name
  that is not in the zoo) raises one :class:`RegistryError` that names the file.

Statuses: the version the alias names is ``production``; a version that production replaced is
``retired``; one that failed its shadow evaluation, or that a rollback removed from production, is
``rejected``; anything else (trained, not promoted) is a ``candidate``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, cast

import numpy as np

from models.detectors import DETECTORS, Detector, detector_class
from models.detectors.light import load_detector
from models.features import FeatureEncoder, encoder_from_dict
from models.learnt_normal import ARTIFACTS as LEARNT_ARTIFACTS
from models.learnt_normal import LearntNormal
from models.model_id import Manifest, ModelId, ProductionAlias
from models.scoring import ScoringModel
from models.thresholds import Threshold, threshold_from_dict
from stream.atomic import write_json_atomic
from stream.errors import AnomstreamError
from stream.settings import Settings

MANIFEST = "manifest.json"
ALIAS = "production.json"
STATUS = "status.json"
CALIBRATION = "calibration_scores.npy"
LEARNT_NORMAL = "learnt_normal"  # folder of an adapted model's learnt records (models.learnt_normal)
STATUSES = ("production", "candidate", "rejected", "retired")
MUTABLE = frozenset({STATUS})  # files of a version folder outside the seal

COMMON_ARTIFACTS = ("encoder.json", "threshold.json")

_STREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class RegistryError(AnomstreamError, RuntimeError):
    """The registry has no such model, cannot do what was asked, or holds a malformed file."""


class RegistryConflictError(RegistryError):
    """Another writer changed the production alias (or took the version number) between our read and
    our write: nothing of ours was switched."""


class RegistryIntegrityError(RegistryError):
    """An artifact is missing, unlisted, outside its folder, or does not match its sha256: the model
    is neither loaded nor promoted."""


@dataclass(frozen=True)
class ModelRef:
    stream: str
    detector: str
    version: int
    path: Path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    """A registry JSON object, or one RegistryError naming the file (missing, unreadable, not JSON,
    not an object)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RegistryError(f"{what} {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{what} {path} is unreadable or not valid JSON ({exc}): restore it") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{what} {path} must hold a JSON object, not {type(data).__name__}: restore it")
    return data


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


def required_artifacts(detector: str, read_params: Any = None, prefix: str = "detector") -> list[str]:
    """The artifacts a version of ``detector`` must list: encoder, threshold and what the detector
    kind's save() writes (its class's ``ARTIFACTS``, inside ``detector/``). An ensemble also needs
    each member's artifacts; ``read_params(relative)`` returns a verified params.json, from which the
    member names come.

    >>> required_artifacts("pca")
    ['encoder.json', 'threshold.json', 'detector/params.json', 'detector/model.skops']
    """
    check_detector(detector)
    names = [f"{prefix}/{file}" for file in detector_class(detector).ARTIFACTS]
    if detector == "ensemble" and read_params is not None:
        members = read_params(f"{prefix}/params.json").get("member_names")
        if not isinstance(members, list):
            raise RegistryError(f"{prefix}/params.json of an ensemble must list its member_names")
        for i, member in enumerate(members):
            names += required_artifacts(check_detector(member), read_params, f"{prefix}/members/{i}-{member}")
    return names if prefix != "detector" else [*COMMON_ARTIFACTS, *names]


def open_registry(settings: Settings) -> Registry:
    """The registry the settings name: a folder, or an ``s3://bucket/prefix`` URL (whose versions are
    downloaded, verified, into ``<state dir>/registry-cache``).

    >>> open_registry(Settings(registry_url="/tmp/models")).location
    '/tmp/models'
    """
    if settings.registry.startswith("s3://"):
        from models.object_registry import ObjectStoreRegistry

        return ObjectStoreRegistry(settings.registry, settings.s3, settings.state_dir / "registry-cache")
    return Registry(Path(settings.registry))


def _model_id(entry: dict[str, Any], where: str) -> ModelId:
    return ModelId(check_detector(entry.get("detector"), where), check_version(entry.get("version"), where))


def alias_from_json(alias: dict[str, Any], where: str) -> ProductionAlias:
    """A stored production alias with a zoo detector, a version and a well-formed history, or a
    RegistryError naming ``where``."""
    model = _model_id(alias, where)
    history = alias.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise RegistryError(f"{where}: history must be a list of {{detector, version}} objects")
    return ProductionAlias(
        model,
        promoted_at=alias.get("promoted_at"),
        reason=alias.get("reason", "manual"),
        history=tuple(_model_id(entry, where) for entry in history),
    )


class Registry:
    """The versions of every stream's models, their statuses and each stream's production alias, in
    a folder (:class:`models.object_registry.ObjectStoreRegistry` keeps them in an object store
    behind the same methods). See the module for the layout and what is verified when.

    For example::

        registry = Registry(Path("models"))
        ref = registry.save("kdd", detector, encoder, threshold, training={...})
        model = registry.load("kdd")  # the production model, its seal verified
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)  # what messages name: this folder, or an s3:// URL

    # -- writing --------------------------------------------------------------------------------
    def save(
        self,
        stream: str,
        detector: Detector,
        encoder: FeatureEncoder,
        threshold: Threshold,
        training: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        promote: bool | None = None,
        calibration_scores: np.ndarray | None = None,
        extra: dict[str, Any] | None = None,
        learnt_normal: LearntNormal | None = None,
    ) -> ModelRef:
        """Write a new version; promote it when asked, or when the stream has no production model.

        ``calibration_scores`` (the detector's scores of held-out normal rows) are kept beside the
        model: the NAB mapping and drift calibration read them back. ``extra`` adds sealed manifest
        entries (a retrained candidate's ``shadow`` results and ``retrain`` origin). ``learnt_normal``
        (an adapted model's learnt records) is sealed with the rest, under ``learnt_normal/``.
        """
        check_stream(stream)
        check_detector(detector.name)
        folder = self._staging_parent(stream, detector.name)
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
        try:
            detector.save(staging / "detector")
            (staging / "encoder.json").write_text(json.dumps(encoder.to_dict(), indent=2))
            (staging / "threshold.json").write_text(json.dumps(threshold.to_dict(), indent=2))
            if calibration_scores is not None:
                np.save(staging / CALIBRATION, np.asarray(calibration_scores, dtype=np.float64))
            if learnt_normal is not None:
                learnt_normal.save(staging / LEARNT_NORMAL)
            artifacts = {
                p.relative_to(staging).as_posix(): _sha256(p)
                for p in sorted(staging.rglob("*"))
                if p.is_file()
            }
            manifest = {
                **(extra or {}),
                "stream": stream,
                "detector": detector.name,
                "detector_class": type(detector).__name__,
                "created_at": _now(),
                "features": list(encoder.feature_names_),
                "encoder": {
                    k: v for k, v in encoder.to_dict().items() if k in ("kind", "protocol", "length")
                },
                "threshold": threshold.to_dict(),
                **({"learnt_normal": learnt_normal.summary()} if learnt_normal is not None else {}),
                "training": training,
                "metrics": metrics or {},
                "artifacts": artifacts,
            }
            ref = self._publish(staging, folder, stream, detector.name, manifest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if promote or (promote is None and self.production(stream) is None):
            self.promote(stream, ref.detector, ref.version)
        return ref

    def _staging_parent(self, stream: str, name: str) -> Path:
        """Where a new version is written before it is published (beside its siblings: one rename)."""
        folder = self.root / stream / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _publish(self, staging: Path, folder: Path, stream: str, name: str, manifest: dict) -> ModelRef:
        # Two trainers may race for the same number: rename() fails for the loser, who takes the next.
        for _ in range(100):
            version = max(self.versions(stream, name), default=0) + 1
            manifest["version"] = version
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
            target = folder / f"v{version:04d}"
            try:
                os.rename(staging, target)
            except OSError:
                continue
            return ModelRef(stream, name, version, target)
        raise RegistryError(f"could not allocate a version under {folder}")

    # -- reading --------------------------------------------------------------------------------
    def versions(self, stream: str, detector: str) -> list[int]:
        folder = self.root / check_stream(stream) / check_detector(detector)
        if not folder.is_dir():
            return []
        found = (p.name[1:] for p in folder.glob("v[0-9]*") if (p / MANIFEST).is_file())
        return sorted(int(v) for v in found if v.isdigit())

    def _version_dir(self, stream: str, detector: str, version: int) -> Path:
        check_stream(stream)
        check_detector(detector)
        return self.root / stream / detector / f"v{check_version(version):04d}"

    def manifest(self, stream: str, detector: str, version: int) -> Manifest:
        path = self._version_dir(stream, detector, version) / MANIFEST
        if not path.is_file():
            raise RegistryError(f"no model {stream}/{detector} v{version} in {self.location}")
        return cast(Manifest, read_json_file(path, "manifest"))

    def threshold(self, stream: str, detector: str, version: int) -> Threshold:
        """A version's threshold as stored in its manifest: its cut and its severity ratios (what the
        dashboard grades with, as the worker does)."""
        where = f"manifest of {stream}/{detector} v{version}"
        try:
            return threshold_from_dict(self.manifest(stream, detector, version)["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"{where}: no readable threshold ({exc})") from None

    def list(self, stream: str | None = None) -> list[dict[str, Any]]:
        """Every version's manifest (without artifact hashes), with its ``status`` (and why) and an
        ``is_production`` flag."""
        rows = []
        for s in [check_stream(stream)] if stream else self._streams():
            for name in self._detectors(s):
                for version in self.versions(s, name):
                    m: dict[str, Any] = dict(self.manifest(s, name, version))
                    m.pop("artifacts", None)
                    record = self.status(s, name, version)
                    m["status"], m["status_reason"] = record["status"], record.get("reason", "")
                    m["is_production"] = record["status"] == "production"
                    rows.append(m)
        return rows

    def _streams(self) -> tuple[str, ...]:
        return tuple(sorted(p.name for p in self.root.glob("*") if p.is_dir() and _STREAM_NAME.match(p.name)))

    def _detectors(self, stream: str) -> tuple[str, ...]:
        return tuple(
            sorted(p.name for p in (self.root / stream).glob("*") if p.is_dir() and p.name in DETECTORS)
        )

    def _read_alias(self, stream: str) -> tuple[dict[str, Any] | None, str]:
        """The alias as stored (unvalidated) and where it is, for messages."""
        path = self.root / check_stream(stream) / ALIAS
        return (read_json_file(path, "production alias") if path.exists() else None), str(path)

    def production(self, stream: str) -> ProductionAlias | None:
        """The stream's production alias, validated; None when the stream has none."""
        alias, where = self._read_alias(stream)
        if alias is None:
            return None
        return alias_from_json(alias, where)

    def resolve(self, stream: str, detector: str | None = None, version: int | None = None) -> ModelRef:
        """Production model by default; else the newest version of ``detector`` (or ``version``)."""
        if detector is None:
            prod = self.production(stream)
            if prod is None:
                raise RegistryError(
                    f"no production model for stream {stream!r} in {self.location}: "
                    f"run `anomstream train --stream {stream}` first"
                )
            detector, version = prod.model
        if version is None:
            known = self.versions(stream, detector)
            if not known:
                raise RegistryError(f"no {detector!r} model for stream {stream!r} in {self.location}")
            version = known[-1]
        path = self._version_dir(stream, detector, version)
        if not (path / MANIFEST).is_file():
            raise RegistryError(f"no model {stream}/{detector} v{version} in {self.location}")
        return ModelRef(stream, detector, version, path)

    def verify(self, ref: ModelRef) -> Manifest:
        """Check the seal of a version: plain artifact names inside its folder, every artifact its
        detector kind needs listed, every listed file present with its sha256. Returns the manifest."""
        manifest = read_json_file(ref.path / MANIFEST, "manifest")
        label = f"{ref.stream}/{ref.detector} v{ref.version}"
        artifacts = manifest.get("artifacts")
        if not isinstance(artifacts, dict) or not artifacts:
            raise RegistryIntegrityError(f"{label}: the manifest lists no artifacts: retrain or restore it")
        for key, expected in (("stream", ref.stream), ("detector", ref.detector), ("version", ref.version)):
            if manifest.get(key) != expected:
                raise RegistryIntegrityError(
                    f"{label}: its manifest says {key} {manifest.get(key)!r}; a version folder must not be "
                    "copied or renamed: retrain instead"
                )
        root = ref.path.resolve()
        checked: set[str] = set()
        for name, expected in artifacts.items():
            relative = plain_artifact_name(name, label)
            path = ref.path / relative
            if relative.name in MUTABLE and len(relative.parts) == 1:
                raise RegistryIntegrityError(f"{label}: {name} is mutable and cannot be a sealed artifact")
            if not isinstance(expected, str) or not _SHA256.match(expected):
                raise RegistryIntegrityError(f"{label}: the manifest's sha256 of {name} is malformed")
            if not path.resolve().is_relative_to(root):
                raise RegistryIntegrityError(f"{label}: {name} leads outside its version folder: refusing it")
            if not path.is_file():
                raise RegistryIntegrityError(f"{path} is missing: the model folder is incomplete")
            if _sha256(path) != expected:
                raise RegistryIntegrityError(
                    f"{path} does not match its sha256 in the manifest: refusing {label}; "
                    "retrain or restore the folder"
                )
            checked.add(relative.as_posix())

        def verified_params(relative: str) -> dict[str, Any]:
            if relative not in checked:
                raise RegistryIntegrityError(f"{label}: {relative} is not listed in the manifest")
            return read_json_file(ref.path / relative, "detector parameters")

        required = required_artifacts(ref.detector, verified_params)
        if "learnt_normal" in manifest:  # an adapted model: its learnt records are sealed too
            required += [f"{LEARNT_NORMAL}/{name}" for name in LEARNT_ARTIFACTS]
        missing = [n for n in required if n not in checked]
        if missing:
            raise RegistryIntegrityError(
                f"{label}: the manifest does not list {', '.join(missing)}, which a {ref.detector} model "
                "needs (all artifacts must be checksummed): retrain or restore the folder"
            )
        return cast(Manifest, manifest)

    def load(
        self,
        stream: str,
        detector: str | None = None,
        version: int | None = None,
        inference_only: bool = False,
    ) -> ScoringModel:
        """A verified version as a :class:`ScoringModel`. ``inference_only`` (a worker that only scores):
        a dense net is served by its NumPy forward pass, without importing Keras
        (:mod:`models.detectors.light`); the model cannot be trained further."""
        ref = self.resolve(stream, detector, version)
        manifest = self.verify(ref)
        try:
            calibration = (
                np.load(ref.path / CALIBRATION, allow_pickle=False)
                if CALIBRATION in manifest["artifacts"]
                else None
            )
            encoder = encoder_from_dict(read_json_file(ref.path / "encoder.json", "encoder"))
            threshold = threshold_from_dict(read_json_file(ref.path / "threshold.json", "threshold"))
            learnt = LearntNormal.load(ref.path / LEARNT_NORMAL) if "learnt_normal" in manifest else None
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise RegistryError(f"cannot load {stream}/{ref.detector} v{ref.version}: {exc}") from exc
        # The detector's own checks (an untrusted type in a skops file: UntrustedModelError) say more
        # than a wrapper would, so they pass through as raised.
        return ScoringModel(
            stream=stream,
            detector_name=ref.detector,
            version=ref.version,
            encoder=encoder,
            detector=load_detector(ref.detector, ref.path / "detector", inference_only),
            threshold=threshold,
            manifest=manifest,
            calibration_scores=calibration,
            learnt_normal=learnt,
        )

    # -- statuses -------------------------------------------------------------------------------
    def status(self, stream: str, detector: str, version: int) -> dict[str, Any]:
        """``{"status", "reason", "updated_at"}`` of a version. The alias decides ``production``;
        a version without a status record is ``retired`` if it was production once, else a
        ``candidate``."""
        prod = self.production(stream)
        if prod is not None and prod.model == (detector, version):
            return {"status": "production", "reason": prod.reason, "updated_at": prod.promoted_at}
        record, where = self._read_status(stream, detector, version)
        if record is not None:
            if record.get("status") not in STATUSES:
                raise RegistryError(
                    f"{where}: status {record.get('status')!r} is not one of {', '.join(STATUSES)}"
                )
            if record["status"] == "production":  # the alias moved on without a record (crash): replaced
                record = {**record, "status": "retired"}
            return record
        was_production = prod is not None and (detector, version) in prod.history
        return {"status": "retired" if was_production else "candidate", "reason": "", "updated_at": None}

    def set_status(self, stream: str, detector: str, version: int, status: str, reason: str = "") -> None:
        """Record a version's status (``candidate``, ``rejected``, ``retired``) and why; the sealed
        artifacts stay untouched. ``production`` is set by :meth:`promote` only."""
        if status not in STATUSES or status == "production":
            raise RegistryError(
                f"status must be candidate, rejected or retired, not {status!r}: production is set by promote"
            )
        self.resolve(stream, detector, version)
        self._write_status(stream, detector, version, status, reason)

    def _read_status(self, stream: str, detector: str, version: int) -> tuple[dict[str, Any] | None, str]:
        path = self._version_dir(stream, detector, version) / STATUS
        return (read_json_file(path, "status") if path.exists() else None), str(path)

    def _status_record(self, stream: str, detector: str, version: int, status: str, reason: str) -> dict:
        """The new status record of a version, its previous ones kept as history."""
        previous = self._read_status(stream, detector, version)[0] or {}
        history = previous.get("history", []) if isinstance(previous.get("history"), list) else []
        if previous.get("status"):
            history = [*history, {k: previous.get(k) for k in ("status", "reason", "updated_at")}]
        return {"status": status, "reason": reason, "updated_at": _now(), "history": history}

    def _write_status(self, stream: str, detector: str, version: int, status: str, reason: str) -> None:
        record = self._status_record(stream, detector, version, status, reason)
        path = self._version_dir(stream, detector, version) / STATUS
        write_json_atomic(path, record, indent=2, default=str)

    # -- aliases --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _alias_lock(self, stream: str) -> Iterator[None]:
        """Promotions and rollbacks of one stream (CLI, drift monitor) run one at a time."""
        folder = self.root / check_stream(stream)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _flip_alias(
        self, stream: str, change: Callable[[ProductionAlias | None], ProductionAlias | None]
    ) -> tuple[ProductionAlias | None, ProductionAlias | None]:
        """Replace the alias with ``change(current)`` (None: leave it); returns (new, replaced). Here the
        stream's file lock serialises promoters, so each sees the one before it."""
        with self._alias_lock(stream):
            current = self.production(stream)
            alias = change(current)
            if alias is not None:
                write_json_atomic(self.root / stream / ALIAS, alias.to_json(), indent=2, default=str)
        return alias, current

    def promote(self, stream: str, detector: str, version: int, reason: str = "manual") -> ProductionAlias:
        """Make ``detector`` v``version`` production, after verifying its seal (a tampered or
        incomplete version is refused with :class:`RegistryIntegrityError` and nothing changes).
        The version it replaces becomes ``retired``."""
        ref = self.resolve(stream, detector, version)
        self.verify(ref)

        def change(current: ProductionAlias | None) -> ProductionAlias | None:
            history: tuple[ModelId, ...] = ()
            if current is not None:
                if current.model == (detector, version):
                    return None
                history = (*current.history, current.model)
            return ProductionAlias(ModelId(detector, version), _now(), reason, history)

        alias, current = self._flip_alias(stream, change)
        if alias is None:
            assert current is not None
            return current
        if current is not None:
            self._write_status(stream, *current.model, "retired", f"replaced: {reason}")
        return alias

    def rollback(self, stream: str) -> ProductionAlias:
        """Return to the previous production version (verified first). The version rolled back from
        becomes ``rejected``: it was judged bad in production, so nothing promotes it again by
        itself (``models promote`` still can)."""

        def change(current: ProductionAlias | None) -> ProductionAlias:
            if not current or not current.history:
                raise RegistryError(f"stream {stream!r} has no earlier production model to roll back to")
            previous = current.history[-1]
            self.verify(self.resolve(stream, *previous))
            return ProductionAlias(previous, _now(), "rollback", current.history[:-1])

        alias, current = self._flip_alias(stream, change)
        assert alias is not None and current is not None
        self._write_status(stream, *current.model, "rejected", "rollback")
        return alias
