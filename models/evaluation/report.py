"""``report.md``: our figures next to the published ones, how the protocol labels rows, how the
thresholds were chosen, and the plots."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Published ROC AUCs. FF12: Cloudera Fast Forward Labs, "Deep Learning for Anomaly Detection"
# (2020), KDD Cup 99 under the `ffl` protocol. Anomagram: the same group's ECG5000 autoencoder demo.
PUBLISHED: dict[tuple[str, str], dict[str, float]] = {
    ("kdd", "ffl"): {"bigan": 0.972, "ae": 0.963, "ocsvm": 0.957, "vae": 0.946, "pca": 0.771},
    ("ecg", "holdout"): {"ae": 0.96},
}
PUBLISHED_SOURCE = {
    ("kdd", "ffl"): "Cloudera Fast Forward Labs report FF12, KDD Cup 99 experiment",
    ("ecg", "holdout"): "Anomagram (Fast Forward Labs), dense autoencoder on ECG5000, about 0.96",
}

COLUMNS = (
    ("roc_auc", "ROC AUC", "{:.4f}"),
    ("pr_auc", "PR AUC", "{:.4f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("f1", "F1", "{:.3f}"),
    ("f2", "F2", "{:.3f}"),
    ("threshold", "threshold", "{:.4g}"),
    ("fit_seconds", "fit s", "{:.1f}"),
    ("score_seconds_per_10k", "score s/10k", "{:.3f}"),
    ("n_params", "params", "{:,}"),
    ("size_kb", "size KB", "{:,.1f}"),
)


def cell(fmt: str, value: Any) -> str:
    """A table cell: the figure formatted, or "-" where it is undefined (None: no alert, no attack)."""
    return "-" if value is None else fmt.format(value)


def metrics_table(stream: str, protocol: str, detectors: Mapping[str, Mapping[str, Any]]) -> str:
    published = PUBLISHED.get((stream, protocol), {})
    head = ["detector", "ROC AUC", "published ROC AUC", *(title for _, title, _ in COLUMNS[1:])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ranked = sorted(detectors.items(), key=lambda item: -item[1]["roc_auc"])
    for name, m in ranked:
        cells = [name, COLUMNS[0][2].format(m["roc_auc"])]
        cells.append(f"{published[name]:.3f}" if name in published else "-")
        cells += [cell(fmt, m[key]) for key, _, fmt in COLUMNS[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def flag_rate_table(rates: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Rows = original labels, columns = detectors: share of rows flagged at the threshold."""
    names = list(rates)
    if not names:
        return ""
    first = rates[names[0]]
    head = ["label", "rows", "counted as", *names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in first.items():
        cells = [label, f"{int(row['n']):,}", str(row.get("counted_as", ""))]
        cells += [f"{rates[n][label]['flagged']:.1%}" if label in rates[n] else "-" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _protocol_text(stream: str, protocol: str, test: Mapping[str, Any]) -> str:
    if stream == "kdd" and protocol == "ffl":
        return (
            "Protocol `ffl` reproduces the Fast Forward Labs experiment: the 18 continuous features, min-max "
            "scaled on training rows, detectors trained on normal connections of the 10% file, tested on a "
            f"seeded sample of `corrected` ({test['normal']:,} 'normal' + {test['anomalies']:,} attacks).\n\n"
            f"**Labelling, as FFL's code did:** the {len(test['test_only_attack_types'])} attack types that "
            "appear only in `corrected` "
            f"({', '.join(test['test_only_attack_types'])}) are counted as *normal*, so the 'normal' pool "
            f"is drawn from normal and test-only-attack rows ({test['test_only_attacks_in_sample']:,} of the "
            "sampled 'normal' rows are such attacks), and the attack pool only from attack types seen in "
            "training. A detector that flags a novel attack is charged with a false positive here; the "
            "`full` protocol is the honest one."
        )
    if stream == "kdd":
        return (
            "Protocol `full`: all 41 features (3 categoricals one-hot, byte counts and durations "
            "log-compressed, then min-max scaled on training rows), every non-normal label of the whole "
            f"`corrected` file is an attack ({test['anomalies']:,} attacks, {test['normal']:,} normal)."
        )
    return (
        "ECG5000 as the TensorFlow `ecg.csv` (4,998 beats, 1 = normal). Seeded split: detectors train on "
        "normal beats only; 30% of normal beats and 90% of abnormal beats are held out for testing "
        f"({test['normal']:,} normal + {test['anomalies']:,} abnormal), and scaling is a global min-max "
        "range learnt on the training beats."
    )


def ffl_cost_text(
    detectors: Mapping[str, Mapping[str, Any]], clean: Mapping[str, float], test: Mapping[str, Any]
) -> str:
    lines = [
        f"The same scores with the {test['test_only_attacks_in_sample']:,} test-only attacks taken out of "
        "the 'normal' pool (a diagnostic, computed after the fact; nothing was tuned on it). A detector "
        "that flags novel attacks, as it should, loses ROC AUC under `ffl`:",
        "",
        "| detector | ROC AUC (ffl labels) | ROC AUC without test-only attacks |",
        "|---|---|---|",
    ]
    for name, m in sorted(detectors.items(), key=lambda item: -item[1]["roc_auc"]):
        if name in clean:
            lines.append(f"| {name} | {m['roc_auc']:.4f} | {clean[name]:.4f} |")
    return "\n".join(lines)


def threshold_text(threshold: Mapping[str, Any], training: Mapping[str, Any]) -> str:
    kind = threshold["kind"]
    rows = training.get("rows", {})
    how = {
        "quantile": f"the {1 - threshold.get('fpr', 0.01):.0%} quantile of held-out normal validation scores "
        f"(target false-positive rate {threshold.get('fpr', 0.01):g})",
        "gaussian": f"a (log-)normal fit of held-out normal validation scores, cut at tail probability "
        f"{threshold.get('fpr', 0.01):g}",
        "fbeta": f"the best F{threshold.get('beta', 1.0):g} on a labelled validation split of training data",
        "sliding": f"the {threshold.get('percentile', 99.0):g}th percentile of the last "
        f"{threshold.get('window', 1000):,} scores, seeded with validation scores and moving along the "
        "test stream in order",
    }.get(kind, kind)
    return (
        f"**Thresholds** never saw a test label: each is {how}. Validation rows come from the training "
        f"data only ({rows.get('calibration', '?'):,} held-out normal rows"
        + (
            f"; labelled split {rows['labelled_validation']}"
            if kind == "fbeta" and "labelled_validation" in rows
            else ""
        )
        + "). Detectors learn from "
        f"{rows.get('fit', '?'):,} normal rows and stop early on another {rows.get('early_stop', '?'):,}."
    )


def write_report(
    out: Path,
    metrics: Mapping[str, Any],
    details: Mapping[str, Any],
    plots: list[Path],
) -> Path:
    stream, protocol = metrics["stream"], metrics["protocol"]
    test, training = details["test"], details["training"]
    source = PUBLISHED_SOURCE.get((stream, protocol))
    parts = [
        f"# anomstream evaluation: {stream}, protocol `{protocol}`",
        f"Command: `{details['command']}`  \nRun: {details['finished_at']}, {details['device']}, "
        f"seed {details['seed']}, {details['seconds']:.0f} s in all.",
        "## Results",
        metrics_table(stream, protocol, metrics["detectors"]),
        f"Published figures: {source}." if source else "No published figures for this protocol.",
        "ROC AUC and PR AUC (average precision) rank the scores and need no threshold; precision, recall, "
        "F1 and F2 are those of the alerts the fitted threshold raises on the test rows. `fit s` is the "
        "training time on this machine; `score s/10k` the time to score 10,000 rows in batches after a "
        "warm-up call; `size KB` what the registry stores for the detector.",
        "## Protocol",
        _protocol_text(stream, protocol, test),
        threshold_text(details["threshold"], training),
        "Detector parameters (class defaults, then the tuned values of `models.training.recipes.RECIPES`, "
        "then command-line overrides):\n\n"
        + "\n".join(f"- `{n}`: `{json.dumps(p, default=str)}`" for n, p in details["params"].items()),
    ]
    clean = details.get("roc_auc_without_test_only_attacks") or {}
    if clean:
        parts += ["## What the ffl labelling costs", ffl_cost_text(metrics["detectors"], clean, test)]
    rates = details.get("flag_rates") or {}
    if stream == "kdd" and rates:
        parts += [
            "## Share flagged per test label (at the threshold)",
            flag_rate_table(rates),
        ]
    parts += ["## Plots", *(f"![{p.stem}]({p.name})" for p in plots)]
    path = out / "report.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path
