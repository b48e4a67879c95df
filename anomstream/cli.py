"""The ``anomstream`` command line. Each verb parses its options and calls one function elsewhere.

Heavy imports (TensorFlow, pandas) happen inside the verbs that need them, so ``anomstream broker
status`` answers in a fraction of a second.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from stream.settings import STREAMS, Settings

app = typer.Typer(help="Streaming anomaly detection on Kafka.", no_args_is_help=True, add_completion=False)
broker_app = typer.Typer(help="Embedded single-node Kafka (KRaft).", no_args_is_help=True)
topics_app = typer.Typer(help="Topic administration.", no_args_is_help=True)
data_app = typer.Typer(help="Public datasets.", no_args_is_help=True)
replay_app = typer.Typer(help="Replay a dataset into its topic as a live stream.", no_args_is_help=True)
models_app = typer.Typer(help="Model registry.", no_args_is_help=True)
alerts_app = typer.Typer(help="The alerts topic.", no_args_is_help=True)
for sub, name in ((broker_app, "broker"), (topics_app, "topics"), (data_app, "data"), (replay_app, "replay"),
                  (models_app, "models"), (alerts_app, "alerts")):  # fmt: skip
    app.add_typer(sub, name=name)

console = Console(stderr=True)
log = logging.getLogger("anomstream")


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=True)],
    )
    for noisy in ("matplotlib", "absl", "h5py", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def settings() -> Settings:
    return Settings()


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


# -- broker ---------------------------------------------------------------------------------------
PortOpt = Annotated[int | None, typer.Option("--port", help="broker port (default 9092)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="broker state folder")]


@broker_app.command("start")
def broker_start(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Start the embedded broker; prints its bootstrap address once it accepts connections."""
    from stream.broker import BrokerError, EmbeddedBroker

    if not settings().embedded_broker:
        console.print(f"ANOMSTREAM_BOOTSTRAP_SERVERS is set ({settings().bootstrap}): no broker started")
        return
    try:
        print(EmbeddedBroker.for_settings(settings(), port, data_dir).start())
    except BrokerError as exc:
        raise fail(str(exc)) from None


@broker_app.command("stop")
def broker_stop(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop the embedded broker cleanly."""
    from stream.broker import EmbeddedBroker

    stopped = EmbeddedBroker.for_settings(settings(), port, data_dir).stop()
    console.print("broker stopped" if stopped else "broker was not running")


@broker_app.command("status")
def broker_status(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Exit 0 and print the address when the embedded broker runs, else exit 1."""
    from stream.broker import EmbeddedBroker

    broker = EmbeddedBroker.for_settings(settings(), port, data_dir)
    if broker.running():
        print(f"running at {broker.bootstrap} (pid {broker.pid()}, logs {broker.log_file})")
        return
    print("not running")
    raise typer.Exit(1)


# -- topics and data ------------------------------------------------------------------------------
@topics_app.command("create")
def topics_create(
    partitions: Annotated[int | None, typer.Option(help="partitions per topic")] = None,
) -> None:
    """Create every anomstream topic (existing ones are left as they are)."""
    from stream.kafka import BrokerUnavailableError, create_topics, wait_for_broker

    s = settings()
    try:
        wait_for_broker(s, timeout=30)
    except BrokerUnavailableError as exc:
        raise fail(str(exc)) from None
    for topic, status in create_topics(s, partitions).items():
        console.print(f"{topic}: {status}")


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="kdd, ecg or nab")],
    data_dir: Annotated[Path | None, typer.Option(help="target folder (default ANOMSTREAM_DATA_DIR)")] = None,
) -> None:
    """Download a public dataset from its canonical source and verify its sha256."""
    from stream.datasets.fetch import ChecksumError, fetch

    target = data_dir or settings().data_dir

    def show(path: str, done: int, total: int) -> None:
        console.print(f"\r{path}: {done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f}" if total else ""), end="")

    try:
        for path in fetch(name, target, show):
            console.print(f"\n[green]verified[/] {path}")
    except (ChecksumError, KeyError, OSError) as exc:
        raise fail(f"{exc}\nNo network? Copy the files into {target} instead (see README: Data).") from None


# -- replay ---------------------------------------------------------------------------------------
RateOpt = Annotated[float, typer.Option(help="events/s; 0 = as fast as possible")]
LimitOpt = Annotated[int | None, typer.Option(help="stop after this many events")]
LoopOpt = Annotated[bool, typer.Option(help="start over at the end of the data")]


