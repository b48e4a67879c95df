"""The model registry: one class, :class:`Registry`, over a store that says where its bytes live (a
folder, :class:`~models.registry_store.FolderStore`, or an S3-compatible bucket,
:class:`~models.object_registry.S3Store`). Both stores hold the same keys::

    <stream>/<detector>/v0003/manifest.json   stream, detector, version, features, training
                             /encoder.json     description, metrics, shadow results, and the
                             /threshold.json   sha256 of every artifact   (sealed)
                             /detector/...     whatever the detector's save() wrote (sealed)
                             /status.json      candidate | rejected | retired, and why (mutable)
    <stream>/production.json                   alias: {detector, version, reason, history}

(In S3 the artifacts live once under ``_blobs/sha256/<digest>``; the manifest names them.) A version
is published by creating its manifest, once and last, so a reader never sees half a model. A version
is sealed once published: its manifest lists every artifact with its sha256. What changes afterwards
(the version's status) lives in ``status.json`` beside it, never in the manifest. Metadata (manifests,
statuses, the alias, thresholds, listings) is read from the store without fetching a model. Loading
and promoting fetch the version (the folder's own files, or S3's blobs downloaded into a cache) and
verify the seal before anything is read or switched:

- every artifact name is a plain relative name inside its version folder (no ``..``, no absolute
  path, no symbolic link that leads outside);
- every artifact the detector kind needs (:func:`required_artifacts`: what its class declares in
  ``ARTIFACTS``) is listed and present, and every listed file matches its sha256; only listed files
  are ever read;
- every registry file that is not what it should be (truncated JSON, wrong types, a detector name
  that is not in the zoo) raises one :class:`RegistryError` that names the file.

Nothing non-finite is written: :meth:`Registry.save` refuses a model whose threshold, fitted
weights or calibration scores hold a ``nan`` or an infinity (the last line of defence behind
training's own checks).

The alias changes only by compare-and-swap, on both stores: a promotion reads the alias and its
generation, decides, and writes only if the alias still has that generation; a promotion may also
name the production model it was decided on (``expected``). Either way a promoter that lost gets
:class:`RegistryConflictError`, with one message, and nothing is switched.

Statuses: the version the alias names is ``production``; a version that production replaced is
``retired``; one that failed its shadow evaluation, or that a rollback removed from production, is
``rejected``; anything else (trained, not promoted) is a ``candidate``.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, cast

import numpy as np

from models.detectors import Detector, detector_class
from models.detectors.base import fitted_arrays
from models.detectors.light import load_detector
from models.features import FeatureEncoder, encoder_from_dict
from models.learnt_normal import ARTIFACTS as LEARNT_ARTIFACTS
from models.learnt_normal import LearntNormal
from models.model_id import Manifest, ModelId, ProductionAlias
from models.object_registry import S3Store
from models.registry_store import (
    MANIFEST,
    STATUS,
    FolderStore,
    RegistryConflictError,
    RegistryError,
    RegistryIntegrityError,
    RegistryStore,
    alias_key,
    check_detector,
    check_stream,
    check_version,
    decode_json,
    encode_json,
    plain_artifact_name,
    read_json_file,
    sha256_file,
    version_key,
)
from models.scoring import ScoringModel
from models.thresholds import Threshold, threshold_from_dict
from stream.settings import Settings

__all__ = [
    "CALIBRATION",
    "ANY",
    "Unchecked",
    "ModelRef",
    "Registry",
    "RegistryConflictError",
    "RegistryError",
    "RegistryIntegrityError",
    "RegistryStore",
    "open_registry",
    "required_artifacts",
]

CALIBRATION = "calibration_scores.npy"
LEARNT_NORMAL = "learnt_normal"  # folder of an adapted model's learnt records (models.learnt_normal)
STATUSES = ("production", "candidate", "rejected", "retired")
MUTABLE = frozenset({STATUS})  # files of a version folder outside the seal

COMMON_ARTIFACTS = ("encoder.json", "threshold.json")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Unchecked(Enum):
    ANY = "any"


ANY = Unchecked.ANY  # promote(expected=ANY): whatever production is when the alias is read


@dataclass(frozen=True)
class ModelRef:
    stream: str
    detector: str
    version: int
    path: Path  # a local folder holding the version's artifacts (fetched from the store)


def _now() -> str:
    return datetime.now(UTC).isoformat()


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
        return Registry(S3Store(settings.registry, settings.s3, settings.state_dir / "registry-cache"))
    return Registry(FolderStore(Path(settings.registry)))


def conflict(
    stream: str, target: ModelId, found: ModelId | None = None, expected: ModelId | None = None
) -> str:
    """The one message of a lost promotion, whichever store and whichever check caught it."""
    seen = f" (it is {found or 'none'}, not {expected or 'none'})" if found != expected else ""
    return (
        f"the production alias of {stream!r} changed{seen} while switching it to {target}: nothing was "
        f"switched; see `anomstream models list --stream {stream}` and try again"
    )


def nonfinite(stream: str, detector: Detector, threshold: Threshold, calibration: np.ndarray | None) -> str:
    """What in a model to be saved is not a finite number (empty: nothing)."""
    label = f"{stream}/{detector.name}"
    if not math.isfinite(float(threshold.threshold_)):
        return f"{label}: its threshold is {threshold.threshold_}"
    for name, values in fitted_arrays(detector):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            return f"{label}: {bad} of {np.size(values)} values of its fitted {name} are nan or infinite"
    if calibration is not None and not np.isfinite(np.asarray(calibration, dtype=np.float64)).all():
        return f"{label}: its calibration scores hold nan or infinite values"
    return ""


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
    a store (a folder or an S3 bucket: the same methods, the same guarantees). See the module for
    the layout and what is verified when.

    For example::

        registry = Registry(Path("models"))  # a folder; Registry(S3Store(...)) for a bucket
        ref = registry.save("kdd", detector, encoder, threshold, training={...})
        model = registry.load("kdd")  # the production model, its seal verified
    """

    def __init__(self, store: RegistryStore | Path | str) -> None:
        self.store: RegistryStore = FolderStore(Path(store)) if isinstance(store, str | Path) else store
        self.location = self.store.location  # what messages name: the folder, or an s3:// URL

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
        """Write a new version; promote it when asked, or when the stream has no production model
        (compared and swapped: if another writer promoted first, this version stays a candidate).

        ``calibration_scores`` (the detector's scores of held-out normal rows) are kept beside the
        model: the NAB mapping and drift calibration read them back. ``extra`` adds sealed manifest
        entries (a retrained candidate's ``shadow`` results and ``retrain`` origin). ``learnt_normal``
        (an adapted model's learnt records) is sealed with the rest, under ``learnt_normal/``.
        A model with a non-finite threshold, weight or calibration score is refused
        (:class:`RegistryIntegrityError`) and nothing is written.
        """
        check_stream(stream)
        check_detector(detector.name)
        bad = nonfinite(stream, detector, threshold, calibration_scores)
        if bad:
            raise RegistryIntegrityError(
                f"refusing to save {bad}: the training rows or the fit went wrong; check the data "
                "for nan/inf values (anomstream data check) and retrain"
            )
        staging = self.store.staging(stream, detector.name)
        try:
            detector.save(staging / "detector")
            (staging / "encoder.json").write_text(json.dumps(encoder.to_dict(), indent=2))
            (staging / "threshold.json").write_text(json.dumps(threshold.to_dict(), indent=2))
            if calibration_scores is not None:
                np.save(staging / CALIBRATION, np.asarray(calibration_scores, dtype=np.float64))
            if learnt_normal is not None:
                learnt_normal.save(staging / LEARNT_NORMAL)
            artifacts = {
                p.relative_to(staging).as_posix(): sha256_file(p)
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
            version, path = self.store.publish(staging, stream, detector.name, manifest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        ref = ModelRef(stream, detector.name, version, path)
        if promote:
            self.promote(stream, ref.detector, ref.version)
        elif promote is None:
            # The stream's first model is production, unless another writer got there first.
            with contextlib.suppress(RegistryConflictError):
                self.promote(stream, ref.detector, ref.version, expected=None)
        return ref

    # -- reading (metadata: nothing is fetched) -------------------------------------------------
    def versions(self, stream: str, detector: str) -> list[int]:
        return self.store.versions(check_stream(stream), check_detector(detector))

    def _manifest_bytes(self, stream: str, detector: str, version: int) -> bytes:
        found = self.store.get(version_key(stream, detector, version, MANIFEST))
        if found is None:
            raise RegistryError(f"no model {stream}/{detector} v{version} in {self.location}")
        return found[0]

    def _where(self, key: str) -> str:
        return f"{self.location}/{key}"

    def manifest(self, stream: str, detector: str, version: int) -> Manifest:
        data = self._manifest_bytes(stream, detector, version)
        where = self._where(version_key(stream, detector, version, MANIFEST))
        return cast(Manifest, decode_json(data, "manifest", where))

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
        for s in [check_stream(stream)] if stream else self.store.streams():
            for name in self.store.detectors(s):
                for version in self.versions(s, name):
                    m: dict[str, Any] = dict(self.manifest(s, name, version))
                    m.pop("artifacts", None)
                    record = self.status(s, name, version)
                    m["status"], m["status_reason"] = record["status"], record.get("reason", "")
                    m["is_production"] = record["status"] == "production"
                    rows.append(m)
        return rows

    def _read_alias(self, stream: str) -> tuple[ProductionAlias | None, str | None]:
        """The validated alias and its generation (None, None: the stream has none)."""
        key = alias_key(stream)
        found = self.store.get(key)
        if found is None:
            return None, None
        where = self._where(key)
        return alias_from_json(decode_json(found[0], "production alias", where), where), found[1]

    def production(self, stream: str) -> ProductionAlias | None:
        """The stream's production alias, validated; None when the stream has none."""
        return self._read_alias(stream)[0]

    # -- fetching and verifying a model ---------------------------------------------------------
    def resolve(self, stream: str, detector: str | None = None, version: int | None = None) -> ModelRef:
        """Production model by default; else the newest version of ``detector`` (or ``version``),
        fetched into a local folder (the folder store's own; S3: downloaded, checked, cached)."""
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
        data = self._manifest_bytes(stream, detector, version)
        return ModelRef(stream, detector, version, self.store.fetch(stream, detector, version, data))

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
            if sha256_file(path) != expected:
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
        self._manifest_bytes(stream, detector, version)  # the version exists (nothing is fetched)
        self._write_status(stream, detector, version, status, reason)

    def _read_status(self, stream: str, detector: str, version: int) -> tuple[dict[str, Any] | None, str]:
        key = version_key(stream, detector, version, STATUS)
        found = self.store.get(key)
        return (decode_json(found[0], "status", self._where(key)) if found else None), self._where(key)

    def _write_status(self, stream: str, detector: str, version: int, status: str, reason: str) -> None:
        """The new status record of a version, its previous ones kept as history."""
        previous = self._read_status(stream, detector, version)[0] or {}
        history = previous.get("history", []) if isinstance(previous.get("history"), list) else []
        if previous.get("status"):
            history = [*history, {k: previous.get(k) for k in ("status", "reason", "updated_at")}]
        record = {"status": status, "reason": reason, "updated_at": _now(), "history": history}
        self.store.put(version_key(stream, detector, version, STATUS), encode_json(record))

    # -- the alias ------------------------------------------------------------------------------
    def _flip_alias(
        self, stream: str, change: Callable[[ProductionAlias | None], ProductionAlias | None]
    ) -> tuple[ProductionAlias | None, ProductionAlias | None]:
        """Replace the alias with ``change(current)`` (None: leave it) by compare-and-swap on the
        generation read; returns (new, replaced). A writer that changed the alias in between makes
        this one raise :class:`RegistryConflictError`: it decided on a state that is gone."""
        current, generation = self._read_alias(stream)
        alias = change(current)
        if alias is None:
            return None, current
        if not self.store.swap(alias_key(stream), encode_json(alias.to_json()), generation):
            raise RegistryConflictError(conflict(stream, alias.model))
        return alias, current

    def promote(
        self,
        stream: str,
        detector: str,
        version: int,
        reason: str = "manual",
        expected: ModelId | None | Unchecked = ANY,
    ) -> ProductionAlias:
        """Make ``detector`` v``version`` production, after verifying its seal (a tampered or
        incomplete version is refused with :class:`RegistryIntegrityError` and nothing changes).
        The version it replaces becomes ``retired``. ``expected``: the production model (None: no
        production model) the caller decided on; if production is anything else, nothing is switched
        and :class:`RegistryConflictError` says so."""
        self.verify(self.resolve(stream, detector, version))
        target = ModelId(detector, version)

        def change(current: ProductionAlias | None) -> ProductionAlias | None:
            found = current.model if current is not None else None
            if found == target:
                return None
            if expected is not ANY and found != expected:
                raise RegistryConflictError(conflict(stream, target, found, cast(ModelId | None, expected)))
            history = (*current.history, current.model) if current is not None else ()
            return ProductionAlias(target, _now(), reason, history)

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
