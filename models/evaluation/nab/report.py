"""``report.md`` and PNGs of the NAB benchmark (:mod:`models.evaluation.nab.benchmark`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stream.datasets.nab import NAB_PROFILES

if TYPE_CHECKING:
    from models.evaluation.nab.benchmark import DetectorResult
    from stream.datasets.sensor import SensorSeries

# Published detectors shown next to ours (keys of NAB's results/final_results.json).
SCOREBOARD = {
    "ARTime": "ARTime",
    "numenta": "Numenta HTM",
    "contextOSE": "CAD OSE",
    "earthgeckoSkyline": "earthgecko Skyline",
    "knncad": "KNN CAD",
    "relativeEntropy": "Relative Entropy",
    "randomCutForest": "Random Cut Forest",
    "twitterADVec": "Twitter ADVec",
    "windowedGaussian": "Windowed Gaussian",
    "random": "Random",
}
PROFILE_TITLES = {"standard": "standard", "reward_low_FP_rate": "low FP", "reward_low_FN_rate": "low FN"}
COLORS = ("tab:red", "tab:purple", "tab:green", "tab:orange")


def scoreboard_table(summary: Mapping[str, Any]) -> str:
    """Ours and the published detectors, ranked by the standard profile."""
    rows = [(f"**{name}** (ours)", d["profiles"]) for name, d in summary["detectors"].items()]
    rows = [(n, {p: v["score"] for p, v in profiles.items()}) for n, profiles in rows]
    published = summary.get("published", {})
    rows += [(title, published[key]) for key, title in SCOREBOARD.items() if key in published]
    rows.sort(key=lambda row: -row[1]["standard"])
    head = ["detector", *(PROFILE_TITLES[p] for p in NAB_PROFILES)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * len(NAB_PROFILES)]
    lines += ["| " + " | ".join([n, *(f"{s[p]:.1f}" for p in NAB_PROFILES)]) + " |" for n, s in rows]
    return "\n".join(lines)


def detail_table(summary: Mapping[str, Any]) -> str:
    head = ["detector", "profile", "threshold", "windows found", "missed", "FP rows", "fit s", "score s"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for name, d in summary["detectors"].items():
        for profile, p in d["profiles"].items():
            cells = [name, PROFILE_TITLES[profile], f"{p['threshold']:.4f}", str(p["detected_windows"]),
                     str(p["missed_windows"]), str(p["fp_rows"]), f"{d['fit_seconds']:.0f}",
                     f"{d['score_seconds']:.1f}"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_series_table(summary: Mapping[str, Any]) -> str:
    """Standard-profile raw score per series and detector (window hits / misses / FP rows)."""
    names = list(summary["detectors"])
    head = ["series", *names]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * len(names)]
    series = summary["detectors"][names[0]]["per_series"] if names else {}
    for key in series:
        cells = [key]
        for name in names:
            s = summary["detectors"][name]["per_series"][key]
            hits = f"{s['detected_windows']}/{s['detected_windows'] + s['missed_windows']}"
            cells.append(f"{s['raw_standard']:+.2f} ({hits}, {s['fp_rows']} FP)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out: Path, summary: Mapping[str, Any], pictures: Sequence[Path]) -> Path:
    best = max(summary["detectors"].items(), key=lambda item: item[1]["profiles"]["standard"]["score"])
    htm = summary.get("published", {}).get("numenta", {}).get("standard")
    gap = f"{htm - best[1]['profiles']['standard']['score']:.1f} points" if htm is not None else "n/a"
    failed = {n: d["failed_series"] for n, d in summary["detectors"].items() if d["failed_series"]}
    text = [
        "# NAB benchmark of the windowed detectors",
        "",
        f"{summary['series']} series, windows of {summary['window']} rows (stride 1); each detector is "
        f"fitted per series on its {summary['training']}. Raw window scores -> {summary['mapping']} "
        "(models/nab/likelihood.py) -> one threshold per profile for the whole corpus, chosen by NAB's "
        f"optimiser. Run time {summary['seconds']:.0f} s on {summary.get('cpu_cores')} CPU cores. Published "
        "scores: NAB results/final_results.json (NAB's README scoreboard lists HTM at 70.5-69.7 over runs).",
        "",
        "## Scoreboard (normalised NAB score, higher is better)",
        "",
        scoreboard_table(summary),
        "",
        f"Best of ours: **{best[0]}** {best[1]['profiles']['standard']['score']:.1f} (standard), "
        f"{gap} behind Numenta HTM.",
        "",
        "Limits of the method: each model is fitted once on at most 750 rows and never updated (HTM and "
        "CAD OSE learn on every row), and a window of a few hours cannot see a daily or weekly pattern, "
        "so contextual anomalies (a missing daily peak, values in range at the wrong time) go unseen; "
        "the likelihood only re-centres the scores on the series' recent past.",
        "",
        "## Thresholds and counts",
        "",
        detail_table(summary),
        "",
        *([f"Not fitted (scored as never firing): {json_line(failed)}", ""] if failed else []),
        "## Per series (standard profile: raw score, windows found / windows, false-positive rows)",
        "",
        per_series_table(summary),
        "",
        *(f"![{p.stem}]({p.name})" for p in pictures),
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(text))
    return path


def json_line(value: Any) -> str:
    import json

    return json.dumps(value)


def write_plots(
    out: Path,
    results: Mapping[str, DetectorResult],
    series: Mapping[str, SensorSeries],
    names: Sequence[str],
) -> list[Path]:
    """One PNG per series: values with anomaly windows and each detector's detections (standard
    profile threshold), and below them the NAB anomaly scores with those thresholds."""
    from models.evaluation.plots import pyplot, save_figure

    plt = pyplot()
    paths = []
    for name in names:
        item = series[name]
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True, height_ratios=(2, 1))
        rows = np.arange(len(item))
        top.plot(rows, item.values, lw=0.6, color="tab:blue")
        for ax in (top, bottom):
            ax.axvspan(0, item.probation, color="0.9", lw=0)
            if item.anomaly_rows is not None:
                edges = np.flatnonzero(np.diff(np.r_[0, item.anomaly_rows.astype(int), 0]))
                for start, end in zip(edges[::2], edges[1::2], strict=True):
                    ax.axvspan(start, end - 1, color="gold", alpha=0.35, lw=0)
        for color, (detector, result) in zip(COLORS, results.items(), strict=False):
            run, threshold = result.runs[name], result.profiles["standard"].threshold
            detected = np.flatnonzero((run.scores >= threshold) & (rows >= item.probation))
            top.scatter(detected, item.values[detected], s=18, color=color, label=f"{detector} detections")
            bottom.plot(rows, run.scores, lw=0.6, color=color, label=detector)
            if np.isfinite(threshold):
                bottom.axhline(threshold, color=color, ls="--", lw=0.6)
        top.set_title(f"{name} (grey: probation, gold: NAB anomaly windows)")
        top.legend(loc="upper left", fontsize=7)
        bottom.set_ylabel("NAB score")
        bottom.set_xlabel("row")
        paths.append(save_figure(fig, out / f"nab_{Path(name).stem}.png"))
    return paths
