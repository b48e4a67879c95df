"""Shared fixtures: the real data folder, a real Kafka broker per session, unique topics per test,
and a KDD autoencoder trained once per session on the real 10% file.

Integration tests run against the broker started here (an embedded KRaft broker on free ports), or
against an existing cluster named by ANOMSTREAM_TEST_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.settings import Settings, in_ci

REPO = Path(__file__).resolve().parent.parent
MEASUREMENTS: list[str] = []


def data_root() -> Path:
    return Path(os.environ.get("ANOMSTREAM_DATA_DIR") or REPO.parent / "shared" / "data")


def require_data(*parts: str) -> Path:
    """The data path, or fail in CI / skip elsewhere when it is missing."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        message = f"{path} not found: set ANOMSTREAM_DATA_DIR to the folder that holds kdd99/, ecg5000/, nab/"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data("kdd99")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("anomstream measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


def measure(line: str) -> None:
    """Record a figure for the end-of-run summary (throughput, AUC, ...)."""
    MEASUREMENTS.append(line)


# -- broker ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    existing = os.environ.get("ANOMSTREAM_TEST_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    from stream.broker import EmbeddedBroker, free_port

    broker = EmbeddedBroker(tmp_path_factory.mktemp("kafka"), port=free_port(), controller_port=free_port())
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kdd_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with a KDD autoencoder trained on the real 10% file (20 epochs: a fixture, not the best)."""
    data = require_data("kdd99")
    from models.registry import Registry
    from models.train import train_kdd

    root = tmp_path_factory.mktemp("registry")
    train_kdd(Registry(root), data.parent, "ae", detector_params={"epochs": 20, "verbose": 0})
    return root


def make_settings(bootstrap: str, registry: Path, **overrides: object) -> Settings:
    """Settings with topics, group and transactional ids unique to one test."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "topic_prefix": f"t{tag}.",
        "group_id": f"workers-{tag}",
        "registry_dir": registry,
        "data_dir": data_root(),
        "topic_partitions": 3,
        "batch_size": 2000,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, kdd_registry: Path) -> Settings:
    from stream.kafka import create_topics

    settings = make_settings(kafka_bootstrap, kdd_registry)
    create_topics(settings)
    return settings
