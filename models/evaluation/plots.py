"""PNG plots of an evaluation: ROC curves, precision-recall curves, score histograms.

Matplotlib runs on the Agg backend (files only, never a window), and every figure is closed after
it is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Curve:
    """What the plots need of one detector: test scores, the protocol's labels, the threshold."""

    scores: np.ndarray
    y: np.ndarray
    threshold: float
    roc_auc: float
    pr_auc: float


def pyplot():  # noqa: ANN202 - matplotlib.pyplot, imported late so the CLI stays quick
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def roc_plot(curves: Mapping[str, Curve], path: Path, title: str) -> Path:
    from sklearn.metrics import roc_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    for name, c in curves.items():
        fpr, tpr, _ = roc_curve(c.y, c.scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {c.roc_auc:.3f})", linewidth=1.4)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlabel="false-positive rate", ylabel="true-positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01)
    )
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def pr_plot(curves: Mapping[str, Curve], path: Path, title: str) -> Path:
    from sklearn.metrics import precision_recall_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    for name, c in curves.items():
        precision, recall, _ = precision_recall_curve(c.y, c.scores)
        ax.plot(recall, precision, label=f"{name} (AP {c.pr_auc:.3f})", linewidth=1.4)
    prevalence = float(np.mean(next(iter(curves.values())).y)) if curves else 0.0
    ax.axhline(prevalence, color="grey", linestyle=":", linewidth=1, label=f"chance ({prevalence:.2f})")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path)


def use_log_x(scores: np.ndarray) -> bool:
    """Log-x helps when scores are positive and span more than two decades (reconstruction errors)."""
    finite = scores[np.isfinite(scores)]
    if finite.size == 0 or finite.min() <= 0:
        return False
    low, high = np.quantile(finite, [0.001, 0.999])
    return bool(high / max(low, 1e-300) > 100)


def histogram_plot(name: str, curve: Curve, path: Path, title: str) -> Path:
    plt = pyplot()
    scores = np.asarray(curve.scores, dtype=np.float64)
    finite = np.isfinite(scores)
    log_x = use_log_x(scores)
    values = scores[finite]
    low, high = float(values.min()), float(values.max())
    high = high if high > low else low + 1.0
    bins = np.geomspace(low, high, 80) if log_x else np.linspace(low, high, 80)
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    y = np.asarray(curve.y, dtype=bool)
    for mask, label, colour in ((~y, "normal", "tab:blue"), (y, "anomalous", "tab:red")):
        part = scores[mask & finite]
        # Each class sums to 1, so a 4:1 class ratio does not hide the smaller one, and bars on
        # log-spaced bins are comparable (density=True would shrink the wide bins on the right).
        weights = np.full(part.size, 1.0 / max(part.size, 1))
        ax.hist(
            part, bins=bins, weights=weights, alpha=0.55, color=colour, label=f"{label} (n={part.size:,})"
        )
    ax.axvline(
        curve.threshold,
        color="black",
        linestyle="--",
        linewidth=1.2,
        label=f"threshold {curve.threshold:.4g}",
    )
    if log_x:
        ax.set_xscale("log")
    ax.set(
        xlabel="anomaly score" + (" (log scale)" if log_x else ""),
        ylabel="share of the class's rows",
        title=f"{title}: {name}",
    )
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_plots(curves: Mapping[str, Curve], out: Path, title: str) -> list[Path]:
    """``roc.png``, ``pr.png`` and ``hist_<detector>.png`` for every detector; returns the paths."""
    paths = [
        roc_plot(curves, out / "roc.png", f"ROC: {title}"),
        pr_plot(curves, out / "pr.png", f"Precision-recall: {title}"),
    ]
    paths += [histogram_plot(name, c, out / f"hist_{name}.png", title) for name, c in curves.items()]
    return paths
