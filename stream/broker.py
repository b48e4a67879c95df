"""Embedded single-node Apache Kafka (KRaft) run as a local Java process.

The broker's jars come from Maven Central (``mvn dependency:copy-dependencies`` on the pom in
``stream/kafka_runtime``) into the user's cache directory, once. Storage is formatted with Kafka's
StorageTool; the broker is started with ``java -cp <jars> kafka.Kafka server.properties``.

For example::

    broker = EmbeddedBroker(Path(".anomstream/kafka-9092"), port=9092)
    broker.start()
    # -> '127.0.0.1:9092'
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

from stream.errors import AnomstreamError
from stream.settings import Settings

log = logging.getLogger(__name__)

RUNTIME_DIR = Path(__file__).parent / "kafka_runtime"
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)<", (RUNTIME_DIR / "pom.xml").read_text()).group(1)  # type: ignore[union-attr]
MIN_JAVA = 17


class BrokerError(AnomstreamError, RuntimeError):
    """The embedded broker cannot be installed, started or stopped; the message says what to do."""


_NO_BROKER_HINT = (
    "or set ANOMSTREAM_BOOTSTRAP_SERVERS to an existing cluster, or run `docker compose up kafka`"
)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "anomstream" / f"kafka-{KAFKA_VERSION}"


def java_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise BrokerError(f"could not read the Java version from `{java} -version`: {out.strip()!r}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise BrokerError(
            f"Java {MIN_JAVA}+ not found: install it (e.g. apt install openjdk-17-jre-headless), "
            + _NO_BROKER_HINT
        )
    if java_version(java) < MIN_JAVA:
        raise BrokerError(
            f"{java} is Java {java_version(java)}; Kafka {KAFKA_VERSION} needs {MIN_JAVA}+: "
            "install a newer JDK or point JAVA_HOME at one, " + _NO_BROKER_HINT
        )
    return java


def ensure_jars(quiet: bool = True) -> Path:
    """Download Kafka's jars once through Maven into the cache; return the folder that holds them."""
    return fetch_jars(
        RUNTIME_DIR / "pom.xml", cache_dir() / "libs", "kafka_2.13-*.jar", f"Kafka {KAFKA_VERSION}",
        _NO_BROKER_HINT, quiet,
    )  # fmt: skip


def fetch_jars(pom: Path, libs: Path, expect: str, what: str, hint: str, quiet: bool = True) -> Path:
    """The runtime jars of ``pom`` in ``libs``, fetched once through Maven from Maven Central
    (``mvn dependency:copy-dependencies``); ``expect`` is a glob the folder must then match."""
    if libs.is_dir() and any(libs.glob(expect)):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            f"Maven (mvn) not found: it downloads {what}'s jars from Maven Central once. "
            "Install it (e.g. apt install maven), " + hint
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=libs.parent, prefix=".libs-"))
    log.info("downloading %s jars from Maven Central into %s", what, libs)
    command = [mvn, "-B", "-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime",
               f"-DoutputDirectory={staging}"]  # fmt: skip
    if quiet:
        command.insert(1, "-q")
    result = subprocess.run(command, capture_output=quiet, text=True, check=False)
    if result.returncode != 0 or not any(staging.glob(expect)):
        shutil.rmtree(staging, ignore_errors=True)
        detail = (result.stdout or "")[-2000:] if quiet else ""
        raise BrokerError(
            f"mvn could not fetch {what} (exit {result.returncode}); check network "
            f"access to Maven Central or ~/.m2/settings.xml mirrors.\n{detail}"
        )
    try:
        staging.rename(libs)
    except OSError:  # another process won the race; its copy is as good as ours
        shutil.rmtree(staging, ignore_errors=True)
    return libs


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SERVER_PROPERTIES = """\
# Written by anomstream: a single-node KRaft broker for local use.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dirs}
num.partitions=1
auto.create.topics.enable=false
# One node: internal topics at replication factor 1, so consumer groups and transactions work.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
"""

LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class EmbeddedBroker:
    """One local Kafka broker whose state (config, data, logs, pid) lives in ``data_dir``."""

    def __init__(
        self, data_dir: Path, port: int = 9092, controller_port: int | None = None, heap: str = "512m"
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap = heap

    @classmethod
    def for_settings(
        cls, settings: Settings, port: int | None = None, data_dir: Path | None = None
    ) -> EmbeddedBroker:
        """The embedded broker of these settings: ``ANOMSTREAM_BROKER_PORT`` (or ``port``), its state in
        ``<state dir>/kafka-<port>`` (or ``data_dir``). The CLI's broker verbs and the demo use this one."""
        port = port or settings.broker_port
        return cls(data_dir or settings.state_dir / f"kafka-{port}", port=port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    def pid(self) -> int | None:
        """The broker's process id when it is running, else None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            self.pid_file.unlink(missing_ok=True)
            return None
        except PermissionError:
            pass
        return pid

    def running(self) -> bool:
        return self.pid() is not None and port_open("127.0.0.1", self.port)

    def answers(self) -> bool:
        """Whether a Kafka broker answers on this port, whoever started it."""
        return port_open("127.0.0.1", self.port) and self._answers()

    def _configure(self) -> Path:
        if self.controller_port is None:
            self.controller_port = self.port + 1 if not port_open("127.0.0.1", self.port + 1) else free_port()
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(
            SERVER_PROPERTIES.format(
                port=self.port, controller_port=self.controller_port, log_dirs=self.data_dir / "kraft"
            )
        )
        (self.data_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES.format(log_file=self.log_file))
        return props

    def _java(self, java: str, libs: Path, main: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            java,
            f"-Xmx{heap}",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker (no-op when already running); return when it accepts connections."""
        if self.running():
            return self.bootstrap
        if port_open("127.0.0.1", self.port):
            raise BrokerError(
                f"port {self.port} is already in use by another program: stop it, or choose another port "
                f"(ANOMSTREAM_BROKER_PORT=9192, or `--port` / `anomstream up --broker-port`)"
            )
        java, libs = find_java(), ensure_jars()
        props = self._configure()
        if not (self.data_dir / "kraft" / "meta.properties").exists():
            fmt = self._java(
                java,
                libs,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                new_cluster_id(),
                "-c",
                str(props),
            )
            result = subprocess.run(fmt, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise BrokerError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
        stdout = (self.data_dir / "logs" / "stdout.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 - arguments are ours
            self._java(java, libs, "kafka.Kafka", str(props), heap=self.heap),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal goes to us; we stop the broker cleanly
        )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"Kafka exited with code {process.returncode} during start-up; "
                    f"see {self.log_file} and {self.data_dir / 'logs' / 'stdout.log'}"
                )
            if port_open("127.0.0.1", self.port) and self._answers():
                log.info(
                    "Kafka %s ready at %s (pid %d, logs %s)",
                    KAFKA_VERSION,
                    self.bootstrap,
                    process.pid,
                    self.log_file,
                )
                return self.bootstrap
            time.sleep(0.3)
        self.stop()
        raise BrokerError(f"Kafka did not accept connections within {timeout:.0f}s; see {self.log_file}")

    def _answers(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker cleanly (SIGTERM: Kafka flushes and closes its logs); True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.2)
        else:
            log.warning("Kafka (pid %d) did not stop within %.0fs: killing it", pid, timeout)
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kafka_cluster_id(value: str) -> str:
    """Kafka cluster ids are 16 bytes in URL-safe base64 without padding (22 characters)."""
    import base64

    return base64.urlsafe_b64encode(uuid.UUID(value).bytes).decode().rstrip("=")


def new_cluster_id(draw: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A random cluster id that does not start with ``-``, as Kafka's own ``Uuid.randomUuid`` draws
    them: the storage tool's argument parser reads ``-t -Xy...`` as a missing value and an unknown
    option, which failed one broker start in 64 (a first byte of 0xF8-0xFB encodes as ``-``)."""
    while True:
        cluster_id = _kafka_cluster_id(str(draw()))
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalServer(Protocol):
    def start(self) -> str: ...
    def stop(self) -> object: ...


ServerT = TypeVar("ServerT", bound=LocalServer)


@contextlib.contextmanager
def temporary_server(prefix: str, make: Callable[[Path], ServerT]) -> Iterator[ServerT]:
    """``make(folder)`` started with its state in a temporary folder, stopped and removed on exit."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    server = make(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def temporary_broker() -> contextlib.AbstractContextManager[EmbeddedBroker]:
    """A throw-away broker on free ports with its state in a temporary folder, stopped and removed
    on exit (benchmarks and test sessions)."""
    return temporary_server(
        "anomstream-kafka-",
        lambda folder: EmbeddedBroker(folder, port=free_port(), controller_port=free_port()),
    )
