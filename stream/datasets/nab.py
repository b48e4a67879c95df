"""Readers for a NAB checkout laid out as in numenta/NAB.

``nab_dir`` holds ``data/<category>/<series>.csv``, ``labels/combined_windows.json``,
``config/profiles.json``, ``config/thresholds.json`` and ``results/`` (the
detectors' result files may be gzipped). Series are keyed ``"<category>/<file>.csv"``
everywhere, as in NAB's label files.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stream.datasets.schema import load_schema
from stream.datasets.table import read_table

PROBATION_FRACTION = 0.15
# NAB caps the probationary period at the fraction of this many rows (750 rows at 15 %).
PROBATION_CAP_ROWS = 5000

WindowLimits = Sequence[tuple[pd.Timestamp, pd.Timestamp]]


@dataclass(frozen=True)
class Profile:
    """One NAB application profile (a cost matrix)."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float
    tn_weight: float = 1.0


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
    """Read one series through the built-in ``nab`` dataset schema: columns ``timestamp``
    (datetime64[ns]) and ``value`` (float64), in file order.

    The order is kept even where timestamps repeat or step backwards, because NAB
    scores rows by position.
    """
    table = read_table(load_schema("nab"), Path(nab_dir) / "data" / name)
    return pd.DataFrame({"timestamp": table.timestamps, "value": table.numeric()[:, 0]})


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


def probation_length(n_rows: int, fraction: float = PROBATION_FRACTION) -> int:
    """Number of leading rows NAB ignores: ``min(floor(fraction*n), fraction*5000)``.

    NAB compares ``row_index >= probation`` with a float bound, so the ceiling of
    the bound gives the same set of rows.
    """
    return int(math.ceil(min(math.floor(fraction * n_rows), fraction * PROBATION_CAP_ROWS)))


def _to_datetime64(values: object) -> np.ndarray:
    return pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[ns]")


def window_row_bounds(timestamps: np.ndarray, limits: WindowLimits) -> np.ndarray:
    """Map ``(start, end)`` window timestamps to inclusive row ranges.

    NAB enters a window on the row whose timestamp equals the window start and
    leaves it on the first later row whose timestamp equals the window end; its
    labeller guarantees both exist exactly once. To stay defined on series whose
    timestamps repeat or step backwards, a window here starts at the first row
    with ``timestamp >= start`` and ends at the first later row with
    ``timestamp == end`` (or just before the first later row with
    ``timestamp > end``). On NAB's corpus this is identical to NAB.
    Windows that cover no row are dropped with a warning.
    """
    ts = _to_datetime64(timestamps)
    n = len(ts)
    bounds: list[tuple[int, int]] = []
    for start_t, end_t in sorted((pd.Timestamp(a), pd.Timestamp(b)) for a, b in limits):
        t1, t2 = np.datetime64(start_t.to_datetime64(), "ns"), np.datetime64(end_t.to_datetime64(), "ns")
        after_start = np.flatnonzero(ts >= t1)
        start = int(after_start[0]) if len(after_start) else n
        reach = np.flatnonzero(ts[start:] >= t2)
        if not len(reach):
            end = n - 1
        else:
            j = start + int(reach[0])
            end = j if ts[j] == t2 else j - 1
        if start >= n or end < start:
            warnings.warn(f"NAB window {start_t}..{end_t} covers no row; ignored", stacklevel=2)
            continue
        if bounds and start <= bounds[-1][1]:
            raise ValueError(f"NAB windows overlap at {start_t}; NAB requires disjoint windows")
        bounds.append((start, end))
    return np.asarray(bounds, dtype=np.int64).reshape(-1, 2)
