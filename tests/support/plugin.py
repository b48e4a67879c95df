"""Session fixtures, loaded as a pytest plugin by ``tests/conftest.py``: the real data folder, a real
Kafka broker per session, unique topics per test, and a KDD autoencoder trained once per session on the
real 10% file.

Integration tests run against the broker started here (an embedded KRaft broker on free ports), or
against an existing cluster named by ANOMSTREAM_TEST_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.settings import Settings
from tests.support import data as test_data
from tests.support.data import data_root, require_data, unmarked_data_use
from tests.support.objectstore import S3Endpoint
from tests.support.report import MEASUREMENTS
from tests.support.streams import make_settings


def pytest_configure(config: pytest.Config) -> None:
    """Tests never touch the user's own registry or state (``~/.local/share``, ``~/.local/state``): a
    checkpoint left there by one run would be resumed by the next. Worker subprocesses inherit this."""
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="anomstream-test-home-"))
    os.environ["XDG_DATA_HOME"] = str(home / "share")
    os.environ["XDG_STATE_HOME"] = str(home / "state")
    os.environ.setdefault("ANOMSTREAM_DATA_DIR", str(data_root()))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Unit tests that read the data folder are marked ``data`` (checked here and in require_data)."""
    test_data.current_test = item
    reason = unmarked_data_use(item)
    if reason is not None:
        pytest.fail(f"{item.nodeid} reads the data folder ({reason}): mark it @pytest.mark.data")


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    test_data.current_test = None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("anomstream measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data("kdd99")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    existing = os.environ.get("ANOMSTREAM_TEST_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    from stream.broker import temporary_broker

    with temporary_broker() as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def kdd_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with a KDD autoencoder trained on the real 10% file (20 epochs: a fixture, not the best)."""
    data = require_data("kdd99")
    from models.registry import Registry
    from models.training import TrainingRequest, train

    root = tmp_path_factory.mktemp("registry")
    train(
        Registry(root),
        data.parent,
        TrainingRequest("kdd", "ae", detector_params={"epochs": 20, "verbose": 0}),
    )
    return root


SENSOR_SERIES, SENSOR_WINDOW = "nyc_taxi", 16


@pytest.fixture(scope="session")
def sensor_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with a sensor autoencoder (windows of 16) trained on the probation of NAB nyc_taxi."""
    data = require_data("nab")
    from models.registry import Registry
    from models.training import TrainingRequest, train

    root = tmp_path_factory.mktemp("sensor-registry")
    request = TrainingRequest(
        "sensor", "ae", series=SENSOR_SERIES, window=SENSOR_WINDOW, detector_params={"verbose": 0}
    )
    train(Registry(root), data.parent, request)
    return root


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, kdd_registry: Path) -> Settings:
    from stream.kafka import create_topics

    settings = make_settings(kafka_bootstrap, kdd_registry)
    create_topics(settings)
    return settings


@pytest.fixture(scope="module")
def outage_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A broker of the module's own, which its tests stop and start again (same port, same data): the
    session's broker is shared by every other test. Only an embedded broker can be stopped."""
    if os.environ.get("ANOMSTREAM_TEST_BOOTSTRAP_SERVERS"):
        pytest.skip("outage tests stop their broker: they need the embedded one")
    from stream.broker import EmbeddedBroker, free_port

    broker = EmbeddedBroker(
        tmp_path_factory.mktemp("outage-kafka"), port=free_port(), controller_port=free_port()
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kdd_pca_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with a KDD PCA detector: trained in seconds, for tests about the stream, not the model."""
    data = require_data("kdd99")
    from models.registry import Registry
    from models.training import TrainingRequest, train

    root = tmp_path_factory.mktemp("pca-registry")
    train(Registry(root), data.parent, TrainingRequest("kdd", "pca"))
    return root


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    """A real S3-compatible server for the session: s3proxy from Maven Central on a free port, or the
    store named by ANOMSTREAM_TEST_S3_ENDPOINT."""
    existing = S3Endpoint.from_environment()
    if existing is not None:
        yield existing
        return
    from stream.s3proxy import temporary_s3_server

    with temporary_s3_server() as server:
        yield S3Endpoint(server.endpoint, server.identity, server.credential)


@pytest.fixture
def s3_registry_url(s3: S3Endpoint) -> str:
    """``s3://<a bucket of this test's own>/registry``."""
    return s3.new_bucket()