@replay_app.command("kdd")
def replay_kdd(
    file: Annotated[
        str, typer.Option(help="'test' (corrected), 'train' (10%), 'nsl-train' or a path")
    ] = "test",
    rate: RateOpt = 0.0,
    limit: LimitOpt = None,
    loop: LoopOpt = False,
    synthetic: Annotated[bool, typer.Option(help="use the synthetic generator even if data exists")] = False,
) -> None:
    """Replay KDD Cup 99 connections into the kdd.connections topic."""
    from producers.kdd import replay_kdd as replay

    _report_replay(replay(settings(), file, rate, limit, loop, synthetic, announce=console.print))


@replay_app.command("ecg")
def replay_ecg(
    file: Annotated[str, typer.Option(help="'csv' (ecg.csv, 4,998 beats), 'train', 'test' or a path")] = (
        "csv"
    ),
    rate: RateOpt = 0.0,
    limit: LimitOpt = None,
    loop: LoopOpt = False,
    holdout: Annotated[
        bool, typer.Option(help="only the held-out test beats of `train --stream ecg` (same --seed)")
    ] = False,
    seed: int = 0,
) -> None:
    """Replay ECG5000 heartbeats (one 140-sample beat per message) into the ecg.beats topic."""
    from producers.ecg import replay_ecg as replay
    from stream.datasets import DatasetMissingError

    try:
        stats = replay(settings(), file, rate, limit, loop, holdout, seed)
    except (DatasetMissingError, ValueError) as exc:
        raise fail(str(exc)) from None
    _report_replay(stats)


@replay_app.command("sensor")
def replay_sensor(
    series: Annotated[
        str | None, typer.Option(help="NAB series: key, file name or stem, e.g. nyc_taxi")
    ] = None,
    bearing: Annotated[bool, typer.Option(help="the IMS bearing CSV, one sensor id per channel")] = False,
    window: Annotated[int, typer.Option(help="rows per window (the sensor model's window)")] = 16,
    stride: Annotated[int, typer.Option(help="rows between window ends")] = 1,
    speedup: Annotated[
        float | None, typer.Option(help="pace by the series' timestamps, this many times faster")
    ] = None,
    max_gap: Annotated[float, typer.Option(help="longest wait for a gap in the series (s)")] = 10.0,
    rate: Annotated[float, typer.Option(help="fixed events/s instead; 0 = as fast as possible")] = 0.0,
    limit: LimitOpt = None,
    loop: LoopOpt = False,
) -> None:
    """Replay a sensor series as sliding windows (one window per message) into sensor.windows."""
    from producers.sensor import replay_sensor as replay
    from stream.datasets import DatasetMissingError

    try:
        stats = replay(settings(), series, bearing, window, stride, speedup, max_gap, rate, limit, loop)
    except (DatasetMissingError, ValueError) as exc:
        raise fail(str(exc)) from None
    _report_replay(stats)


def _report_replay(stats) -> None:  # noqa: ANN001 - ReplayStats, imported lazily
    from anomstream.views import replay_report

    console.print(replay_report(stats))
    for error in stats.errors:
        console.print(f"[red]{error}[/]")
    if stats.failed:
        raise typer.Exit(1)
    if stats.interrupted:
        raise typer.Exit(130)


# -- models ---------------------------------------------------------------------------------------
# Threshold options shared by `train` and `evaluate`.
ThresholdOpt = Annotated[str, typer.Option(help="threshold kind: quantile, gaussian, fbeta or sliding")]
FprOpt = Annotated[float, typer.Option(help="target false-positive rate (quantile, gaussian)")]
ThresholdParamOpt = Annotated[
    list[str] | None, typer.Option(help="threshold argument KEY=VALUE, e.g. beta=2 or window=5000")
]


