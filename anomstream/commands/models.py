"""``anomstream train``, ``evaluate`` and ``models``: training, measuring, the registry's verbs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from anomstream.commands.common import (
    app,
    console,
    fail,
    models_app,
    one_stream,
    settings,
)

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
    from models.training.train import training_report

    for line in training_report(registry, ref):  # the rows used; in production, or how to promote
        console.print(line, soft_wrap=True, highlight=False, markup=False)


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
    schema: Annotated[
        str | None, typer.Option(help="a dataset schema (TOML file or built-in name) of labelled --file(s)")
    ] = None,
    file: Annotated[
        list[Path] | None, typer.Option(help="with --schema: a labelled file; one model per file")
    ] = None,
    training_rows: Annotated[
        int | None, typer.Option(help="with --schema: train on each file's first N rows", min=1)
    ] = None,
    training_share: Annotated[
        float | None, typer.Option(help="with --schema: train on this share of each file (default 0.3)")
    ] = None,
    baselines: Annotated[
        str | None,
        typer.Option(
            help="sensor/series: comma-separated baselines (rolling_zscore,mp_discord,window_pca; "
            "'none': no baseline)"
        ),  # fmt: skip
    ] = None,
) -> None:
    """Offline evaluation: train, threshold on training data, score the test set; table and plots.
    With --schema S --file F: one model per labelled file of one's own, trained on its first rows."""
    from anomstream.options import epoch_override, parse_assignments
    from anomstream.views import evaluation_table, nab_table
    from models.evaluation import run as evaluation

    names = [d.strip() for d in (detectors or "").split(",") if d.strip()]
    if schema is not None or file:
        _evaluate_files(schema, file or [], names, out, training_rows, training_share, baselines, param, seed,
                        fpr)  # fmt: skip
        return
    if stream == "sensor":
        if benchmark not in ("nab", "telemanom"):
            raise fail("sensor evaluation is a benchmark: add --benchmark nab or --benchmark telemanom")
        from models.evaluation.nab.benchmark import SENSOR_DETECTORS, run_benchmark

        params: dict[str, dict] = {}
        for key, value in parse_assignments(param).items():  # e.g. context.likelihood=false (ablations)
            name, _, arg = key.partition(".")
            params.setdefault(name, {})[arg] = value
        chosen_baselines = _baseline_names(baselines)
        if benchmark == "telemanom":
            _evaluate_telemanom(out, names, chosen_baselines, window, seed, params)
            return
        result = run_benchmark(settings().data_dir, out, [*(names or SENSOR_DETECTORS), *chosen_baselines],
                               window, seed, params=params, progress=console.print)  # fmt: skip
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


def _baseline_names(baselines: str | None) -> list[str]:
    from models.evaluation.baselines import BASELINES

    if baselines is None:
        return list(BASELINES)
    chosen = [b.strip() for b in baselines.split(",") if b.strip() and b.strip() != "none"]
    unknown = [b for b in chosen if b not in BASELINES]
    if unknown:
        raise fail(f"unknown baseline(s) {', '.join(unknown)}: use {', '.join(BASELINES)} or none")
    return chosen


def _evaluate_telemanom(
    out: Path, names: list[str], baselines: list[str], window: int, seed: int, params: dict[str, dict]
) -> None:
    from anomstream.views import series_table
    from models.evaluation.telemanom import DEFAULT_DETECTOR, run_telemanom
    from stream.datasets import DatasetMissingError

    try:
        result = run_telemanom(settings().data_dir, out, names or [DEFAULT_DETECTOR], baselines,
                               window=window, seed=seed, params=params, progress=console.print)  # fmt: skip
    except (DatasetMissingError, KeyError) as exc:
        raise fail(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from None
    Console().print(series_table(result["detectors"]))
    console.print(f"[green]wrote[/] {out / 'telemanom.json'}, {out / 'metrics.json'}, {out / 'report.md'}")


def _evaluate_files(
    schema: str | None,
    files: list[Path],
    names: list[str],
    out: Path,
    training_rows: int | None,
    training_share: float | None,
    baselines: str | None,
    param: list[str] | None,
    seed: int,
    fpr: float,
) -> None:
    from anomstream.options import parse_assignments
    from anomstream.views import series_table
    from models.evaluation.own_data import evaluate_files
    from stream.datasets import DatasetFormatError, DatasetMissingError
    from stream.datasets.schema import load_schema
    from stream.errors import ConfigurationError

    if schema is None:
        raise fail("--file is read through a dataset schema: give --schema S too")
    loaded = load_schema(schema)
    if loaded.kind == "series":
        default = ["context"]
        chosen = _baseline_names(baselines)
    else:
        default, chosen = ["ae"], []
    params: dict[str, dict] = {}
    for key, value in parse_assignments(param).items():
        name, _, arg = key.partition(".")
        params.setdefault(name, {})[arg] = value
    try:
        result = evaluate_files(loaded, files, names or default, out, training_rows, training_share, chosen,
                                seed, fpr, params, progress=console.print)  # fmt: skip
    except (ConfigurationError, DatasetFormatError, DatasetMissingError) as exc:
        raise fail(str(exc)) from None
    except KeyError as exc:  # an unknown detector name
        raise fail(str(exc.args[0])) from None
    Console().print(
        series_table({n: {**r["mean"], "baseline": r["baseline"]} for n, r in result["detectors"].items()})
    )
    console.print(f"[green]wrote[/] {out / 'metrics.json'}, {out / 'scores'}/ and {out / 'report.md'}")


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
