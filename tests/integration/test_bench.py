"""`anomstream bench` on the session broker: bench.json as contracted; batching beats predict-per-message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from anomstream.bench import BenchConfig, Benchmark
from stream.settings import Settings
from tests.support import measure

pytestmark = pytest.mark.integration


def test_bench_writes_its_contract_and_batching_wins(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={"state_dir": tmp_path / "state"})
    config = BenchConfig(events=20_000, naive_events=100, latency_seconds=4, latency_rate=2000)
    Benchmark(settings, config, Console(quiet=True)).run(tmp_path)
    result = json.loads((tmp_path / "bench.json").read_text())

    contract = {
        "wire_limit_eps",
        "worker_eps",
        "worker_eos_eps",
        "naive_predict_eps",
        "latency_ms",
        "worker_rss_mb",
    }
    assert set(result) >= contract
    assert set(result["latency_ms"]) == {"p50", "p99", "rate_eps"}
    assert set(result["worker_rss_mb"]) == {"start", "end", "events"}
    # One model call per batch must beat one model.predict per message by a wide margin, and no
    # worker can outrun a bare consumer of the same messages.
    assert result["worker_eps"] > 50 * result["naive_predict_eps"]
    assert result["worker_eps"] < result["wire_limit_eps"]
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"] < 10_000
    assert result["worker_rss_mb"]["end"] > 0 and result["worker_rss_mb"]["events"] == 8000
    measure(
        f"bench (20k events): wire {result['wire_limit_eps']:,}, worker {result['worker_eps']:,}, "
        f"eos {result['worker_eos_eps']:,}, naive {result['naive_predict_eps']} ev/s; "
        f"latency p50 {result['latency_ms']['p50']} ms p99 {result['latency_ms']['p99']} ms at 2,000 ev/s"
    )