@app.command()
def train(
    stream: Annotated[str, typer.Option(help="kdd, ecg or sensor")] = "kdd",
    detector: Annotated[
        str | None, typer.Option(help="detector name (see `anomstream models list`; sensor default seq_ae)")
    ] = None,
    series: Annotated[str | None, typer.Option(help="sensor: NAB series (path, file name or stem)")] = None,
    bearing: Annotated[bool, typer.Option("--bearing", help="sensor: the NASA bearing file")] = False,
    window: Annotated[int, typer.Option(help="sensor: window length (replay with the same --window)")] = 16,
    protocol: Annotated[str, typer.Option(help="KDD feature protocol: full or ffl")] = "full",
    threshold: ThresholdOpt = "quantile",
    fpr: FprOpt = 0.01,
    threshold_param: ThresholdParamOpt = None,
    epochs: Annotated[int | None, typer.Option(help="maximum epochs (deep detectors)")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="detector argument KEY=JSON, e.g. hidden=[32,8]")
    ] = None,
    seed: int = 0,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="do nothing if a production model exists")
    ] = False,
    promote: Annotated[bool | None, typer.Option("--promote/--no-promote", help="make it production")] = None,
) -> None:
    """Train a detector and write a new registry version."""
    from anomstream.options import epoch_override, parse_assignments
    from models.registry import Registry
    from models.training import TrainingRequest
    from models.training import train as train_model
    from stream.datasets import DatasetMissingError

    s = settings()
    registry = Registry(s.registry_dir)
    if if_missing and registry.production(stream) is not None:
        console.print(f"stream {stream} already has a production model: nothing to do")
        return
    try:
        request = TrainingRequest(
            stream=stream, detector=detector, protocol=protocol, series=series, bearing=bearing,
            window=window, threshold=threshold, fpr=fpr, threshold_params=parse_assignments(threshold_param),
            detector_params={**epoch_override(detector or "ae", epochs), **parse_assignments(param)},
            seed=seed,
        )  # fmt: skip
        ref = train_model(registry, s.data_dir, request, promote)
    except (DatasetMissingError, KeyError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"[green]saved[/] {ref.stream}/{ref.detector} v{ref.version} -> {ref.path}")


@app.command()
def evaluate(
    stream: Annotated[str, typer.Option(help="kdd, ecg or sensor (with --benchmark nab)")] = "kdd",
    benchmark: Annotated[
        str | None, typer.Option(help="sensor: nab = all 58 NAB series, scored as NAB does")
    ] = None,
    window: Annotated[int, typer.Option(help="sensor: window length")] = 16,
    protocol: Annotated[
        str | None, typer.Option(help="KDD: ffl (FFL report's protocol) or full (default: ffl)")
    ] = None,
    detectors: Annotated[
        str | None, typer.Option(help="comma-separated detectors (default: all; kdd: all but seq_ae)")
    ] = None,
    out: Annotated[Path, typer.Option(help="folder for metrics.json, report.md and plots")] = Path("eval"),
    threshold: ThresholdOpt = "quantile",
    fpr: FprOpt = 0.01,
    threshold_param: ThresholdParamOpt = None,
    epochs: Annotated[int | None, typer.Option(help="maximum epochs of every deep detector")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="detector argument DETECTOR.KEY=JSON, e.g. ae.hidden=[32,8]")
    ] = None,
    seed: int = 0,
) -> None:
    """Offline evaluation: train, threshold on training data, score the test set; table and plots."""
    from anomstream.options import epoch_override, parse_assignments
    from anomstream.views import evaluation_table, nab_table
    from models.evaluation import run as evaluation
    from stream.datasets import DatasetMissingError

    names = [d.strip() for d in (detectors or "").split(",") if d.strip()]
    if stream == "sensor":
        if benchmark != "nab":
            raise fail("sensor evaluation is the NAB benchmark: add --benchmark nab")
        from models.evaluation.nab.benchmark import SENSOR_DETECTORS, run_benchmark

        result = run_benchmark(settings().data_dir, out, names or SENSOR_DETECTORS, window, seed,
                               progress=console.print)  # fmt: skip
        Console().print(nab_table(result))
        console.print(f"[green]wrote[/] {out / 'nab.json'}, {out / 'report.md'} and plots")
        return
    names = names or evaluation.default_detectors(stream)
    try:
        overrides: dict[str, dict] = {name: epoch_override(name, epochs) for name in names}
        for key, value in parse_assignments(param).items():
            name, _, arg = key.partition(".")
            overrides.setdefault(name, {})[arg] = value
        metrics = evaluation.evaluate(stream, protocol, names, out, settings().data_dir, seed, threshold, fpr,
                                        overrides, parse_assignments(threshold_param), console)  # fmt: skip
    except (DatasetMissingError, KeyError, ValueError) as exc:
        raise fail(str(exc)) from None
    Console().print(evaluation_table(metrics))
    console.print(f"[green]wrote[/] {out / 'metrics.json'}, {out / 'report.md'} and plots")


