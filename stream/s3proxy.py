"""A local S3-compatible server (s3proxy from Maven Central, storing objects in a folder) run as a Java
process, as the embedded broker is: for tests, and for trying an ``s3://`` registry on one machine.

>>> S3Server(Path("/tmp/s3"), port=18080).endpoint
'http://127.0.0.1:18080'
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from stream.broker import BrokerError, _alive, find_java, free_port, port_open, temporary_server
from stream.broker import fetch_jars as _fetch_jars

log = logging.getLogger(__name__)

RUNTIME_DIR = Path(__file__).parent / "s3proxy_runtime"
S3PROXY_VERSION = re.search(r"<s3proxy.version>([^<]+)<", (RUNTIME_DIR / "pom.xml").read_text()).group(1)  # type: ignore[union-attr]
_HINT = "or set ANOMSTREAM_S3__ENDPOINT_URL to an S3-compatible store, or run `docker compose up s3`"

PROPERTIES = """\
# Written by anomstream: s3proxy serving the folder {base} (one sub-folder per bucket).
s3proxy.endpoint=http://127.0.0.1:{port}
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity={identity}
s3proxy.credential={credential}
jclouds.provider=filesystem-nio2
jclouds.filesystem.basedir={base}
"""


def ensure_jar(quiet: bool = True) -> Path:
    """s3proxy's self-contained jar, fetched once through Maven into the cache."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    libs = base / "anomstream" / f"s3proxy-{S3PROXY_VERSION}" / "libs"
    found = _fetch_jars(
        RUNTIME_DIR / "pom.xml", libs, "s3proxy-*.jar", f"s3proxy {S3PROXY_VERSION}", _HINT, quiet
    )
    return next(found.glob("s3proxy-*.jar"))


class S3Server:
    """One s3proxy process whose objects live in ``data_dir/objects/<bucket>/``."""

    def __init__(
        self, data_dir: Path, port: int = 8080, identity: str = "anomstream", credential: str = "anomstream"
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.identity, self.credential = identity, credential
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_bucket(self, name: str) -> None:
        """A bucket of the filesystem backend is a folder under its base."""
        (self.data_dir / "objects" / name).mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 60.0) -> str:
        """Start s3proxy; return its endpoint once it accepts connections."""
        if port_open("127.0.0.1", self.port):
            raise BrokerError(f"port {self.port} is already in use: choose another port for s3proxy")
        java, jar = find_java(), ensure_jar()
        (self.data_dir / "objects").mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "s3proxy.conf"
        props.write_text(
            PROPERTIES.format(
                port=self.port,
                identity=self.identity,
                credential=self.credential,
                base=self.data_dir / "objects",
            )
        )
        log_file = (self.data_dir / "s3proxy.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - arguments are ours
            [java, "-Xmx256m", "-jar", str(jar), "--properties", str(props)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(
                    f"s3proxy exited with code {self.process.returncode}; see {self.data_dir / 's3proxy.log'}"
                )
            if port_open("127.0.0.1", self.port):
                log.info("s3proxy %s ready at %s", S3PROXY_VERSION, self.endpoint)
                return self.endpoint
            time.sleep(0.2)
        self.stop()
        raise BrokerError(
            f"s3proxy did not listen within {timeout:.0f}s; see {self.data_dir / 's3proxy.log'}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(self.process.pid):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


def temporary_s3_server() -> contextlib.AbstractContextManager[S3Server]:
    """A throw-away s3proxy on a free port, its objects in a temporary folder removed on exit."""
    return temporary_server("anomstream-s3-", lambda folder: S3Server(folder, port=free_port()))
