"""Figures, plot and report of the streaming protocol (:mod:`models.evaluation.streaming`).

``metrics.json`` keeps the evaluation contract (``{"stream", "protocol", "detectors": {NAME: {...}}}``)
with two rows: the detector without the loop (``ae``) and with it (``ae+loop``). ``details.json``
holds the rolling series, the drift events, the retrains and the flood figures; ``stream.png`` plots
them; ``report.md`` says what was run and how to read it.
"""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import roc_auc_score

from models.detectors.base import n_params
from models.evaluation.metrics import detection_metrics, saved_size_kb, timed_scores
from models.evaluation.plots import pyplot, save_figure
from models.evaluation.report import cell
from models.training.fit import FittedModel
from stream.datasets import is_attack

if TYPE_CHECKING:
    from models.evaluation.streaming import StreamData, StreamProtocol, StreamRun

FLOOD_RUN = 10_000  # attack runs at least this long are shaded (and the longest is "the flood")
MEMSTREAM_NOTE = (
    "Published streaming figures on KDD Cup 99, such as MemStream's ROC AUC of 0.980, are not comparable "
    "with these: they invert the labels (normal traffic is counted as the anomaly, since attacks are 80% "
    "of the file) and pick the warm-up records by label (normal ones only). Here attacks are the "
    "anomalies, and the warm-up is the first connections of the file, whatever they are."
)


def attack_runs(y: np.ndarray, minimum: int = FLOOD_RUN) -> list[tuple[int, int]]:
    """``[start, end)`` of every run of attacks at least ``minimum`` long (indices into ``y``).

    >>> attack_runs(np.array([0, 1, 1, 1, 0, 1, 1]).astype(bool), 2)
    [(1, 4), (5, 7)]
    """
    edges = np.flatnonzero(np.diff(np.r_[0, y.astype(np.int8), 0]))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True) if e - s >= minimum]


def rolling(
    y: np.ndarray, ratio: np.ndarray, flags: np.ndarray, window: int
) -> dict[str, list[float | None]]:
    """Per window of ``window`` connections: ROC AUC (None without both classes), alert rate, alert
    rate on normal traffic, recall."""
    keys = ("start", "roc_auc", "alert_rate", "normal_alert_rate", "recall")
    out: dict[str, list[float | None]] = {key: [] for key in keys}
    for lo in range(0, len(y), window):
        yy, rr, ff = y[lo : lo + window], ratio[lo : lo + window], flags[lo : lo + window]
        both = 0 < int(yy.sum()) < len(yy)
        out["start"].append(lo)
        out["roc_auc"].append(float(roc_auc_score(yy, rr)) if both else None)
        out["alert_rate"].append(float(ff.mean()))
        out["normal_alert_rate"].append(float(ff[~yy].mean()) if (~yy).any() else None)
        out["recall"].append(float(ff[yy].mean()) if yy.any() else None)
    return out


def _row(y: np.ndarray, run: StreamRun, fitted: FittedModel, fit_seconds: float, per_10k: float) -> dict:
    metrics = detection_metrics(y, run.ratio, run.flags)
    last = run.models[-1]
    return {
        **metrics,
        "threshold": float(last.threshold.threshold_),
        "fit_seconds": round(fit_seconds, 2),
        "score_seconds_per_10k": round(per_10k, 4),
        "n_params": n_params(fitted.detector),
        "size_kb": round(saved_size_kb(fitted.detector), 1),
    }


def _flood_recalls(
    data: StreamData, protocol: StreamProtocol, y: np.ndarray, runs: dict[str, StreamRun]
) -> dict:
    """Recall on the longest attack run (the smurf flood): by each pass as it was scored, and by every
    model the loop promoted, over the whole flood."""
    floods = attack_runs(y)
    if not floods:
        return {}
    start, end = max(floods, key=lambda run: run[1] - run[0])
    names, counts = np.unique(
        data.labels[protocol.warmup + start : protocol.warmup + end], return_counts=True
    )
    label = str(names[np.argmax(counts)])  # the run's main attack (a flood may start with another)
    X = data.X[protocol.warmup + start : protocol.warmup + end]
    loop = runs["loop"]
    by_model = {
        f"v{i + 1}": float(np.mean(m.threshold.classify(m.judge(X)))) for i, m in enumerate(loop.models)
    }
    after = loop.model_of[start:end] > 0
    return {
        "label": label,
        "start": protocol.warmup + start,
        "length": end - start,
        "recall": {name: float(run.flags[start:end].mean()) for name, run in runs.items()},
        "recall_after_a_retrain": float(loop.flags[start:end][after].mean()) if after.any() else None,
        "recall_of_each_model": by_model,
        "min_recall_of_promoted_models": min(list(by_model.values())[1:], default=None),
    }