@models_app.command("list")
def models_list(stream: Annotated[str | None, typer.Option(help="only this stream")] = None) -> None:
    """Every registry version, production ones marked."""
    from anomstream.views import models_table
    from models.detectors import DETECTORS
    from models.registry import Registry

    Console().print(models_table(Registry(settings().registry_dir).list(stream)))
    console.print(f"detectors: {', '.join(sorted(DETECTORS))}")


def _report_promotion(promotion) -> None:  # noqa: ANN001 - consumers.model_updates.Promotion
    update = promotion.update
    console.print(f"production model of {update.stream}: {update.detector} v{update.version}")
    if promotion.announced:
        console.print("announced on model-updates: running workers reload it")
    else:
        console.print("no broker reachable: workers pick the new model up when they next start")


@models_app.command("promote")
def models_promote(stream: str, detector: str, version: int) -> None:
    """Make a version the stream's production model; running workers hot-reload it."""
    from consumers.model_updates import promote
    from models.registry import RegistryError

    try:
        _report_promotion(promote(settings(), stream, detector, version))
    except RegistryError as exc:
        raise fail(str(exc)) from None


@models_app.command("rollback")
def models_rollback(stream: str) -> None:
    """Return the stream to its previous production model."""
    from consumers.model_updates import rollback
    from models.registry import RegistryError

    try:
        _report_promotion(rollback(settings(), stream))
    except RegistryError as exc:
        raise fail(str(exc)) from None


# -- workers and alerts ---------------------------------------------------------------------------
@app.command()
def worker(
    replicas: Annotated[int, typer.Option(help="supervise N local worker processes")] = 1,
    eos: Annotated[bool, typer.Option("--eos", help="exactly-once: each batch in one transaction")] = False,
    streams: Annotated[str, typer.Option(help="comma-separated streams to score")] = ",".join(STREAMS),
    worker_id: Annotated[str | None, typer.Option(help="stable id (transactional id under --eos)")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="serve Prometheus metrics on this port (replica i: port + i)")
    ] = None,
) -> None:
    """Scoring worker: consume, score in batches, publish alerts and scores, commit."""
    from consumers.worker import serve
    from models.registry import RegistryError

    wanted = [x.strip() for x in streams.split(",") if x.strip()]
    try:
        raise typer.Exit(serve(settings(), wanted, replicas, eos, worker_id, metrics_port))
    except RegistryError as exc:
        raise fail(str(exc)) from None


@alerts_app.command("tail")
def alerts_tail(
    stream: Annotated[str | None, typer.Option(help="only alerts of this stream")] = None,
    severity: Annotated[
        str | None, typer.Option(help="minimum severity: low, medium, high, critical")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON alert per line")] = False,
    from_beginning: Annotated[bool, typer.Option(help="start at the oldest alert")] = False,
    limit: Annotated[int | None, typer.Option(help="stop after N alerts")] = None,
) -> None:
    """Follow the alerts topic."""
    from consumers.alerts import tail

    tail(settings(), stream, severity, as_json, from_beginning, limit)


@app.command()
def bench(
    out: Annotated[Path, typer.Option(help="folder for bench.json and latency_curve.png")] = Path(
        "out/bench"
    ),
    events: Annotated[int, typer.Option(help="events for the throughput measurements")] = 200_000,
    repetitions: Annotated[int, typer.Option(min=1, help="repetitions of each figure (median kept)")] = 3,
    latency_seconds: Annotated[float, typer.Option(help="replay duration of each latency point")] = 10.0,
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


# -- the demo -------------------------------------------------------------------------------------
@app.command()
def up(
    rate: Annotated[float, typer.Option(help="replay rate, events/s")] = 5000.0,
    limit: Annotated[int, typer.Option(help="events to replay")] = 300_000,
    replicas: Annotated[int, typer.Option(help="worker processes")] = 1,
    eos: Annotated[bool, typer.Option("--eos", help="exactly-once workers")] = False,
) -> None:
    """The demo: broker, topics, model, workers and a live KDD replay with a running summary."""
    from anomstream.demo import Demo

    raise typer.Exit(
        Demo(settings(), rate=rate, limit=limit, replicas=replicas, eos=eos, console=console).run()
    )


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (docker stop, kill, timeout) unwinds like Ctrl-C, so `finally` blocks stop what was
    # started (brokers, workers). The worker installs its own handler: finish the batch, commit.
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
