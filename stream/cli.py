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
from rich.table import Table

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
def _broker(port: int | None, data_dir: Path | None):  # -> EmbeddedBroker
    from stream.broker import EmbeddedBroker

    s = settings()
    port = port or s.broker_port
    return EmbeddedBroker(data_dir or s.state_dir / f"kafka-{port}", port=port)


PortOpt = Annotated[int | None, typer.Option("--port", help="broker port (default 9092)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="broker state folder")]


@broker_app.command("start")
def broker_start(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Start the embedded broker; prints its bootstrap address once it accepts connections."""
    from stream.broker import BrokerError

    if not settings().embedded_broker:
        console.print(f"ANOMSTREAM_BOOTSTRAP_SERVERS is set ({settings().bootstrap}): no broker started")
        return
    try:
        print(_broker(port, data_dir).start())
    except BrokerError as exc:
        raise fail(str(exc)) from None


@broker_app.command("stop")
def broker_stop(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Stop the embedded broker cleanly."""
    stopped = _broker(port, data_dir).stop()
    console.print("broker stopped" if stopped else "broker was not running")


@broker_app.command("status")
def broker_status(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Exit 0 and print the address when the embedded broker runs, else exit 1."""
    broker = _broker(port, data_dir)
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
@replay_app.command("kdd")
def replay_kdd(
    file: Annotated[
        str, typer.Option(help="'test' (corrected), 'train' (10%), 'nsl-train' or a path")
    ] = "test",
    rate: Annotated[float, typer.Option(help="events/s; 0 = as fast as possible")] = 0.0,
    limit: Annotated[int | None, typer.Option(help="stop after this many events")] = None,
    loop: Annotated[bool, typer.Option(help="start over at the end of the file")] = False,
    synthetic: Annotated[bool, typer.Option(help="use the synthetic generator even if data exists")] = False,
) -> None:
    """Replay KDD Cup 99 connections into the kdd.connections topic."""
    from producers.kdd import kdd_events, load_kdd_replay
    from producers.replay import ReplayProducer

    s = settings()
    frame, source = load_kdd_replay(s.data_dir, file, synthetic, announce=console.print)
    total = limit if limit is not None else (None if loop else len(frame))
    stats = ReplayProducer(s, s.topic("kdd"), rate=rate).run(kdd_events(frame, source, loop, limit), total)
    _report_replay(stats)


@replay_app.command("ecg")
def replay_ecg(
    file: Annotated[str, typer.Option(help="'csv' (ecg.csv, 4,998 beats), 'train', 'test' or a path")] = (
        "csv"
    ),
    rate: Annotated[float, typer.Option(help="events/s; 0 = as fast as possible")] = 0.0,
    limit: Annotated[int | None, typer.Option(help="stop after this many events")] = None,
    loop: Annotated[bool, typer.Option(help="start over at the end of the file")] = False,
    holdout: Annotated[
        bool, typer.Option(help="only the held-out test beats of `train --stream ecg` (same --seed)")
    ] = False,
    seed: int = 0,
) -> None:
    """Replay ECG5000 heartbeats (one 140-sample beat per message) into the ecg.beats topic."""
    from producers.ecg import ecg_events, load_ecg_replay
    from producers.replay import ReplayProducer
    from stream.datasets import DatasetMissingError

    s = settings()
    try:
        beats = load_ecg_replay(s.data_dir, file, holdout, seed)
    except (DatasetMissingError, ValueError) as exc:
        raise fail(str(exc)) from None
    total = limit if limit is not None else (None if loop else len(beats))
    stats = ReplayProducer(s, s.topic("ecg"), rate=rate).run(ecg_events(beats, loop, limit), total, "ecg")
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
    limit: Annotated[int | None, typer.Option(help="stop after this many events")] = None,
    loop: Annotated[bool, typer.Option(help="start over at the end of the series")] = False,
) -> None:
    """Replay a sensor series as sliding windows (one window per message) into sensor.windows."""
    from producers.replay import ReplayProducer
    from producers.sensor import SeriesPacer, event_count, event_end_times, sensor_events
    from stream.datasets import DatasetMissingError
    from stream.datasets.sensor import load_sensor_series
    from stream.windows import WindowSpec

    s = settings()
    if speedup is not None and rate:
        raise fail("pace by --speedup or by --rate, not both")
    try:
        WindowSpec(window, stride)
        chosen = load_sensor_series(s.data_dir, series, bearing)
        pacer = SeriesPacer(event_end_times(chosen, window, stride), speedup, max_gap) if speedup else None
        total = limit if limit is not None else (None if loop else event_count(chosen, window, stride))
        events = sensor_events(chosen, window, stride, loop, limit)
    except (DatasetMissingError, ValueError) as exc:
        raise fail(str(exc)) from None
    producer = ReplayProducer(s, s.topic("sensor"), rate=rate, pacer=pacer)
    _report_replay(producer.run(events, total, ", ".join(item.sensor_id for item in chosen)))


def _report_replay(stats) -> None:  # stats: ReplayStats
    console.print(
        f"sent {stats.sent:,} in {stats.seconds:.1f}s ({stats.rate:,.0f} ev/s); "
        f"delivered {stats.delivered:,}, failed {stats.failed:,}"
        + (" (interrupted)" if stats.interrupted else "")
    )
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
    from models.registry import Registry
    from models.train import epoch_override, parse_assignments, train_ecg, train_kdd
    from models.windowed import train_sensor
    from stream.datasets import DatasetMissingError

    s = settings()
    registry = Registry(s.registry_dir)
    if if_missing and registry.production(stream) is not None:
        console.print(f"stream {stream} already has a production model: nothing to do")
        return
    if stream not in STREAMS:
        raise fail(f"unknown stream {stream!r}: use one of {', '.join(STREAMS)}")
    detector = detector or ("seq_ae" if stream == "sensor" else "ae")
    try:
        params = {**epoch_override(detector, epochs), **parse_assignments(param)}
        t_params = parse_assignments(threshold_param)
        if stream == "sensor":
            if (series is None) == (not bearing):
                raise ValueError("sensor training needs exactly one of --series NAME or --bearing")
            ref = train_sensor(registry, s.data_dir, series, bearing, detector, window, fpr, seed, params,
                               promote, threshold, t_params)  # fmt: skip
        elif stream == "kdd":
            ref = train_kdd(registry, s.data_dir, detector, protocol, fpr, seed, params, promote=promote,
                            threshold=threshold, threshold_params=t_params)  # fmt: skip
        else:
            ref = train_ecg(registry, s.data_dir, detector, fpr, seed, params, promote=promote,
                            threshold=threshold, threshold_params=t_params)  # fmt: skip
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
    from models import evaluate as evaluation
    from models.train import epoch_override, parse_assignments
    from stream.datasets import DatasetMissingError

    if stream == "sensor":
        if benchmark != "nab":
            raise fail("sensor evaluation is the NAB benchmark: add --benchmark nab")
        _evaluate_nab(detectors, out, window, seed)
        return
    names = [d.strip() for d in (detectors or "").split(",") if d.strip()]
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
    table = Table("detector", "ROC AUC", "PR AUC", "precision", "recall", "F1", "F2", "fit s", "score s/10k",
                  title=f"{metrics['stream']} ({metrics['protocol']})")  # fmt: skip
    for name, m in sorted(metrics["detectors"].items(), key=lambda item: -item[1]["roc_auc"]):
        table.add_row(name, *(f"{m[k]:.4f}" for k in ("roc_auc", "pr_auc")),
                      *(f"{m[k]:.3f}" for k in ("precision", "recall", "f1", "f2")),
                      f"{m['fit_seconds']:.1f}", f"{m['score_seconds_per_10k']:.3f}")  # fmt: skip
    Console().print(table)
    console.print(f"[green]wrote[/] {out / 'metrics.json'}, {out / 'report.md'} and plots")


def _evaluate_nab(detectors: str | None, out: Path, window: int, seed: int) -> None:
    from models.nab.benchmark import run_benchmark

    names = tuple(d.strip() for d in (detectors or "seq_ae,ae,hst").split(",") if d.strip())
    result = run_benchmark(settings().data_dir, out, names, window, seed, progress=console.print)
    table = Table(
        "detector", "standard", "low FP", "low FN", title="NAB (normalised score, higher is better)"
    )
    profiles = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
    for name, scores in result["detectors"].items():
        table.add_row(name, *(f"{scores['profiles'][p]['score']:.1f}" for p in profiles))
    Console().print(table)
    console.print(f"[green]wrote[/] {out / 'nab.json'}, {out / 'report.md'} and plots")


@models_app.command("list")
def models_list(stream: Annotated[str | None, typer.Option(help="only this stream")] = None) -> None:
    """Every registry version, production ones marked."""
    from models.registry import Registry
    from models.zoo import DETECTORS

    rows = Registry(settings().registry_dir).list(stream)
    table = Table("stream", "detector", "version", "created", "threshold", "training", "production")
    for m in rows:
        table.add_row(m["stream"], m["detector"], str(m["version"]), m["created_at"][:19],
                      f"{m['threshold']['threshold']:.4g}", str(m["training"].get("data")),
                      "*" if m["is_production"] else "")  # fmt: skip
    Console().print(table)
    console.print(f"detectors: {', '.join(sorted(DETECTORS))}")


@models_app.command("promote")
def models_promote(stream: str, detector: str, version: int) -> None:
    """Make a version the stream's production model; running workers hot-reload it."""
    from consumers.model_updates import announce_promotion
    from models.registry import Registry, RegistryError

    try:
        Registry(settings().registry_dir).promote(stream, detector, version)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    announce_promotion(settings(), stream, detector, version, console)


@models_app.command("rollback")
def models_rollback(stream: str) -> None:
    """Return the stream to its previous production model."""
    from consumers.model_updates import announce_promotion
    from models.registry import Registry, RegistryError

    try:
        alias = Registry(settings().registry_dir).rollback(stream)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    announce_promotion(settings(), stream, alias["detector"], alias["version"], console)


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
    wanted = [x.strip() for x in streams.split(",") if x.strip()]
    if replicas > 1:
        from consumers.supervisor import ReplicaSupervisor

        args = ["--streams", ",".join(wanted)] + (["--eos"] if eos else [])
        raise typer.Exit(ReplicaSupervisor(replicas, args, metrics_port=metrics_port).run())
    from consumers.worker import ScoringWorker
    from models.registry import RegistryError

    try:
        ScoringWorker(settings(), wanted, eos=eos, worker_id=worker_id, metrics_port=metrics_port).run()
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
    out: Annotated[Path, typer.Option(help="folder for bench.json")] = Path("out/bench"),
    events: Annotated[int, typer.Option(help="events for the throughput measurements")] = 200_000,
    latency_seconds: Annotated[float, typer.Option(help="duration of the latency replay")] = 20.0,
    latency_rate: Annotated[
        float | None, typer.Option(help="replay rate for latency (default: a quarter of the worker rate)")
    ] = None,
) -> None:
    """Benchmark: wire limit, worker (at-least-once and exactly-once), naive baseline, latency, memory."""
    from stream.bench import BenchConfig, Benchmark

    config = BenchConfig(events=events, latency_seconds=latency_seconds, latency_rate=latency_rate)
    Benchmark(settings(), config, console).run(out)
    console.print(f"wrote {out / 'bench.json'}")


# -- the demo -------------------------------------------------------------------------------------
@app.command()
def up(
    rate: Annotated[float, typer.Option(help="replay rate, events/s")] = 5000.0,
    limit: Annotated[int, typer.Option(help="events to replay")] = 300_000,
    replicas: Annotated[int, typer.Option(help="worker processes")] = 1,
    eos: Annotated[bool, typer.Option("--eos", help="exactly-once workers")] = False,
) -> None:
    """The demo: broker, topics, model, workers and a live KDD replay with a running summary."""
    from stream.demo import Demo

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
