"""The ``anomstream`` command line. Each verb parses its options and calls one function elsewhere.

Heavy imports (TensorFlow, pandas) happen inside the verbs that need them, so ``anomstream broker
status`` answers in a fraction of a second. Every error a user can cause ends in one line on stderr
(``error: what went wrong: what to do``) and a nonzero exit: 2 for a bad invocation, 1 otherwise; the
traceback only with ``-v``.
"""

from __future__ import annotations

import logging
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from anomstream.options import finite_non_negative, one_of
from stream.errors import AnomstreamError
from stream.settings import STREAMS, Settings, load_settings

app = typer.Typer(
    help="Streaming anomaly detection on Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
broker_app = typer.Typer(help="Embedded single-node Kafka (KRaft).", no_args_is_help=True)
topics_app = typer.Typer(help="Topic administration.", no_args_is_help=True)
data_app = typer.Typer(help="Public datasets, and dataset schemas of your own.", no_args_is_help=True)
replay_app = typer.Typer(
    help="Replay a dataset into its topic as a live stream: a built-in (kdd, ecg, sensor), or any CSV, "
    "Parquet or JSON-lines file: anomstream replay FILE --schema S.",
    no_args_is_help=True,
)
models_app = typer.Typer(help="Model registry.", no_args_is_help=True)
alerts_app = typer.Typer(help="The alerts topic.", no_args_is_help=True)
incidents_app = typer.Typer(
    help="Incidents: alerts grouped into what an analyst acts on.", no_args_is_help=True
)
verdicts_app = typer.Typer(help="Analysts' verdicts on alerts and incidents.", no_args_is_help=True)
for sub, name in ((broker_app, "broker"), (topics_app, "topics"), (data_app, "data"), (replay_app, "replay"),
                  (models_app, "models"), (alerts_app, "alerts"), (incidents_app, "incidents"),
                  (verdicts_app, "verdicts")):  # fmt: skip
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
    return load_settings()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` (one line) and return the Exit to raise."""
    print_error(message)
    return typer.Exit(code)


def print_error(message: str) -> None:
    # Plain print, not rich: a rich console would wrap a long message over several lines.
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


one_stream = one_of(*STREAMS)


# -- broker ---------------------------------------------------------------------------------------
PortOpt = Annotated[int | None, typer.Option("--port", help="broker port (default 9092)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="broker state folder")]


@broker_app.command("start")
def broker_start(port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Start the embedded broker; prints its bootstrap address once it accepts connections."""
    from stream.broker import EmbeddedBroker

    s = settings()
    if not s.embedded_broker:
        raise fail(
            f"ANOMSTREAM_BOOTSTRAP_SERVERS is set ({s.bootstrap}), so anomstream uses that cluster and "
            "starts no broker: unset it to run the embedded one"
        )
    print(EmbeddedBroker.for_settings(s, port, data_dir).start())


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
    if broker.answers():
        # Started with another --data-dir (or by another tool): running, but its files are elsewhere.
        print(f"running at {broker.bootstrap} (not started from {broker.data_dir}: pid and logs unknown)")
        return
    print(f"not running (no broker answers at {broker.bootstrap}; state folder {broker.data_dir})")
    raise typer.Exit(1)


# -- topics and data ------------------------------------------------------------------------------
@topics_app.command("create")
def topics_create(
    partitions: Annotated[
        int | None, typer.Option(help="partitions per topic (1-1000)", min=1, max=1000)
    ] = None,
    schema: Annotated[
        list[str] | None,
        typer.Option("--schema", help="also the input topic of this dataset schema's stream (repeatable)"),
    ] = None,
) -> None:
    """Create every anomstream topic (existing ones are left as they are)."""
    from stream.datasets.schema import load_schema
    from stream.kafka import create_topics, wait_for_broker

    s = settings()
    names = list(dict.fromkeys([*s.all_topics(), *(load_schema(x).input_topic(s) for x in schema or [])]))
    wait_for_broker(s, timeout=30)
    for topic, status in create_topics(s, partitions, names).items():
        console.print(f"{topic}: {status}")


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="kdd, ecg or nab")],
    data_dir: Annotated[Path | None, typer.Option(help="target folder (default ANOMSTREAM_DATA_DIR)")] = None,
) -> None:
    """Download a public dataset from its canonical source and verify its sha256."""
    from stream.datasets.fetch import fetch

    target = data_dir or settings().data_dir

    def show(path: str, done: int, total: int) -> None:
        console.print(f"\r{path}: {done / 1e6:.1f} MB" + (f" of {total / 1e6:.1f}" if total else ""), end="")

    try:
        for path in fetch(name, target, show):
            console.print(f"\n[green]verified[/] {path}")
    except OSError as exc:  # ChecksumError explains itself
        raise fail(
            f"download failed ({exc}): no network? Copy the files into {target} (docs/operations.md: Data)"
        ) from None


@data_app.command("infer")
def data_infer(
    file: Annotated[
        Path, typer.Argument(help="a CSV, Parquet or JSON-lines file (gzip or not)", metavar="FILE")
    ],
    out: Annotated[
        Path | None, typer.Option(help="where to write the draft (default: ./<stem>.schema.toml)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="the stream's name (default: from the file name)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing --out file")] = False,
) -> None:
    """Write a draft dataset schema of FILE, guessed from its first rows, and print it for you to check."""
    import re

    from stream.atomic import atomic_write
    from stream.datasets.infer import infer_schema
    from stream.datasets.schema import NAME_PATTERN, RESERVED_NAMES, to_toml

    if name is not None and (not re.match(NAME_PATTERN, name) or name in RESERVED_NAMES):
        raise fail(f"--name {name!r}: a stream name is 1-48 lowercase letters, digits, - or _, and not a "
                   "reserved topic name (alerts, scores, ...)")  # fmt: skip
    stem = Path(file.name.removesuffix(".gz")).stem
    target = out if out is not None else Path(f"{stem}.schema.toml")
    if target.exists() and not force:
        raise fail(f"{target} exists: give another --out, or --force to overwrite it")
    if not target.parent.is_dir():
        raise fail(f"{target.parent} is not a folder: give an --out path in an existing folder")
    schema, notes = infer_schema(file, name, schema_dir=target.parent)
    text = to_toml(schema, notes)
    with atomic_write(target, "w") as handle:
        handle.write(text)
    print(text, end="")
    console.print(
        f"wrote {target}: a draft guessed from the first rows. Check every guess (numeric or categorical, "
        f"the label's normal value(s), the time format), then: anomstream replay {file} --schema {target}",
        soft_wrap=True,  # one line: the command at its end is copied whole
    )


# -- replay ---------------------------------------------------------------------------------------
RateOpt = Annotated[
    float, typer.Option(help="events/s; 0 = as fast as possible", callback=finite_non_negative)
]
LimitOpt = Annotated[int | None, typer.Option(help="stop after this many events", min=1)]
LoopOpt = Annotated[bool, typer.Option(help="start over at the end of the data")]
DriftAtOpt = Annotated[
    int, typer.Option("--drift-at", help="event index of the change (the first changed event)")
]
DriftSpanOpt = Annotated[
    int, typer.Option("--drift-span", help="events over which the change unfolds (gradual; sensor: a ramp)")
]


def _drift_spec(stream: str, scenario: str, at: int, span: int, loop: bool):  # noqa: ANN202 - DriftSpec
    from producers.drift import SCENARIOS, DriftSpec

    if loop:
        raise fail("--drift replays one pass with a single change: drop --loop")
    if stream not in SCENARIOS:
        raise fail(f"--drift changes records or series; this schema is {stream} (rows of samples)")
    try:
        return DriftSpec(scenario, at, span).check(stream)
    except ValueError as exc:
        raise fail(str(exc)) from None


@replay_app.command("kdd")
def replay_kdd(
    file: Annotated[
        str, typer.Option(help="'test' (corrected), 'train' (10%), 'nsl-train' or a path")
    ] = "test",
    rate: RateOpt = 0.0,
    limit: LimitOpt = None,
    loop: LoopOpt = False,
    synthetic: Annotated[bool, typer.Option(help="use the synthetic generator even if data exists")] = False,
    drift: Annotated[
        str | None,
        typer.Option(
            help="drift scenario: abrupt (10% normal, then corrected), gradual (a growing mix), shift (then "
            "NSL-KDD's normal traffic) or shift-attacks (then NSL-KDD with its attacks)"
        ),
    ] = None,
    drift_at: DriftAtOpt = 50_000,
    drift_span: DriftSpanOpt = 0,
) -> None:
    """Replay KDD Cup 99 connections into the kdd.connections topic (with --drift: a known change
    point, marked in each event's drift.phase header)."""
    if drift is not None:
        from producers.drift import replay_kdd_drift
        from stream.datasets import DatasetMissingError

        spec = _drift_spec("kdd", drift, drift_at, drift_span, loop)
        if file != "test" or synthetic:
            raise fail(
                "--drift replays its own files (the 10% file's normal traffic, then corrected or NSL-KDD): "
                "drop --file"
            )
        try:
            stats = replay_kdd_drift(settings(), spec, rate, limit)
        except (DatasetMissingError, ValueError) as exc:
            raise fail(str(exc)) from None
        _report_replay(stats)
        return
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

    _report_replay(replay(settings(), file, rate, limit, loop, holdout, seed))


@replay_app.command("sensor")
def replay_sensor(
    series: Annotated[
        str | None, typer.Option(help="NAB series: key, file name or stem, e.g. nyc_taxi")
    ] = None,
    bearing: Annotated[bool, typer.Option(help="the IMS bearing CSV, one sensor id per channel")] = False,
    window: Annotated[int, typer.Option(help="rows per window (the sensor model's window)", min=2)] = 16,
    stride: Annotated[int, typer.Option(help="rows between window ends", min=1)] = 1,
    speedup: Annotated[
        float | None, typer.Option(help="pace by the series' timestamps, this many times faster", min=0.001)
    ] = None,
    max_gap: Annotated[
        float, typer.Option(help="longest wait for a gap in the series (s)", callback=finite_non_negative)
    ] = 10.0,
    rate: Annotated[
        float,
        typer.Option(help="fixed events/s instead; 0 = as fast as possible", callback=finite_non_negative),
    ] = 0.0,
    limit: LimitOpt = None,
    loop: LoopOpt = False,
    drift: Annotated[
        str | None, typer.Option(help="drift scenario: level (shift by 3 std) or variance (deviations x3)")
    ] = None,
    drift_at: DriftAtOpt = 1_000,
    drift_span: DriftSpanOpt = 0,
) -> None:
    """Replay a sensor series as sliding windows (one window per message) into sensor.windows (with
    --drift: a level or variance shift from event --drift-at on, marked in the drift.phase header)."""
    from producers.sensor import replay_sensor as replay

    if drift is not None:
        from producers.drift import replay_sensor_drift

        spec = _drift_spec("sensor", drift, drift_at, drift_span, loop)
        if speedup is not None:
            raise fail("--drift paces by --rate only: drop --speedup")
        stats = replay_sensor_drift(settings(), spec, series, bearing, window, stride, rate, limit)
    else:
        stats = replay(settings(), series, bearing, window, stride, speedup, max_gap, rate, limit, loop)
    _report_replay(stats)


@replay_app.command("file")
def replay_file(
    file: Annotated[
        str, typer.Argument(help="a CSV, Parquet or JSON-lines file (gzip or not)", metavar="FILE")
    ],
    schema: Annotated[
        str | None,
        typer.Option(
            help="its dataset schema: a TOML file (`anomstream data infer FILE` drafts one) or a "
            "built-in name: kdd99, nslkdd, ecg5000, ecg5000-ucr, nab, bearing"
        ),
    ] = None,  # fmt: skip
    rate: RateOpt = 0.0,
    limit: LimitOpt = None,
    loop: LoopOpt = False,
    speedup: Annotated[
        float | None, typer.Option(help="pace by the rows' timestamps, this many times faster", min=0.001)
    ] = None,
    max_gap: Annotated[
        float, typer.Option(help="longest wait for a gap in the timestamps (s)", callback=finite_non_negative)
    ] = 10.0,
    window: Annotated[
        int | None, typer.Option(help="series: rows per window (default: the schema's)", min=2)
    ] = None,
    stride: Annotated[int | None, typer.Option(help="series: rows between window ends", min=1)] = None,
    drift: Annotated[
        str | None,
        typer.Option(
            help="drift scenario (records and series schemas): level (shift by 3 std) or variance "
            "(deviations x3)"
        ),
    ] = None,  # fmt: skip
    drift_at: Annotated[
        int | None, typer.Option("--drift-at", help="event index of the change (the first changed event)")
    ] = None,
    drift_span: DriftSpanOpt = 0,
) -> None:
    """Replay any CSV, Parquet or JSON-lines file described by a dataset schema into the schema's topic
    (created if missing): anomstream replay FILE --schema S."""
    from producers.table import ReplayOptions, replay_table
    from stream.datasets.schema import load_schema

    if schema is None:
        raise fail(f"which columns are what? Give --schema S; draft one with `anomstream data infer {file}`")
    chosen = load_schema(schema)
    spec = None
    if drift is not None:
        if drift_at is None:
            raise fail("--drift needs --drift-at N: the index of the first changed event")
        spec = _drift_spec(chosen.kind, drift, drift_at, drift_span, loop)
    options = ReplayOptions(rate, limit, loop, speedup, max_gap, window, stride, spec)
    _report_replay(replay_table(settings(), chosen, file, options))


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
    stream: Annotated[
        str | None, typer.Option(help="kdd (default), ecg or sensor", callback=one_stream)
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option(
            help="a dataset schema (TOML file or built-in name): train on its stream, saved under its name"
        ),
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="with --schema: the data file (default: the schema's [source] path)")
    ] = None,
    training_rows: Annotated[
        int | None,
        typer.Option(
            help="with --schema (or sensor): train on the file's first N rows only, replay the rest", min=1
        ),
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(help="detector name (see `anomstream models list`; default ae, sensor series seq_ae)"),
    ] = None,
    series: Annotated[str | None, typer.Option(help="sensor: NAB series (path, file name or stem)")] = None,
    bearing: Annotated[bool, typer.Option("--bearing", help="sensor: the NASA bearing file")] = False,
    window: Annotated[
        int | None,
        typer.Option(
            help="sensor: window length, default 16 (replay with the same --window); a schema sets its own"
        ),
    ] = None,
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
    """Train a detector and write a new registry version: a built-in stream (--stream) on its dataset,
    or any file a dataset schema describes (--schema S [--file F]), under the schema's name."""
    from dataclasses import replace
    from typing import Any

    from anomstream.options import epoch_override, parse_assignments
    from models.registry import open_registry
    from models.training import TrainingRequest
    from models.training import train as train_model
    from stream.datasets.schema import load_schema

    if epochs is not None and epochs < 1:
        raise fail(f"--epochs must be at least 1, got {epochs}: nothing was trained or saved")
    if schema is not None and stream is not None:
        raise typer.BadParameter("--stream and --schema both name the stream: give one (a schema's stream is "
                                 "its name)", param_hint="'--schema'")  # fmt: skip
    if schema is None and file is not None:
        raise typer.BadParameter("--file is read through a dataset schema: give --schema S too",
                                 param_hint="'--file'")  # fmt: skip
    if schema is not None and (series is not None or bearing):
        raise typer.BadParameter("--series and --bearing pick the built-in sensor data: drop them with "
                                 "--schema", param_hint="'--schema'")  # fmt: skip
    loaded = load_schema(schema) if schema is not None else None
    name = loaded.name if loaded is not None else stream or "kdd"
    s = settings()
    registry = open_registry(s)
    try:
        if if_missing and registry.production(name) is not None:
            console.print(f"stream {name} already has a production model: nothing to do")
            return
        values: dict[str, Any] = dict(
            detector=detector, protocol=protocol, series=series, bearing=bearing, training_rows=training_rows,
            threshold=threshold, fpr=fpr, threshold_params=parse_assignments(threshold_param), seed=seed,
            **({"window": window} if window is not None else {}),
        )  # fmt: skip
        if loaded is not None:
            request = TrainingRequest.for_schema(loaded, file=str(file) if file else None, **values)
        else:
            request = TrainingRequest(stream=name, **values)
        overrides = {**epoch_override(request.detector_name, epochs), **parse_assignments(param)}
        request = replace(request, detector_params=overrides)
        ref = train_model(registry, s.data_dir, request, promote)
    except KeyError as exc:  # an unknown detector name
        raise fail(str(exc.args[0])) from None
    console.print(f"[green]saved[/] {ref.stream}/{ref.detector} v{ref.version} -> {ref.path}")


@app.command()
def evaluate(
    stream: Annotated[
        str, typer.Option(help="kdd, ecg or sensor (with --benchmark nab)", callback=one_stream)
    ] = "kdd",
    benchmark: Annotated[
        str | None, typer.Option(help="sensor: nab = all 58 NAB series, scored as NAB does")
    ] = None,
    window: Annotated[int, typer.Option(help="sensor: window length")] = 16,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="KDD: ffl (FFL report's protocol), full, or stream (the 10% file in order, drift loop)"
        ),
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
    warmup: Annotated[
        int, typer.Option(help="stream protocol: connections the initial model learns from, labels unread")
    ] = 5_000,
    limit: Annotated[int | None, typer.Option(help="stream protocol: only this many connections")] = None,
) -> None:
    """Offline evaluation: train, threshold on training data, score the test set; table and plots."""
    from anomstream.options import epoch_override, parse_assignments
    from anomstream.views import evaluation_table, nab_table
    from models.evaluation import run as evaluation

    names = [d.strip() for d in (detectors or "").split(",") if d.strip()]
    if stream == "sensor":
        if benchmark != "nab":
            raise fail("sensor evaluation is the NAB benchmark: add --benchmark nab")
        from models.evaluation.nab.benchmark import SENSOR_DETECTORS, run_benchmark

        params: dict[str, dict] = {}
        for key, value in parse_assignments(param).items():  # e.g. context.likelihood=false (ablations)
            name, _, arg = key.partition(".")
            params.setdefault(name, {})[arg] = value
        result = run_benchmark(settings().data_dir, out, names or SENSOR_DETECTORS, window, seed,
                               params=params, progress=console.print)  # fmt: skip
        Console().print(nab_table(result))
        console.print(f"[green]wrote[/] {out / 'nab.json'}, {out / 'report.md'} and plots")
        return
    if stream == "kdd" and protocol == "stream":
        _evaluate_stream(out, names, warmup, limit, epochs, seed)
        return
    names = names or evaluation.default_detectors(stream)
    try:
        overrides: dict[str, dict] = {name: epoch_override(name, epochs) for name in names}
        for key, value in parse_assignments(param).items():
            name, _, arg = key.partition(".")
            overrides.setdefault(name, {})[arg] = value
        metrics = evaluation.evaluate(stream, protocol, names, out, settings().data_dir, seed, threshold, fpr,
                                        overrides, parse_assignments(threshold_param), console)  # fmt: skip
    except KeyError as exc:  # an unknown detector name
        raise fail(str(exc.args[0])) from None
    Console().print(evaluation_table(metrics))
    console.print(f"[green]wrote[/] {out / 'metrics.json'}, {out / 'report.md'} and plots")


def _evaluate_stream(
    out: Path, names: list[str], warmup: int, limit: int | None, epochs: int | None, seed: int
) -> None:
    from anomstream.options import epoch_override
    from anomstream.views import evaluation_table
    from models.evaluation.stream_report import write_stream_report
    from models.evaluation.streaming import StreamProtocol, evaluate_stream
    from stream.datasets import DatasetMissingError

    if len(names) > 1:
        raise fail("the stream protocol runs one detector: give --detectors NAME")
    detector = names[0] if names else "ae"
    if epochs is not None and epochs < 1:
        raise fail(f"--epochs must be at least 1, got {epochs}")
    try:
        protocol = StreamProtocol(
            detector, warmup, limit, overrides=epoch_override(detector, epochs), seed=seed
        )
        figures = evaluate_stream(settings().data_dir, protocol, progress=console.print)
    except (DatasetMissingError, KeyError, ValueError) as exc:
        raise fail(str(exc)) from None
    write_stream_report(out, figures)
    Console().print(evaluation_table(figures["metrics"]))
    console.print(f"[green]wrote[/] {out / 'metrics.json'}, {out / 'report.md'} and {out / 'stream.png'}")


@models_app.command("list")
def models_list(stream: Annotated[str | None, typer.Option(help="only this stream")] = None) -> None:
    """Every registry version with its status (production, candidate, rejected, retired), why, and a
    retrained candidate's shadow evaluation."""
    from anomstream.views import models_table
    from models.detectors import DETECTORS
    from models.registry import RegistryError, open_registry

    try:
        rows = open_registry(settings()).list(stream)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    Console().print(models_table(rows))
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

    _report_promotion(promote(settings(), stream, detector, version))


@models_app.command("rollback")
def models_rollback(stream: str) -> None:
    """Return the stream to its previous production model (verified first); the version rolled back
    from becomes `rejected`. Running workers reload the production alias."""
    from consumers.model_updates import rollback

    _report_promotion(rollback(settings(), stream))


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


@alerts_app.command("tail")
def alerts_tail(
    stream: Annotated[str | None, typer.Option(help="only alerts of this stream")] = None,
    severity: Annotated[
        str | None,
        typer.Option(
            help="minimum severity: low, medium, high, critical",
            callback=one_of("low", "medium", "high", "critical"),
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON alert per line")] = False,
    from_beginning: Annotated[bool, typer.Option(help="start at the oldest alert")] = False,
    limit: Annotated[int | None, typer.Option(help="stop after N alerts", min=1)] = None,
) -> None:
    """Follow the alerts topic."""
    from consumers.alerts import tail
    from stream.kafka import wait_for_broker

    s = settings()
    wait_for_broker(s, timeout=10)
    tail(s, stream, severity, as_json, from_beginning, limit)


@alerts_app.command("verdict")
def alerts_verdict(
    alert_id: Annotated[str, typer.Argument(help="the alert's alert_id (alerts tail --json shows it)")],
    verdict: Annotated[str, typer.Argument(help="benign (normal traffic: may be learnt) or malicious")],
    reason: Annotated[str, typer.Option(help="why, for the audit trail")] = "",
    by: Annotated[str | None, typer.Option(help="the analyst (default: $USER, else 'cli')")] = None,
) -> None:
    """An analyst's verdict on an alert, published on the feedback topic (the retrain learns benign
    events, never malicious ones)."""
    import os

    from consumers.verdicts import check_verdict, give_verdict
    from stream.kafka import wait_for_broker

    analyst = by if by is not None else os.environ.get("USER") or "cli"
    check_verdict(verdict, analyst, reason, alert_id)
    s = settings()
    wait_for_broker(s, timeout=10)
    given = give_verdict(s, alert_id, verdict, analyst, reason)
    model = f"{given.detector} v{given.model_version}"
    where = f"{given.source.topic}[{given.source.partition}]@{given.source.offset}"
    print(f"{given.verdict} on alert {given.alert_id} ({given.stream}, {model}, {where}) by {given.by} "
          f"at {given.given_at}: published on {s.topic('feedback')}")  # fmt: skip


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


@incidents_app.command("list")
def incidents_list(
    stream: Annotated[str | None, typer.Option(help="only incidents of this stream")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="only incidents not closed yet")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON incident per line")] = False,
) -> None:
    """The incidents' current state: the latest message of each incident."""
    from consumers.incidents.listing import read_incidents
    from stream.kafka import wait_for_broker
    from stream.messages import encode

    s = settings()
    wait_for_broker(s, timeout=10)
    found = read_incidents(s, stream, open_only)
    if as_json:
        for incident in found:
            sys.stdout.write(encode(incident).decode() + "\n")
        return
    from anomstream.incident_views import incidents_table

    Console().print(incidents_table(found))


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


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (docker stop, kill, timeout) unwinds like Ctrl-C, so `finally` blocks stop what was
    # started (brokers, workers). The worker installs its own handler: finish the batch, commit.
    raise KeyboardInterrupt


def _is_usage_error(exc: Exception) -> bool:
    # typer ships its own copy of click, so click.UsageError is not the class it raises.
    return hasattr(exc, "format_message") and getattr(exc, "exit_code", None) == 2


def _replay_file_form(args: list[str], verb_at: int) -> list[str]:
    """``replay FILE ...`` is ``replay file FILE ...``: the word after ``replay`` that is neither a
    replay subcommand (kdd, ecg, sensor, file) nor an option is a file.

    >>> _replay_file_form(["replay", "weather.csv", "--schema", "w.toml"], 0)
    ['replay', 'file', 'weather.csv', '--schema', 'w.toml']
    >>> _replay_file_form(["replay", "kdd", "--limit", "5"], 0)
    ['replay', 'kdd', '--limit', '5']
    """
    at = verb_at + 1
    if verb_at >= len(args) or args[verb_at] != "replay" or at >= len(args) or args[at].startswith("-"):
        return args
    if args[at] in {command.name for command in replay_app.registered_commands}:
        return args
    return [*args[:at], "file", *args[at:]]


def main(argv: list[str] | None = None) -> None:
    """Run the command line; every failure ends here as one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    verb_at = next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))
    verbose = any(a in ("-v", "--verbose") for a in args[:verb_at])  # the global option, before the verb
    args = _replay_file_form(args, verb_at)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = app(args=args, prog_name="anomstream", standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        console.print("interrupted")
        sys.exit(130)
    except AnomstreamError as exc:
        if verbose:
            traceback.print_exc()
        print_error(str(exc))
        sys.exit(getattr(exc, "exit_code", 1))  # 75: a stuck Kafka call, restart me
    except Exception as exc:
        if _is_usage_error(exc):  # a bad option, value or verb (typer's click raises these)
            where = getattr(getattr(exc, "ctx", None), "command_path", "anomstream")
            print_error(f"{exc.format_message()} (see `{where} --help`)")  # type: ignore[attr-defined]
            sys.exit(2)
        # A bug, or a failure anomstream does not know how to explain.
        if verbose:
            traceback.print_exc()
        detail = str(exc) or type(exc).__name__
        print_error(f"{type(exc).__name__}: {detail} (run with -v for the traceback)")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