def stream_figures(
    data: StreamData,
    protocol: StreamProtocol,
    fitted: FittedModel,
    static: StreamRun,
    loop: StreamRun,
    seconds: float,
) -> dict[str, Any]:
    """Everything the report shows, JSON-ready."""
    y = is_attack(data.labels[protocol.warmup :])
    _, per_10k = timed_scores(fitted.detector, data.X[protocol.warmup : protocol.warmup + 10_000])
    name = protocol.detector
    retrain_seconds = sum(e.fit_seconds for e in loop.events)
    runs = {"static": static, "loop": loop}
    detectors = {
        name: _row(y, static, fitted, fitted.fit_seconds, per_10k),
        f"{name}+loop": _row(y, loop, fitted, fitted.fit_seconds + retrain_seconds, per_10k),
    }
    for key, run in runs.items():
        detectors[name if key == "static" else f"{name}+loop"]["normal_alert_rate"] = float(
            run.flags[~y].mean()
        )
    return {
        "metrics": {"stream": "kdd", "protocol": "stream", "detectors": detectors},
        "details": {
            "command": " ".join(["anomstream", *map(shlex.quote, sys.argv[1:])]) if sys.argv else "",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "data": data.source,
            "connections": int(len(data.X)),
            "warmup": protocol.warmup,
            "scored": int(len(y)),
            "attack_share": float(y.mean()),
            "chunk": protocol.chunk,
            "window": protocol.window,
            "initial_model": fitted.description,
            "validation": data.validation.source,
            "policy": {k: v for k, v in vars(protocol.policy).items()},
            "drift": {
                "detector": "adwin",
                "target_ert": protocol.target_ert,
                "false_alarm_risk": protocol.false_alarm_risk,
            },  # fmt: skip
            "events": [vars(e) for e in loop.events],
            "promoted_at": loop.promoted_at,
            "flood": _flood_recalls(data, protocol, y, runs),
            "attack_runs": [(protocol.warmup + s, protocol.warmup + e) for s, e in attack_runs(y)],
            "rolling": {key: rolling(y, run.ratio, run.flags, protocol.window) for key, run in runs.items()},
        },
    }


# -- outputs ------------------------------------------------------------------------------------------
def stream_plot(details: dict[str, Any], path: Path) -> Path:
    """Rolling ROC AUC, alert rate and normal-traffic alert rate per window, with and without the
    loop; floods shaded, drift events dashed, promotions solid."""
    plt = pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True)
    base = details["warmup"]
    panels = (("roc_auc", "rolling ROC AUC"), ("alert_rate", "alert rate"), ("normal_alert_rate",
              "alert rate on normal traffic"))  # fmt: skip
    for ax, (key, title) in zip(axes, panels, strict=True):
        styles = (("static", {"color": "tab:blue", "linewidth": 3.0, "alpha": 0.6}),
                  ("loop", {"color": "tab:orange", "linewidth": 1.2}))  # fmt: skip
        for run, style in styles:
            series = details["rolling"][run]
            x = [base + s + details["window"] / 2 for s in series["start"]]
            values = [np.nan if v is None else v for v in series[key]]
            if key == "normal_alert_rate":  # log scale: a window with no false alarm sits at the floor
                values = [max(v, 1e-4) for v in values]
            ax.plot(x, values, marker=".", label="without the loop" if run == "static" else "with the loop",
                    **style)  # fmt: skip
        for start, end in details["attack_runs"]:
            ax.axvspan(start, end, color="tab:red", alpha=0.08, linewidth=0)
        for event in details["events"]:
            ax.axvline(event["detected_at"], color="grey", linestyle="--", linewidth=1)
        for at in details["promoted_at"]:
            ax.axvline(at, color="tab:green", linewidth=1.6)
        ax.set_ylabel(title)
    axes[2].set_yscale("log")
    axes[2].set_ylim(5e-5, 1.5)
    axes[0].legend(loc="lower left", fontsize=8)
    axes[2].set_xlabel(f"connection of {details['data']} (file order); shaded: attack runs of 10,000+; "
                       "dashed: drift detected; green: promotion")  # fmt: skip
    axes[0].set_title(f"KDD Cup 99 10% file as a stream, per {details['window']:,} connections")
    return save_figure(fig, path)


