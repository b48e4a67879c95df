"""Evaluate sensor detectors and baselines on labelled series: any file of one's own, or telemanom.

Per series and detector, as a worker would meet the series::

    first ``n_train`` rows (normal)  -> encoder, detector, threshold   (``anomstream train``'s cuts)
    every later window, in order     -> scored, then learnt (a detector that learns goes on learning)

Each later row gets the score and alert of the window ending on it; metrics
(:mod:`models.evaluation.ranges`) compare them with the row labels. The baselines
(:mod:`models.evaluation.baselines`) score the same rows. ``DIR/metrics.json`` holds per detector the
mean over series and each series' figures; ``DIR/scores/<stem>.csv`` every scored row
(``timestamp,score,label,is_alert``); ``DIR/report.md`` the table, PNGs a few series.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.evaluation.baselines import BASELINES
from models.evaluation.nab.benchmark import trained_windows
from models.evaluation.ranges import mean_metrics, series_metrics
from models.scoring import ScoringModel
from models.training.data import sensor_training_data
from models.training.fit import fit_model
from models.training.recipes import resolve
from stream.datasets.sensor import SensorSeries
from stream.windows import sliding_windows, window_end_rows

log = logging.getLogger(__name__)

BATCH = 64  # windows per scored-then-learnt batch (scores do not depend on it)
DEFAULT_BASELINES = tuple(BASELINES)
PLOTTED = 4


@dataclass
class Scored:
    """One method on the scored rows of one series."""

    scores: np.ndarray
    alerts: np.ndarray
    threshold: float
    seconds: float


def run_detector(
    series: SensorSeries,
    n_train: int,
    detector: str,
    window: int,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    fpr: float = 0.01,
) -> Scored:
    """Train ``detector`` on the first ``n_train`` rows, then score (and learn) every later window in
    order, as a worker does; one score and alert per row from ``n_train`` on."""
    started = time.perf_counter()
    data = sensor_training_data([series], window, rows=n_train)
    recipe = resolve("sensor", detector, "*", dict(params or {}), seed, window, len(data.fit))
    fitted = fit_model(data, recipe, fpr=fpr)
    windows = fitted.encoder.transform(sliding_windows(series.values, window))
    model = ScoringModel("sensor", detector, 0, fitted.encoder, fitted.detector, fitted.threshold)
    n_windows, first = len(windows), trained_windows(fitted)
    scores, alerts = np.zeros(n_windows), np.zeros(n_windows, dtype=bool)
    batch = BATCH if model.learns else 4096
    for start in range(first, n_windows, batch):
        scored = model.score_encoded(windows[start : start + batch])
        model.learn(scored)
        scores[start : start + len(scored.scores)] = scored.scores
        alerts[start : start + len(scored.scores)] = scored.is_alert
    ends = window_end_rows(len(series), window)
    row_scores, row_alerts = np.zeros(len(series)), np.zeros(len(series), dtype=bool)
    row_scores[ends], row_alerts[ends] = scores, alerts
    return Scored(
        row_scores[n_train:],
        row_alerts[n_train:],
        float(fitted.threshold.threshold_),
        time.perf_counter() - started,
    )


def run_baseline(series: SensorSeries, n_train: int, name: str, fpr: float = 0.01) -> Scored:
    started = time.perf_counter()
    scores, cut = BASELINES[name](series.values, n_train, fpr)
    return Scored(scores[n_train:], scores[n_train:] >= cut, cut, time.perf_counter() - started)


@dataclass(frozen=True)
class Item:
    """A labelled series and how many of its first rows train the model."""

    name: str
    series: SensorSeries
    n_train: int

    @property
    def labels(self) -> np.ndarray:
        assert self.series.anomaly_rows is not None
        return np.asarray(self.series.anomaly_rows[self.n_train :], dtype=bool)


def evaluate_items(
    items: Sequence[Item],
    detectors: Sequence[str],
    out: Path,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    window: int = 16,
    seed: int = 0,
    fpr: float = 0.01,
    params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
    write_scores: bool = True,
) -> dict[str, Any]:
    """Every detector and baseline on every item; metrics.json, scores/*.csv, report.md, plots."""
    started = time.perf_counter()
    methods = [*detectors, *baselines]
    per_file: dict[str, dict[str, dict[str, float]]] = {m: {} for m in methods}
    kept: dict[str, dict[str, Scored]] = {}
    for i, item in enumerate(items, 1):
        if progress is not None:
            progress(f"{i}/{len(items)}: {item.name}")
        results: dict[str, Scored] = {}
        for method in methods:
            try:
                if method in BASELINES and method not in detectors:
                    results[method] = run_baseline(item.series, item.n_train, method, fpr)
                else:
                    results[method] = run_detector(
                        item.series, item.n_train, method, window, (params or {}).get(method), seed, fpr
                    )
            except ValueError as exc:  # e.g. a constant training part: scored as never firing
                log.warning("%s on %s: %s; scored as never firing", method, item.name, exc)
                n = len(item.series) - item.n_train
                results[method] = Scored(np.zeros(n), np.zeros(n, bool), float("inf"), 0.0)
            r = results[method]
            per_file[method][item.name] = {
                **series_metrics(r.scores, item.labels, r.alerts),
                "threshold": r.threshold,
                "seconds": round(r.seconds, 2),
            }
        if write_scores:
            _write_scores(out / "scores", item, results)
        if len(kept) < PLOTTED and item.labels.any():
            kept[item.name] = results
    summary = {
        "window": window,
        "fpr": fpr,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "training": {item.name: item.n_train for item in items},
        "detectors": {
            m: {"mean": mean_metrics(per_file[m]), "files": per_file[m], "baseline": m in BASELINES}
            for m in methods
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=_plain))
    pictures = _plots(out, [i for i in items if i.name in kept], kept)
    (out / "report.md").write_text(report(summary, pictures))
    return summary


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and not np.isfinite(value) else float(value)


def stem(name: str) -> str:
    return Path(name.rstrip("/")).name.rsplit(".", 1)[0].replace("/", "_") or "series"


def _write_scores(directory: Path, item: Item, results: dict[str, Scored]) -> None:
    """``<stem>.csv``: every scored row in file order; one score/alert pair per method after the
    first (the first method's are ``score`` and ``is_alert``)."""
    directory.mkdir(parents=True, exist_ok=True)
    names = list(results)
    times = item.series.timestamps[item.n_train :]
    with (directory / f"{stem(item.name)}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        extra = [f"{kind}_{m}" for m in names[1:] for kind in ("score", "is_alert")]
        writer.writerow(["timestamp", "score", "label", "is_alert", *extra])
        first = results[names[0]]
        for r, when in enumerate(times):
            row = [_time(when), f"{first.scores[r]:.6g}", int(item.labels[r]), int(first.alerts[r])]
            for m in names[1:]:
                row += [f"{results[m].scores[r]:.6g}", int(results[m].alerts[r])]
            writer.writerow(row)


def _time(value: Any) -> str:
    if isinstance(value, np.datetime64):
        return str(pd.Timestamp(value).isoformat())
    return str(value)


def report(summary: dict[str, Any], pictures: Sequence[str] = ()) -> str:
    keys = (
        "roc_auc",
        "pr_auc",
        "vus_pr",
        "best_f1",
        "precision",
        "recall",
        "f1",
        "event_f1",
        "alert_rate_normal",
    )
    lines = [
        "# Sensor evaluation",
        "",
        f"{len(summary['training'])} series, window {summary['window']}, alert rate target {summary['fpr']}. "
        "Means over series (a metric a series cannot give, e.g. ROC AUC without anomalies, is left out).",
        "",
        "| method | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for name, result in summary["detectors"].items():
        label = f"{name} (baseline)" if result["baseline"] else f"**{name}**"
        cells = [_cell(result["mean"].get(k)) for k in keys]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", *(f"![{p}]({p})" for p in pictures)]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _plots(out: Path, items: Sequence[Item], results: dict[str, dict[str, Scored]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for item in items:
        methods = results[item.name]
        fig, axes = plt.subplots(1 + len(methods), 1, figsize=(11, 1.6 * (1 + len(methods))), sharex=True)
        values = np.asarray(item.series.values)[item.n_train :]
        x = np.arange(len(values))
        axes[0].plot(x, values, lw=0.6)
        axes[0].set_title(item.name, fontsize=9)
        for ax, (method, r) in zip(axes[1:], methods.items(), strict=True):
            ax.plot(x, r.scores, lw=0.6)
            if np.isfinite(r.threshold):
                ax.axhline(r.threshold, color="red", lw=0.5)
            ax.set_ylabel(method, fontsize=8)
        for ax in axes:
            for s, e in _spans(item.labels):
                ax.axvspan(s, e, color="orange", alpha=0.25)
        fig.tight_layout()
        name = f"{stem(item.name)}.png"
        fig.savefig(out / name, dpi=80)
        plt.close(fig)
        names.append(name)
    return names


def _spans(labels: np.ndarray) -> list[tuple[int, int]]:
    from models.evaluation.ranges import ranges

    return ranges(labels)
