"""Readers for a NAB checkout laid out as in numenta/NAB.

``nab_dir`` holds ``data/<category>/<series>.csv``, ``labels/combined_windows.json``,
``config/profiles.json``, ``config/thresholds.json`` and ``results/`` (the
detectors' result files may be gzipped). Series are keyed ``"<category>/<file>.csv"``
everywhere, as in NAB's label files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from models.nab.scoring import Profile

NAB_PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def _read_json(path: Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _existing(path: Path) -> Path:
    """``path`` or its ``.gz`` twin, whichever exists."""
    if path.exists():
        return path
    gz = path.with_name(path.name + ".gz")
    if gz.exists():
        return gz
    raise FileNotFoundError(f"neither {path} nor {gz} exists")


def load_profiles(nab_dir: Path) -> dict[str, Profile]:
    """Read ``config/profiles.json`` (profile name -> ``{"CostMatrix": {...Weight}}``)."""
    raw = _read_json(Path(nab_dir) / "config" / "profiles.json")
    profiles = {}
    for name, spec in raw.items():
        cost = spec["CostMatrix"]
        profiles[name] = Profile(
            name=name,
            tp_weight=float(cost["tpWeight"]),
            fp_weight=float(cost["fpWeight"]),
            fn_weight=float(cost["fnWeight"]),
            tn_weight=float(cost.get("tnWeight", 0.0)),
        )
    return profiles


def load_windows(nab_dir: Path) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """Read ``labels/combined_windows.json``: series key -> sorted ``(start, end)`` timestamps.

    Both limits are inclusive and, in NAB's corpus, each is the timestamp of a row.
    """
    raw = _read_json(Path(nab_dir) / "labels" / "combined_windows.json")
    return {
        name: sorted((pd.Timestamp(start), pd.Timestamp(end)) for start, end in limits)
        for name, limits in raw.items()
    }


def list_series(nab_dir: Path) -> list[str]:
    """All series keys ``"<category>/<file>.csv"`` under ``data/``, sorted."""
    data_dir = Path(nab_dir) / "data"
    return sorted(path.relative_to(data_dir).as_posix() for path in data_dir.glob("*/*.csv"))


def load_series(nab_dir: Path, name: str) -> pd.DataFrame:
    """Read one series: columns ``timestamp`` (datetime64) and ``value``, in file order.

    The order is kept even where timestamps repeat or step backwards, because NAB
    scores rows by position.
    """
    frame = pd.read_csv(Path(nab_dir) / "data" / name)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame[["timestamp", "value"]]


def load_detector_results(
    nab_dir: Path, detector: str, names: Iterable[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Read a detector's per-series result files ``results/<detector>/<cat>/<detector>_<file>.csv[.gz]``.

    Returns series key -> DataFrame with ``timestamp`` and ``anomaly_score`` in
    the result file's own row order. NAB itself ignores these timestamps and pairs
    the i-th score with the i-th row of the data file (see :func:`nab_score_arrays`);
    they differ where a detector re-sorted repeated timestamps (randomCutForest on
    machine_temperature_system_failure.csv). ``names`` restricts loading to those series keys.
    """
    wanted = None if names is None else set(names)
    results_dir = Path(nab_dir) / "results" / detector
    prefix = f"{detector}_"
    loaded = {}
    for path in sorted(results_dir.glob(f"*/{prefix}*.csv*")):
        if path.suffix not in (".csv", ".gz"):
            continue
        name = f"{path.parent.name}/{path.name.removesuffix('.gz')[len(prefix) :]}"
        if wanted is not None and name not in wanted:
            continue
        frame = pd.read_csv(path, usecols=["timestamp", "anomaly_score"])
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
        loaded[name] = frame
    missing = (wanted or set()) - set(loaded)
    if not loaded or missing:
        raise FileNotFoundError(
            f"no result files for detector {detector!r} in {results_dir}: {sorted(missing)}"
        )
    return loaded


def as_score_arrays(results: dict[str, pd.DataFrame]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Turn ``load_detector_results`` output into the ``scores`` argument of the scorers."""
    return {
        name: (frame["timestamp"].to_numpy(), frame["anomaly_score"].to_numpy(dtype=float))
        for name, frame in results.items()
    }


def nab_score_arrays(
    nab_dir: Path, detector: str, names: Iterable[str] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A detector's scores paired by row position with the data files' timestamps, as NAB scores them."""
    paired = {}
    for name, frame in load_detector_results(nab_dir, detector, names).items():
        timestamps = load_series(nab_dir, name)["timestamp"].to_numpy()
        if len(timestamps) != len(frame):
            raise ValueError(f"{detector}/{name}: {len(frame)} scores for {len(timestamps)} data rows")
        paired[name] = (timestamps, frame["anomaly_score"].to_numpy(dtype=float))
    return paired


def load_thresholds(nab_dir: Path) -> dict[str, dict[str, float]]:
    """Read ``config/thresholds.json``: detector -> profile -> tuned threshold.

    The ``score`` stored next to each threshold there is stale for some detectors
    (e.g. windowedGaussian); the score tables under ``results/`` are authoritative.
    """
    raw = _read_json(Path(nab_dir) / "config" / "thresholds.json")
    return {det: {prof: float(v["threshold"]) for prof, v in by_prof.items()} for det, by_prof in raw.items()}


def load_published_results(nab_dir: Path) -> dict[str, dict[str, float]]:
    """Read ``results/final_results.json``: detector -> profile -> normalised NAB score."""
    raw = _read_json(Path(nab_dir) / "results" / "final_results.json")
    return {det: {prof: float(v) for prof, v in by_prof.items()} for det, by_prof in raw.items()}


def load_score_table(nab_dir: Path, detector: str, profile: str) -> pd.DataFrame:
    """Read NAB's per-file table ``results/<det>/<det>_<profile>_scores.csv[.gz]``.

    Columns Detector, Profile, File, Threshold, Score, TP, TN, FP, FN,
    Total_Count; the last row (File empty, Detector "Totals") holds the sums.
    """
    path = _existing(Path(nab_dir) / "results" / detector / f"{detector}_{profile}_scores.csv")
    return pd.read_csv(path)