def _events_table(events: list[dict[str, Any]]) -> str:
    if not events:
        return "The drift watch raised no event."
    lines = [
        "| detected at | change from | retrain at | outcome | alert rate prod -> cand | recall prod -> cand "
        "| attacks in what it learnt | detail |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in events:
        shadow, contamination = e.get("shadow") or {}, e.get("contamination") or {}
        rate, recall = shadow.get("alert_rate") or {}, shadow.get("recall") or {}
        rates = f"{rate['production']:.2%} -> {rate['candidate']:.2%}" if rate else "-"
        recalls = f"{recall['production']:.3f} -> {recall['candidate']:.3f}" if recall else "-"
        share = contamination.get("learnt_attack_share")
        learnt = f"{share:.1%}" if share is not None else "-"
        retrain = f"{e['retrain_at']:,}" if e.get("retrain_at") is not None else "-"
        lines.append(f"| {e['detected_at']:,} | {e['change_at']:,} | {retrain} | {e['outcome']} | {rates} | "
                     f"{recalls} | {learnt} | {e['detail']} |")  # fmt: skip
    return "\n".join(lines)


def write_stream_report(out: Path, figures: dict[str, Any]) -> list[Path]:
    """``metrics.json``, ``details.json``, ``stream.png`` and ``report.md`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    metrics, details = figures["metrics"], figures["details"]
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "details.json").write_text(json.dumps(details, indent=2, default=str))
    plot = stream_plot(details, out / "stream.png")
    rows = [
        "| | ROC AUC | PR AUC | precision | recall | alert rate on normal traffic |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in metrics["detectors"].items():
        rows.append(f"| {name} | {m['roc_auc']:.4f} | {m['pr_auc']:.4f} | {cell('{:.3f}', m['precision'])} "
                    f"| {cell('{:.3f}', m['recall'])} | {m['normal_alert_rate']:.2%} |")  # fmt: skip
    flood = details.get("flood") or {}
    flood_text = "No attack run of 10,000 connections in this prefix."
    if flood:
        promoted = flood["min_recall_of_promoted_models"]
        flood_text = (
            f"The longest attack run, {flood['length']:,} `{flood['label']}` connections from "
            f"{flood['start']:,}: recall {flood['recall']['static']:.4f} without the loop, "
            f"{flood['recall']['loop']:.4f} with it"
            + (
                f" ({flood['recall_after_a_retrain']:.4f} on the part scored after a retrain)"
                if flood["recall_after_a_retrain"] is not None
                else ""
            )  # fmt: skip
            + ". Every model the loop promoted, scored over the whole run: "
            + (f"lowest recall {promoted:.4f}" if promoted is not None else "no model was promoted")
            + f" ({', '.join(f'{k} {v:.4f}' for k, v in flood['recall_of_each_model'].items())})."
        )
    rows_info = details["initial_model"]["rows"]
    parts = [
        "# anomstream evaluation: kdd, protocol `stream`",
        f"Command: `{details['command']}`  \n"
        f"Run: {details['finished_at']}, {details['seconds']:.0f} s in all.",
        "## Results",
        "\n".join(rows),
        f"Over the {details['scored']:,} connections after the warm-up "
        f"({details['attack_share']:.1%} attacks). "
        "ROC AUC ranks each score against the threshold of the model that gave it.",
        "## Protocol",
        f"The whole `{details['data']}` ({details['connections']:,} connections) in file order. "
        "The initial model "
        f"learns from the first N = {details['warmup']:,} connections **without their labels** "
        f"({rows_info['after_repeat_cap']:,} rows left once no record exceeds its share; "
        f"{rows_info['fit']:,} fit, {rows_info['early_stop']:,} early stopping, {rows_info['calibration']:,} "
        "for its 1% quantile threshold); every later connection is scored before anything learns from it "
        f"(test-then-train, in chunks of {details['chunk']:,}). With the loop, the drift monitor's watch "
        f"(ADWIN, calibrated to one false alarm per {details['drift']['target_ert']:,} stable scores) "
        "triggers retrains that filter, train and shadow-evaluate exactly as the live loop does; the "
        f"validation attacks of the promotion gate are a {details['validation']}.",
        MEMSTREAM_NOTE,
        "## Drift events and retrains",
        _events_table(details["events"]),
        "## The flood",
        flood_text,
        "## Plot",
        f"![{plot.stem}]({plot.name})",
    ]
    path = out / "report.md"
    path.write_text("\n\n".join(parts) + "\n")
    return [out / "metrics.json", out / "details.json", plot, path]
