"""What the command line prints: tables and one-line reports of results computed elsewhere."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from producers.replay import ReplayStats

NAB_PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def replay_report(stats: ReplayStats) -> str:
    return (
        f"sent {stats.sent:,} in {stats.seconds:.1f}s ({stats.rate:,.0f} ev/s); "
        f"delivered {stats.delivered:,}, failed {stats.failed:,}"
        + (" (interrupted)" if stats.interrupted else "")
    )


def evaluation_table(metrics: dict[str, Any]) -> Table:
    table = Table("detector", "ROC AUC", "PR AUC", "precision", "recall", "F1", "F2", "fit s", "score s/10k",
                  title=f"{metrics['stream']} ({metrics['protocol']})")  # fmt: skip
    for name, m in sorted(metrics["detectors"].items(), key=lambda item: -item[1]["roc_auc"]):
        table.add_row(name, *(f"{m[k]:.4f}" for k in ("roc_auc", "pr_auc")),
                      *(f"{m[k]:.3f}" for k in ("precision", "recall", "f1", "f2")),
                      f"{m['fit_seconds']:.1f}", f"{m['score_seconds_per_10k']:.3f}")  # fmt: skip
    return table


def nab_table(result: dict[str, Any]) -> Table:
    table = Table(
        "detector", "standard", "low FP", "low FN", title="NAB (normalised score, higher is better)"
    )
    for name, scores in result["detectors"].items():
        table.add_row(name, *(f"{scores['profiles'][p]['score']:.1f}" for p in NAB_PROFILES))
    return table


def series_table(detectors: dict[str, Any]) -> Table:
    """Means over series of each sensor detector and baseline (``evaluate --schema``, telemanom)."""
    keys = ("roc_auc", "pr_auc", "vus_pr", "best_f1", "f1", "event_f1", "alert_rate_normal")
    table = Table("method", *keys, title="means over series (higher is better; alert rate: normal rows)")
    for name, row in detectors.items():
        cells = ["-" if row.get(k) is None or row[k] != row[k] else f"{row[k]:.3f}" for k in keys]
        table.add_row(f"{name} (baseline)" if row.get("baseline") else name, *cells)
    return table


def shadow_summary(shadow: dict[str, Any] | None) -> str:
    """One line of a retrained candidate's shadow evaluation: alert rate on recent normal-looking
    data and recall on the validation attacks, production -> candidate.

    >>> shadow_summary({"alert_rate": {"production": 0.052, "candidate": 0.011},
    ...                 "recall": {"production": 0.991, "candidate": 0.987}, "passed": True})
    'alerts 5.20%->1.10%, recall 0.991->0.987: passed'
    """
    if not shadow:
        return ""
    parts = []
    rate, recall = shadow.get("alert_rate") or {}, shadow.get("recall") or {}
    if "production" in rate:
        parts.append(f"alerts {rate['production']:.2%}->{rate['candidate']:.2%}")
    if recall.get("production") is not None:
        parts.append(f"recall {recall['production']:.3f}->{recall['candidate']:.3f}")
    verdict = "passed" if shadow.get("passed") else "failed"
    return ", ".join(parts) + f": {verdict}"


STATUS_STYLE = {"production": "bold green", "candidate": "yellow", "rejected": "red", "retired": "dim"}


def models_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("stream", "detector", "version", "created", "threshold", "training", "status", "why",
                  "shadow (production -> candidate)")  # fmt: skip
    for m in rows:
        status = m.get("status", "production" if m.get("is_production") else "candidate")
        style = STATUS_STYLE.get(status, "")
        data = m["training"].get("data")
        table.add_row(m["stream"], m["detector"], str(m["version"]), m["created_at"][:19],
                      f"{m['threshold']['threshold']:.4g}", str(data), f"[{style}]{status}[/]",
                      m.get("status_reason") or "", shadow_summary(m.get("shadow")))  # fmt: skip
    return table
