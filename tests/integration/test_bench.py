"""`anomstream bench` on the session broker: bench.json as contracted, the latency curve drawn beside
it, batching beats predict-per-message. Kept small: CI runs it on 2 shared cores."""

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
    config = BenchConfig(
        events=6_000,
        naive_events=50,
        repetitions=2,
        latency_seconds=2,
        latency_rates=(500, 2000),
        curve_max=False,
        profile_events=3_000,
        replica_events=2_000,
        incident_rate=2_000,
    )
    Benchmark(settings, config, Console(quiet=True)).run(tmp_path)
    result = json.loads((tmp_path / "bench.json").read_text())

    contract = {
        "wire_limit_eps",
        "worker_eps",
        "worker_eos_eps",
        "naive_predict_eps",
        "latency_ms",
        "worker_rss_mb",
        "latency_curve",
        "spread",
    }
    assert set(result) >= contract
    assert set(result["latency_ms"]) == {"p50", "p99", "rate_eps"}
    assert set(result["worker_rss_mb"]) == {"start", "end", "events"}
    assert [p["rate_eps"] for p in result["latency_curve"]] == [500, 2000]
    assert result["latency_ms"]["rate_eps"] == 500, "no 5,000 ev/s point: the first point is the headline"
    for point in result["latency_curve"]:
        assert 0 < point["p50"] <= point["p99"] < 10_000 and point["alerts"] > 0
    for figure in ("wire_limit_eps", "worker_eps", "worker_eos_eps", "naive_predict_eps"):
        low, high = result["spread"][figure]
        assert low <= result[figure] <= high, figure
    # Both streams: the attack-heavy one alerts on most events, the mostly-normal one on few.
    streams = result["streams"]
    assert streams["corrected"]["alert_share"] > 0.5 > 0.1 > streams["mostly_normal"]["alert_share"]
    # One model call per batch must beat one model.predict per message by a wide margin, and no
    # worker can outrun a bare consumer of the same messages.
    assert result["worker_eps"] > 50 * result["naive_predict_eps"]
    assert result["worker_eps"] < result["wire_limit_eps"]
    assert result["worker_rss_mb"]["end"] > 0 and result["worker_rss_mb"]["events"] == 2 * (1000 + 4000)
    assert set(result["profile_us_per_event"]) == {
        "consume", "decode+validate", "encode", "model call", "alert build", "produce", "flush/commit"
    }  # fmt: skip
    assert (tmp_path / "latency_curve.png").stat().st_size > 10_000
    # A new worker process: it scored all its events, so each figure is of a replica that worked.
    replica = result["replica"]
    assert replica["events"] == 2_000
    assert 0 < replica["start_cpu_s"] <= replica["start_s"] * 2  # two cores at most
    assert 0 < replica["rss_mb"] <= replica["peak_rss_mb"]
    for figure in ("start_s", "start_cpu_s", "rss_mb", "peak_rss_mb"):
        low, high = result["spread"][f"replica.{figure}"]
        assert low <= replica[figure] <= high, figure
    # The incident stage: measured against this run's worker alerts, its creates timed, all OCSF.
    incidents = result["incidents"]
    # As many alerts as one worker run published (most of the 6,000 corrected events alert).
    assert incidents["alerts"] >= 0.5 * 6_000
    assert incidents["incidents"] > 0 and incidents["stage_eos_alerts_per_s"] > 0
    low, high = result["spread"]["incidents.stage_eos_alerts_per_s"]
    assert low <= incidents["stage_eos_alerts_per_s"] <= high
    worker_alerts = result["worker_eps"] * result["streams"]["corrected"]["alert_share"]
    assert abs(incidents["worker_alerts_per_s"] - worker_alerts) <= 1
    assert incidents["ratio"] == pytest.approx(incidents["stage_eos_alerts_per_s"] / worker_alerts, abs=0.01)
    latency = incidents["create_latency_ms"]
    assert latency["rate_eps"] == 2_000 and latency["replay_eps"] > 0 and latency["incidents"] > 0
    assert 0 < latency["p50"] <= latency["p99"] < 30_000
    assert incidents["ocsf"]["invalid"] == 0 and incidents["ocsf"]["messages"] >= latency["incidents"]
    measure(
        f"bench incidents: stage {incidents['stage_eos_alerts_per_s']:,} alerts/s = {incidents['ratio']} x "
        f"the worker's {incidents['worker_alerts_per_s']:,} alerts/s; first alert -> create at 2,000 ev/s:"
        f" p50 {latency['p50']} ms p99 {latency['p99']} ms over {latency['incidents']} incidents"
    )
    measure(
        f"bench (6k events, 2 reps): wire {result['wire_limit_eps']:,}, worker {result['worker_eps']:,}, "
        f"eos {result['worker_eos_eps']:,}, naive {result['naive_predict_eps']} ev/s; latency at 2,000 ev/s "
        f"p50 {result['latency_curve'][1]['p50']} ms p99 {result['latency_curve'][1]['p99']} ms; "
        f"profile {result['profile_us_per_event']}; new replica {replica['start_s']} s to first scores, "
        f"RSS {replica['rss_mb']} MB"
    )
