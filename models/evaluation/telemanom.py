"""The telemanom benchmark (NASA SMAP and MSL telemetry, Hundman et al. KDD 2018): every labelled
channel, trained on its ``train/`` file (anomaly-free), scored on its ``test/`` file as one stream
that goes on from the training rows (:mod:`models.evaluation.series`), baselines side by side.

Writes ``DIR/telemanom.json`` (``{"default": NAME, "detectors": {NAME: {"roc_auc", "pr_auc",
"vus_pr", "event_f1", ...}}}``, means over channels, plus per channel), ``DIR/metrics.json``,
``DIR/report.md`` and plots (``scores/`` only when asked: 430,000 rows).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.evaluation.series import DEFAULT_BASELINES, Item, evaluate_items
from stream.datasets.files import DatasetMissingError
from stream.datasets.sensor import SensorSeries

DEFAULT_DETECTOR = "context"


def telemanom_root(data_dir: Path) -> Path:
    root = Path(data_dir) / "telemanom"
    if not (root / "labeled_anomalies.csv").is_file():
        raise DatasetMissingError(
            f"telemanom data not found under {root}: put labeled_anomalies.csv, train/ and test/ there"
        )
    return root


def list_channels(data_dir: Path) -> list[str]:
    """Channels with both a train and a labelled test file, in labeled_anomalies.csv's order."""
    root = telemanom_root(data_dir)
    table = pd.read_csv(root / "labeled_anomalies.csv")
    return [
        c for c in dict.fromkeys(table["chan_id"]) if (root / "train" / f"{c}.csv").is_file()
        and (root / "test" / f"{c}.csv").is_file()
    ]  # fmt: skip


def load_channel(data_dir: Path, channel: str) -> Item:
    """One channel as a stream: its training rows, then its labelled test rows."""
    root = telemanom_root(data_dir)
    train = pd.read_csv(root / "train" / f"{channel}.csv")
    test = pd.read_csv(root / "test" / f"{channel}.csv")
    values = np.r_[train["value"].to_numpy(np.float64), test["value"].to_numpy(np.float64)]
    labels = np.r_[np.zeros(len(train), bool), test["label"].to_numpy() != 0]
    steps = np.arange(len(values))  # sample indices: test row r is step len(train) + r
    series = SensorSeries(channel, channel, steps, values, labels)
    return Item(channel, series, len(train))


def run_telemanom(
    data_dir: Path,
    out: Path,
    detectors: Sequence[str] = (DEFAULT_DETECTOR,),
    baselines: Sequence[str] = DEFAULT_BASELINES,
    channels: Sequence[str] | None = None,
    window: int = 16,
    seed: int = 0,
    params: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
    write_scores: bool = False,
) -> dict[str, Any]:
    names = list(channels) if channels else list_channels(data_dir)
    items = [load_channel(data_dir, c) for c in names]
    summary = evaluate_items(items, detectors, out, baselines, window, seed, params=params,
                             progress=progress, write_scores=write_scores)  # fmt: skip
    default = DEFAULT_DETECTOR if DEFAULT_DETECTOR in detectors else detectors[0]
    result = {
        "benchmark": "telemanom (NASA SMAP + MSL, labeled_anomalies.csv)",
        "channels": len(items),
        "protocol": "train on train/<chan>.csv, score test/<chan>.csv as the stream that follows",
        "default": default,
        "detectors": {
            name: {**entry["mean"], "baseline": entry["baseline"]}
            for name, entry in summary["detectors"].items()
        },
    }
    (out / "telemanom.json").write_text(json.dumps(result, indent=2, default=_plain))
    return result


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and not np.isfinite(value) else float(value)
