"""The long-running processes: ``worker``, ``drift``, ``incidents run``, ``dashboard``, ``bench`` and the
demo (``up``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anomstream.commands.common import (
    app,
    console,
    fail,
    incidents_app,
    settings,
)
from anomstream.options import finite_non_negative
from stream.settings import STREAMS, Settings


# -- workers and alerts ---------------------------------------------------------------------------
def _unknown_streams(s: Settings, names: list[str]) -> list[str]:
    """Of ``names``, those neither built in nor holding a production model (a dataset schema's stream)."""
    from models.registry import open_registry

    registry = open_registry(s)
    return sorted(n for n in set(names) - set(STREAMS) if registry.production(n) is None)


@app.command()
def worker(
    replicas: Annotated[int, typer.Option(help="supervise N local worker processes", min=1, max=64)] = 1,
    eos: Annotated[bool, typer.Option("--eos", help="exactly-once: each batch in one transaction")] = False,
    streams: Annotated[
        str | None,
        typer.Option(help="comma-separated streams to score (default: kdd,ecg,sensor; none with --schema)"),
    ] = None,
    schema: Annotated[
        list[str] | None,
        typer.Option(
            "--schema", help="also score this dataset schema's stream (file or built-in name; repeatable)"
        ),
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(help="with one --schema: read its stream from this topic (one your producers fill)"),
    ] = None,
    worker_id: Annotated[str | None, typer.Option(help="stable id (transactional id under --eos)")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="serve Prometheus metrics on this port (replica i: port + i)")
    ] = None,
) -> None:
    """Scoring worker: consume, score in batches, publish alerts and scores, commit."""
    from consumers.worker import serve

    if topic is not None and len(schema or []) != 1:
        raise typer.BadParameter(
            "--topic is the topic of one --schema: give exactly one", param_hint="'--topic'"
        )
    default = "" if schema else ",".join(STREAMS)
    wanted = [x.strip() for x in (default if streams is None else streams).split(",") if x.strip()]
    s = settings()
    unknown = _unknown_streams(s, wanted)
    if unknown or not (wanted or schema):
        raise typer.BadParameter(
            f"unknown stream(s) {', '.join(unknown)}: use {', '.join(STREAMS)}, a stream with a production "
            "model, or --schema S",
            param_hint="'--streams'",
        )
    raise typer.Exit(serve(s, wanted, replicas, eos, worker_id, metrics_port, schema or [], topic))


# -- drift ----------------------------------------------------------------------------------------
@app.command()
def drift(
    stream: Annotated[
        list[str] | None, typer.Option("--stream", help="watch only this stream (repeatable; default: all)")
    ] = None,
    detector: Annotated[
        str | None, typer.Option(help="adwin (default), kswin or page_hinkley; ANOMSTREAM_DRIFT__DETECTOR")
    ] = None,
    retrain: Annotated[bool, typer.Option("--retrain", help="retrain, shadow-evaluate, promote on drift")] = (
        False
    ),
    metrics_port: Annotated[
        int | None, typer.Option(help="serve /metrics, /healthz and /readyz on this port")
    ] = None,
    instance_id: Annotated[
        str | None, typer.Option(help="stable id of this monitor: names its checkpoint (default: host name)")
    ] = None,
) -> None:
    """Drift monitor: calibrated detectors on every watched stream's scores; events on drift-events."""
    from consumers.drift.monitor import serve
    from stream.kafka import wait_for_broker

    s = settings()
    unknown = _unknown_streams(s, stream or [])
    if unknown:
        raise typer.BadParameter(
            f"unknown stream {', '.join(unknown)}: choose from {', '.join(STREAMS)}, or a dataset schema's "
            "stream with a production model (anomstream train --schema S)",
            param_hint="'--stream'",
        )
    wait_for_broker(s, timeout=30)
    raise typer.Exit(serve(s, stream or None, detector, retrain, metrics_port, instance_id))


# -- incidents ------------------------------------------------------------------------------------
@incidents_app.command("run")
def incidents_run(
    replicas: Annotated[int, typer.Option(help="supervise N local stage processes", min=1, max=64)] = 1,
    eos: Annotated[bool, typer.Option("--eos", help="exactly-once: each batch in one transaction")] = False,
    worker_id: Annotated[str | None, typer.Option(help="stable id (transactional id under --eos)")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="serve /metrics, /healthz and /readyz on this port (replica i: port + i)"),
    ] = None,
) -> None:
    """The incident stage: group the alerts topic into incidents (OCSF Detection Findings)."""
    from consumers.incidents.stage import serve

    raise typer.Exit(serve(settings(), replicas, eos, worker_id, metrics_port))


