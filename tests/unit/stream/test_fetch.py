"""Dataset download: verified against sha256 (or the content digest for re-packed gzip), else discarded.

A real HTTP server on localhost serves the files: the download code path is the production one.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stream.datasets.fetch import DATASETS, ChecksumError, RemoteFile, fetch_file


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_is_verified_and_placed(server, tmp_path: Path) -> None:
    url, root = server
    (root / "f.csv").write_bytes(b"a,b\n1,2\n")
    remote = RemoteFile(f"{url}/f.csv", "ds/f.csv", _sha(b"a,b\n1,2\n"))
    seen = []
    path = fetch_file(remote, tmp_path / "data", lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == b"a,b\n1,2\n" and seen[-1] == (8, 8)
    # Present and verified: not downloaded again.
    (root / "f.csv").unlink()
    assert fetch_file(remote, tmp_path / "data") == path


def test_checksum_mismatch_leaves_nothing_behind(server, tmp_path: Path) -> None:
    url, root = server
    (root / "f.csv").write_bytes(b"tampered")
    remote = RemoteFile(f"{url}/f.csv", "ds/f.csv", _sha(b"original"))
    with pytest.raises(ChecksumError, match="discarded"):
        fetch_file(remote, tmp_path / "data")
    assert not any((tmp_path / "data" / "ds").iterdir())


def test_repacked_gzip_is_accepted_by_its_content_digest(server, tmp_path: Path) -> None:
    url, root = server
    content = b"0,tcp,http,SF,normal.\n" * 100
    (root / "c.gz").write_bytes(gzip.compress(content, mtime=123))
    remote = RemoteFile(f"{url}/c.gz", "kdd99/c.gz", _sha(b"another packaging"), _sha(content))
    assert gzip.decompress(fetch_file(remote, tmp_path / "data").read_bytes()) == content


def test_every_known_file_has_a_sha256() -> None:
    for files in DATASETS.values():
        for remote in files:
            assert len(remote.sha256) == 64 and remote.url.startswith(("http://", "https://"))


@pytest.mark.data
def test_nab_manifest_matches_the_local_copy() -> None:
    """The pinned hashes are those of the verified NAB copy: a fetch reproduces the test data exactly."""
    from stream.datasets.fetch import sha256_of
    from tests.support import require_data

    nab = require_data("nab")
    files = DATASETS["nab"]
    assert sum(r.path.startswith("nab/data/") for r in files) == 58
    for remote in files:
        assert sha256_of(nab.parent / remote.path) == remote.sha256, remote.path
