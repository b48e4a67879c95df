"""Versioned model registry on the file system.

Layout::

    REGISTRY/<stream>/<detector>/v0003/manifest.json   stream, detector, version, features, training
                                      /encoder.json     description, metrics, sha256 of every artifact
                                      /threshold.json
                                      /detector/...     whatever the detector's save() wrote
    REGISTRY/<stream>/production.json                   alias: {detector, version, history}

Writes are atomic (a temporary folder renamed into place), so a worker never sees half a model.
Loading verifies every artifact's sha256 before any of them is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.detectors import Detector, detector_class
from models.features import FeatureEncoder, encoder_from_dict
from models.scoring import ScoringModel
from models.thresholds import Threshold, threshold_from_dict
from stream.errors import AnomstreamError

MANIFEST = "manifest.json"
ALIAS = "production.json"
CALIBRATION = "calibration_scores.npy"


class RegistryError(AnomstreamError, RuntimeError):
    """The registry has no such model, or cannot do what was asked."""


class RegistryIntegrityError(RegistryError):
    """An artifact is missing or its checksum does not match the manifest: the model is not loaded."""


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


def _write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, default=str)
    os.replace(tmp, path)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

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
    ) -> ModelRef:
        """Write a new version; promote it when asked, or when the stream has no production model.

        ``calibration_scores`` (the detector's scores of held-out normal rows) are kept beside the
        model: the NAB mapping and drift calibration read them back.
        """
        folder = self.root / stream / detector.name
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
        try:
            detector.save(staging / "detector")
            (staging / "encoder.json").write_text(json.dumps(encoder.to_dict(), indent=2))
            (staging / "threshold.json").write_text(json.dumps(threshold.to_dict(), indent=2))
            if calibration_scores is not None:
                np.save(staging / CALIBRATION, np.asarray(calibration_scores, dtype=np.float64))
            artifacts = {
                str(p.relative_to(staging)): _sha256(p) for p in sorted(staging.rglob("*")) if p.is_file()
            }
            manifest = {
                "stream": stream,
                "detector": detector.name,
                "detector_class": type(detector).__name__,
                "created_at": _now(),
                "features": list(encoder.feature_names_),
                "encoder": {
                    k: v for k, v in encoder.to_dict().items() if k in ("kind", "protocol", "length")
                },
                "threshold": threshold.to_dict(),
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
        folder = self.root / stream / detector
        if not folder.is_dir():
            return []
        return sorted(int(p.name[1:]) for p in folder.glob("v[0-9]*") if (p / MANIFEST).is_file())

    def manifest(self, stream: str, detector: str, version: int) -> dict[str, Any]:
        path = self.root / stream / detector / f"v{version:04d}" / MANIFEST
        if not path.is_file():
            raise RegistryError(f"no model {stream}/{detector} v{version} in {self.root}")
        return json.loads(path.read_text())

    def list(self, stream: str | None = None) -> list[dict[str, Any]]:
        """Every version's manifest (without artifact hashes), with an ``is_production`` flag."""
        rows = []
        streams = [stream] if stream else sorted(p.name for p in self.root.glob("*") if p.is_dir())
        for s in streams:
            prod = self.production(s)
            for det_dir in sorted(p for p in (self.root / s).glob("*") if p.is_dir()):
                for version in self.versions(s, det_dir.name):
                    m = self.manifest(s, det_dir.name, version)
                    m.pop("artifacts", None)
                    m["is_production"] = prod is not None and (prod["detector"], prod["version"]) == (
                        det_dir.name,
                        version,
                    )
                    rows.append(m)
        return rows

    def production(self, stream: str) -> dict[str, Any] | None:
        path = self.root / stream / ALIAS
        return json.loads(path.read_text()) if path.is_file() else None

    def resolve(self, stream: str, detector: str | None = None, version: int | None = None) -> ModelRef:
        """Production model by default; else the newest version of ``detector`` (or ``version``)."""
        if detector is None:
            prod = self.production(stream)
            if prod is None:
                raise RegistryError(
                    f"no production model for stream {stream!r} in {self.root}: "
                    f"run `anomstream train --stream {stream}` first"
                )
            detector, version = prod["detector"], prod["version"]
        if version is None:
            known = self.versions(stream, detector)
            if not known:
                raise RegistryError(f"no {detector!r} model for stream {stream!r} in {self.root}")
            version = known[-1]
        path = self.root / stream / detector / f"v{version:04d}"
        if not (path / MANIFEST).is_file():
            raise RegistryError(f"no model {stream}/{detector} v{version} in {self.root}")
        return ModelRef(stream, detector, version, path)

    def verify(self, ref: ModelRef) -> dict[str, Any]:
        """Check every artifact against the manifest's sha256; return the manifest."""
        manifest = json.loads((ref.path / MANIFEST).read_text())
        for relative, expected in manifest["artifacts"].items():
            path = ref.path / relative
            if not path.is_file():
                raise RegistryIntegrityError(f"{path} is missing: the model folder is incomplete")
            if _sha256(path) != expected:
                raise RegistryIntegrityError(
                    f"{path} does not match its sha256 in the manifest: refusing to load "
                    f"{ref.stream}/{ref.detector} v{ref.version}; retrain or restore the folder"
                )
        return manifest

    def load(self, stream: str, detector: str | None = None, version: int | None = None) -> ScoringModel:
        ref = self.resolve(stream, detector, version)
        manifest = self.verify(ref)
        cls = detector_class(ref.detector)
        calibration = ref.path / CALIBRATION
        return ScoringModel(
            stream=stream,
            detector_name=ref.detector,
            version=ref.version,
            encoder=encoder_from_dict(json.loads((ref.path / "encoder.json").read_text())),
            detector=cls.load(ref.path / "detector"),
            threshold=threshold_from_dict(json.loads((ref.path / "threshold.json").read_text())),
            manifest=manifest,
            calibration_scores=np.load(calibration, allow_pickle=False) if calibration.is_file() else None,
        )

    # -- aliases --------------------------------------------------------------------------------
    def promote(self, stream: str, detector: str, version: int) -> dict[str, Any]:
        self.resolve(stream, detector, version)
        current = self.production(stream)
        history = []
        if current is not None:
            history = [*current.get("history", []), {k: current[k] for k in ("detector", "version")}]
        alias = {"detector": detector, "version": version, "promoted_at": _now(), "history": history}
        _write_json_atomic(self.root / stream / ALIAS, alias)
        return alias

    def rollback(self, stream: str) -> dict[str, Any]:
        current = self.production(stream)
        if not current or not current.get("history"):
            raise RegistryError(f"stream {stream!r} has no earlier production model to roll back to")
        previous = current["history"][-1]
        alias = {**previous, "promoted_at": _now(), "history": current["history"][:-1]}
        _write_json_atomic(self.root / stream / ALIAS, alias)
        return alias