@app.command()
def bench(
    out: Annotated[Path, typer.Option(help="folder for bench.json and latency_curve.png")] = Path(
        "out/bench"
    ),
    events: Annotated[int, typer.Option(help="events for the throughput measurements", min=1000)] = 200_000,
    repetitions: Annotated[int, typer.Option(min=1, help="repetitions of each figure (median kept)")] = 3,
    latency_seconds: Annotated[
        float, typer.Option(help="replay duration of each latency point", min=1.0)
    ] = 10.0,
    latency_rate: Annotated[
        float | None, typer.Option(help="one latency point at this rate instead of the curve")
    ] = None,
    soak: Annotated[bool, typer.Option("--soak", help="also replay 2,000,000 events: RSS growth")] = False,
    profile: Annotated[bool, typer.Option("--profile", help="also profile the worker's stages")] = False,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="only the model call per batch size, on the backend's device")
    ] = False,
) -> None:
    """Benchmark: wire limit, workers (at-least-once, exactly-once), naive baseline, latency curve, memory."""
    from anomstream.bench import BenchConfig, Benchmark, run_sweep

    if sweep:
        run_sweep(settings(), out, console)
        console.print(f"wrote {out / 'sweep.json'}")
        return
    config = BenchConfig(
        events=events,
        repetitions=repetitions,
        latency_seconds=latency_seconds,
        latency_rate=latency_rate,
        soak_events=2_000_000 if soak else 0,
        profile_events=50_000 if profile else 0,
    )
    Benchmark(settings(), config, console).run(out)
    console.print(f"wrote {out / 'bench.json'} and {out / 'latency_curve.png'}")


# -- the dashboard --------------------------------------------------------------------------------
@app.command()
def dashboard(
    port: Annotated[int, typer.Option(help="web port (also /metrics, /healthz, /readyz)")] = 8050,
    host: Annotated[str, typer.Option(help="address to bind; 0.0.0.0 exposes it to the network")] = (
        "127.0.0.1"
    ),
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="aggregate the scores and alerts topics from their start")
    ] = False,
    schema: Annotated[
        list[str] | None,
        typer.Option(
            help="also show this dataset schema's stream with its lag (repeatable; file or built-in)"
        ),
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="the input topic of the one --schema, when not the one it names")
    ] = None,
) -> None:
    """Live web dashboard: throughput, lag, scores, alerts, precision/recall and the drift timeline."""
    from anomstream.dashboard import DashboardError, serve
    from stream.datasets.schema import load_schema

    s = settings()
    schemas = [load_schema(where) for where in schema or []]
    if topic is not None and len(schemas) != 1:
        raise fail(f"--topic names the input topic of one --schema, got {len(schemas)} schemas")
    inputs = {x.name: topic or x.input_topic(s) for x in schemas}
    try:
        serve(s, host, port, from_beginning, announce=console.print, inputs=inputs)
    except DashboardError as exc:
        raise fail(str(exc)) from None


# -- the demo -------------------------------------------------------------------------------------
@app.command()
def up(
    rate: Annotated[float, typer.Option(help="replay rate, events/s", callback=finite_non_negative)] = 5000.0,
    limit: Annotated[int, typer.Option(help="events to replay", min=1)] = 300_000,
    replicas: Annotated[int, typer.Option(help="worker processes", min=1, max=64)] = 1,
    eos: Annotated[bool, typer.Option("--eos", help="exactly-once workers")] = False,
    broker_port: Annotated[
        int | None, typer.Option(help="port of the embedded broker (default 9092)", min=1, max=65535)
    ] = None,
) -> None:
    """The demo: broker, topics, model, workers and a live KDD replay with a running summary."""
    from anomstream.demo import Demo

    s = settings()
    if broker_port is not None:
        s = s.model_copy(update={"broker_port": broker_port})
    raise typer.Exit(Demo(s, rate=rate, limit=limit, replicas=replicas, eos=eos, console=console).run())
