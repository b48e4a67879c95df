"""The control channel against the real broker: a model update is a notification only.

Malformed and forged updates on ``model-updates`` used to crash every worker (a ``KeyError`` in the
detector lookup) or switch the model to whatever the message named. Now a worker reloads what the
registry's production alias says, ignores anything else, and keeps scoring whatever happens while it
reloads. A promotion for a stream the worker had no model for makes it consume that stream live.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import orjson
import pytest

from consumers.model_updates import promote
from consumers.worker import ScoringWorker
from models.detectors.classical import PCADetector
from models.features import WindowEncoder
from models.registry import Registry
from models.thresholds import FixedThreshold
from models.training import TrainingRequest, train
from producers.replay import Event, ReplayProducer
from stream.kafka import make_producer
from stream.settings import Settings
from stream.signals import StopFlag
from tests.support import corrected_sample, replay, score_records, wait_until

pytestmark = pytest.mark.integration


def _scored(settings: Settings) -> int:
    return sum(len(r["offsets"]) for r in score_records(settings))


def _send(settings: Settings, *values: bytes) -> None:
    producer = make_producer(settings)
    for value in values:
        producer.produce(settings.topic("model_updates"), value, b"kdd")
    assert producer.flush(30) == 0


def _start(settings: Settings, streams: list[str]) -> tuple[ScoringWorker, StopFlag, threading.Thread]:
    stop = StopFlag(install=False)
    worker = ScoringWorker(settings, streams, worker_id="controlled", stop=stop)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert wait_until(lambda: hasattr(worker, "watcher"), 60)
    return worker, stop, thread


def test_malformed_forged_and_unloadable_updates_never_stop_scoring(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    registry_dir = tmp_path / "registry"
    shutil.copytree(kafka_settings.registry_dir, registry_dir)
    settings = kafka_settings.model_copy(update={"registry_dir": registry_dir})
    registry = Registry(registry_dir)
    request = TrainingRequest("kdd", "ae", detector_params={"epochs": 1, "verbose": 0})
    v2 = train(registry, settings.data_dir, request, promote=False)
    assert registry.production("kdd").version == 1 and v2.version == 2

    worker, stop, thread = _start(settings, ["kdd"])
    frame = corrected_sample(settings.data_dir, 3000, seed=21)
    try:
        replay(settings, frame.iloc[:1000])
        assert wait_until(lambda: _scored(settings) == 1000, 60)
        now = "2026-11-30T00:00:00Z"
        _send(
            settings,
            b"not json at all",
            b'{"detector":"ae","version":2}',  # no stream: malformed
            json.dumps({"stream": "kdd", "detector": "./ae", "version": 1, "promoted_at": now}).encode(),
            json.dumps({"stream": "kdd", "detector": "ae", "version": "2", "promoted_at": now}).encode(),
            json.dumps({"stream": "nosuch", "detector": "ae", "version": 1, "promoted_at": now}).encode(),
            # Forged: names v2, which exists, while production.json still says v1.
            json.dumps({"stream": "kdd", "detector": "ae", "version": 2, "promoted_at": now}).encode(),
        )
        replay(settings, frame.iloc[1000:2000])
        assert wait_until(lambda: _scored(settings) == 2000, 60)
        assert thread.is_alive() and worker.models["kdd"].version == 1, "the alias says v1"

        # The alias names v2, but v2's weights were tampered with: loading fails its checksum; the
        # worker keeps v1 and keeps scoring.
        weights = next((registry_dir / "kdd" / "ae" / "v0002" / "detector").glob("*.h5"))
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
        alias = registry_dir / "kdd" / "production.json"
        alias.write_text(json.dumps({**json.loads(alias.read_text()), "version": 2}))
        _send(
            settings,
            json.dumps({"stream": "kdd", "detector": "ae", "version": 2, "promoted_at": now}).encode(),
        )
        alias.write_text("{truncated")  # an unreadable alias: the same
        _send(
            settings,
            json.dumps({"stream": "kdd", "detector": "ae", "version": 2, "promoted_at": now}).encode(),
        )
        replay(settings, frame.iloc[2000:])
        assert wait_until(lambda: _scored(settings) == 3000, 60)
        assert thread.is_alive() and worker.models["kdd"].version == 1
    finally:
        stop.set()
        thread.join(60)
    assert {r["model_version"] for r in score_records(settings)} == {1}


def _ecg_model(registry: Registry, width: int = 140) -> int:
    """A small PCA model of smooth beats, saved without promotion; returns its version."""
    rng = np.random.default_rng(0)
    beats = np.sin(np.linspace(0, 6, width))[None, :] + 0.05 * rng.standard_normal((300, width))
    encoder = WindowEncoder(width).fit(beats)
    detector = PCADetector(n_components=4).fit(encoder.transform(beats))
    cut = float(np.quantile(detector.score(encoder.transform(beats)), 0.99))
    ref = registry.save("ecg", detector, encoder, FixedThreshold(cut), {"recipe": "test"}, promote=False)
    return ref.version


def test_a_promotion_for_a_stream_without_a_model_starts_consuming_it_live(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    registry_dir = tmp_path / "registry"
    shutil.copytree(kafka_settings.registry_dir, registry_dir)
    settings = kafka_settings.model_copy(update={"registry_dir": registry_dir})
    registry = Registry(registry_dir)
    assert registry.production("ecg") is None

    worker, stop, thread = _start(settings, ["kdd", "ecg"])
    try:
        assert list(worker.routes.values()) == ["kdd"]
        version = _ecg_model(registry)
        assert promote(settings, "ecg", "pca", version).announced
        assert wait_until(lambda: "ecg" in worker.routes.values(), 60), "the ecg topic is now consumed"
        rng = np.random.default_rng(1)
        beats = [
            Event(f"beat-{i}".encode(), orjson.dumps({"record": f"r{i}", "values": values}), "normal")
            for i, values in enumerate(
                (np.sin(np.linspace(0, 6, 140)) + 0.05 * rng.standard_normal((200, 140))).tolist()
            )
        ]
        ReplayProducer(settings, settings.topic("ecg"), progress=False, stop=StopFlag(False)).run(beats)
        replay(settings, corrected_sample(settings.data_dir, 200, seed=22))
        assert wait_until(lambda: _scored(settings) == 400, 90)
    finally:
        stop.set()
        thread.join(60)
    streams = {r["stream"]: sum(len(x) for x in [r["offsets"]]) for r in score_records(settings)}
    assert set(streams) == {"kdd", "ecg"}
    assert worker.stats.by_stream["ecg"] == 200 and worker.stats.by_stream["kdd"] == 200
