"""The embedded broker explains what to install, or how to use another cluster, when it cannot start."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from stream.broker import (
    BrokerError,
    EmbeddedBroker,
    _kafka_cluster_id,
    ensure_jars,
    find_java,
    new_cluster_id,
)


def test_missing_java_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(BrokerError) as error:
        find_java()
    message = str(error.value)
    assert "Java 17+ not found" in message and "ANOMSTREAM_BOOTSTRAP_SERVERS" in message
    assert "docker compose up kafka" in message


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(BrokerError, match="Java 11; Kafka .* needs 17"):
        find_java()


def test_missing_maven_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no jars cached here
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match="Maven \\(mvn\\) not found.*ANOMSTREAM_BOOTSTRAP_SERVERS"):
        ensure_jars()


def test_port_taken_by_another_program_is_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        broker = EmbeddedBroker(tmp_path, port=sock.getsockname()[1])
        with pytest.raises(BrokerError, match="already in use"):
            broker.start()


def test_cluster_ids_have_kafkas_format() -> None:
    cluster_id = _kafka_cluster_id("6f1c7a8e-3b1d-5c2a-9e47-0a11ce5e0001")
    assert len(cluster_id) == 22 and "=" not in cluster_id


def test_a_new_cluster_id_never_starts_with_a_dash() -> None:
    # One uuid in 64 encodes with a leading "-", which the storage tool read as an option: a CI run
    # failed with "argument --cluster-id/-t: expected one argument".
    dashed = uuid.UUID("f8000000-0000-4000-8000-000000000000")
    assert _kafka_cluster_id(str(dashed)).startswith("-")
    draws = iter([dashed, dashed, uuid.UUID("6f1c7a8e-3b1d-5c2a-9e47-0a11ce5e0001")])
    assert new_cluster_id(lambda: next(draws)) == _kafka_cluster_id("6f1c7a8e-3b1d-5c2a-9e47-0a11ce5e0001")
    assert not any(new_cluster_id().startswith("-") for _ in range(2000))
