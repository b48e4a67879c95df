"""``anomstream data fetch NAME``: download public datasets from their canonical sources, verified.

Every file has a sha256; a download that does not match is deleted, never used. Files land in
``DATA_DIR/<folder>/`` with the same layout as the test data, so loaders find them either way.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stream.atomic import atomic_write
from stream.errors import AnomstreamError

log = logging.getLogger(__name__)

UCI_KDD = "http://kdd.ics.uci.edu/databases/kddcup99"


@dataclass(frozen=True)
class RemoteFile:
    url: str
    path: str  # relative to the data directory
    sha256: str
    # Gzipped files are sometimes re-packed by mirrors (other header, same content): accept a file
    # whose decompressed bytes match this digest too.
    content_sha256: str | None = None


DATASETS: dict[str, list[RemoteFile]] = {
    "kdd": [
        RemoteFile(f"{UCI_KDD}/kddcup.data_10_percent.gz", "kdd99/kddcup.data_10_percent.gz",
                   "8045aca0d84e70e622d1148d7df782496f6333bf6eb979a1b0837c42a9fd9561",
                   "f8c8267ebcd9c0ed1fd7d6277fe5bfff8732e9b7db8e61b873542b2a534b6f9a"),
        RemoteFile(f"{UCI_KDD}/corrected.gz", "kdd99/corrected.gz",
                   "74f0daef49b242badc09f2adbd457dea6a45b4f77177efbd11216d333651044b",
                   "547dfb9c0f0dc1d9944219ec79e851191faebaeb8acbfa1cd171c418397052a4"),
        RemoteFile(f"{UCI_KDD}/kddcup.names", "kdd99/kddcup.names",
                   "24ad45a4c5de85cd73bcc81cf4965a58bbf3e83b48c6e6d3b0284119e7d42efd"),
        RemoteFile(f"{UCI_KDD}/training_attack_types", "kdd99/training_attack_types.txt",
                   "0762f0d4405ef457e60b0179145e5fca328b5103a9364a81e63b99d9f0620c74"),
    ],
    "ecg": [
        RemoteFile("https://storage.googleapis.com/download.tensorflow.org/data/ecg.csv", "ecg5000/ecg.csv",
                   "72ce7b040ca0c6ed36c3368e570c6ac4ddf20100476e47373c63b2395e012df1"),
    ],
}  # fmt: skip


def _nab_files() -> list[RemoteFile]:
    """The 58 NAB series, labels, profiles and scoreboard at a pinned commit (hashes in a manifest)."""
    manifest = json.loads((Path(__file__).parent / "nab_manifest.json").read_text())
    base = f"https://raw.githubusercontent.com/{manifest['repository']}/{manifest['commit']}"
    return [RemoteFile(f"{base}/{path}", f"nab/{path}", sha) for path, sha in manifest["files"].items()]


DATASETS["nab"] = _nab_files()


class ChecksumError(AnomstreamError, RuntimeError):
    """A downloaded file does not match its published sha256."""


def sha256_of(path: Path, opener: Callable = open) -> str:
    digest = hashlib.sha256()
    with opener(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path, remote: RemoteFile) -> bool:
    if sha256_of(path) == remote.sha256:
        return True
    return remote.content_sha256 is not None and sha256_of(path, gzip.open) == remote.content_sha256


def fetch_file(
    remote: RemoteFile, data_dir: Path, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Download one file unless a verified copy is already there; return its path."""
    target = data_dir / remote.path
    if target.is_file() and verified(target, remote):
        log.info("%s already present and verified", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)

    def check(downloaded: Path) -> None:
        if not verified(downloaded, remote):
            raise ChecksumError(
                f"{remote.url} does not match its sha256 {remote.sha256[:16]}...: the file was discarded. "
                "The source may have changed; report it, or place a verified copy in the data directory."
            )

    with (
        atomic_write(target, "wb", check=check) as out,
        urllib.request.urlopen(remote.url, timeout=60) as response,  # noqa: S310
    ):
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        for block in iter(lambda: response.read(1 << 16), b""):
            out.write(block)
            done += len(block)
            if progress:
                progress(done, total)
    return target


def fetch(name: str, data_dir: Path, progress: Callable[[str, int, int], None] | None = None) -> list[Path]:
    if name not in DATASETS:
        raise AnomstreamError(f"unknown dataset {name!r}: use one of {', '.join(sorted(DATASETS))}")
    paths = []
    for remote in DATASETS[name]:
        callback = (lambda done, total, r=remote: progress(r.path, done, total)) if progress else None
        paths.append(fetch_file(remote, data_dir, callback))
    return paths
