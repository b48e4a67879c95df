"""``anomstream replay``: a built-in dataset, a drift scenario or one's own file into its topic."""

from __future__ import annotations

from typing import Annotated

import typer

from anomstream.commands.common import (
    console,
    fail,
    replay_app,
    settings,
)
from anomstream.options import finite_non_negative

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
