"""Sensor series: any Numenta Anomaly Benchmark file by name, and the NASA IMS bearing CSV.

Every reader returns :class:`SensorSeries` objects in *file order*: NAB scores by row position, and
some series repeat timestamps or step backwards (daylight-saving changes), so rows are never sorted.

For example::

    series = load_nab_series(Path("../shared/data"), "machine_temperature_system_failure")
    series.name, series.sensor_id, len(series), series.probation
    # -> ('realKnownCause/machine_temperature_system_failure.csv', 'machine_temperature_system_failure',
    #     22695, 750)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stream.datasets.files import DatasetMissingError, first_file
from stream.datasets.nab import list_series, load_series, load_windows, probation_length, window_row_bounds

BEARING_FILES = ("Averaged_BearingTest_Dataset.csv",)


@dataclass(frozen=True)
class SensorSeries:
    """One univariate series.

    ``name`` is the NAB key (``"<category>/<file>.csv"``) or ``"bearing/<column>"``; ``sensor_id`` is
    the message key on the topic. ``anomaly_rows`` marks the rows inside a NAB anomaly window (None
    for an unlabelled series).
    """

    name: str
    sensor_id: str
    timestamps: np.ndarray  # datetime64[ns], file order
    values: np.ndarray  # float64
    anomaly_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    @property
    def probation(self) -> int:
        """Rows of NAB's probationary period (the first 15%, at most 750): the training part."""
        return probation_length(len(self.values))


def nab_root(data_dir: Path) -> Path:
    """The NAB folder (``DATA_DIR/nab`` or ``DATA_DIR`` itself) holding ``data/`` and ``labels/``."""
    for folder in (Path(data_dir) / "nab", Path(data_dir)):
        if (folder / "data").is_dir() and (folder / "labels" / "combined_windows.json").is_file():
            return folder
    raise DatasetMissingError(
        f"NAB not found under {data_dir} (expected nab/data/<category>/*.csv and "
        "nab/labels/combined_windows.json). Run `anomstream data fetch nab`, or set ANOMSTREAM_DATA_DIR "
        "to the folder that holds nab/."
    )


def resolve_series(root: Path, name: str) -> str:
    """The NAB key of ``name``: a key (``realKnownCause/nyc_taxi.csv``), a file name, or a stem.

    For example::

        resolve_series(nab_root(Path("../shared/data")), "nyc_taxi")
        # -> 'realKnownCause/nyc_taxi.csv'
    """
    keys = list_series(root)
    wanted = name.strip().removeprefix("data/")
    if wanted in keys:
        return wanted
    stem = Path(wanted).name.removesuffix(".csv")
    matches = [k for k in keys if Path(k).stem == stem]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"{name!r} is ambiguous: {', '.join(matches)}; give the category too")
    close = [k for k in keys if stem.lower() in k.lower()][:5]
    hint = f"; did you mean {', '.join(close)}?" if close else f"; {len(keys)} series under {root}/data"
    raise DatasetMissingError(f"no NAB series {name!r}{hint}")


def anomaly_row_mask(timestamps: np.ndarray, windows: list[tuple[pd.Timestamp, pd.Timestamp]]) -> np.ndarray:
    """Per row, whether it lies in a NAB anomaly window, mapped to rows exactly as the scorer does."""
    mask = np.zeros(len(timestamps), dtype=bool)
    for start, end in window_row_bounds(timestamps, windows):
        mask[start : end + 1] = True
    return mask


def load_nab_series(data_dir: Path, name: str) -> SensorSeries:
    """One NAB series by key, file name or stem, with its anomaly windows as a row mask."""
    root = nab_root(data_dir)
    key = resolve_series(root, name)
    frame = load_series(root, key)
    timestamps = frame["timestamp"].to_numpy(dtype="datetime64[ns]")
    windows = load_windows(root).get(key, [])
    return SensorSeries(
        name=key,
        sensor_id=Path(key).stem,
        timestamps=timestamps,
        values=frame["value"].to_numpy(dtype=np.float64),
        anomaly_rows=anomaly_row_mask(timestamps, windows),
    )


def list_nab_series(data_dir: Path) -> list[str]:
    """Every NAB series key under the data folder, sorted."""
    return list_series(nab_root(data_dir))


def find_bearing_file(data_dir: Path) -> Path:
    found = first_file((Path(data_dir) / "bearing", Path(data_dir)), BEARING_FILES)
    if found is not None:
        return found
    raise DatasetMissingError(
        f"bearing CSV not found under {data_dir} (looked for bearing/{BEARING_FILES[0]}); set "
        "ANOMSTREAM_DATA_DIR to the folder that holds bearing/, or pass the file's path"
    )


def load_bearing(data_dir: Path, path: Path | None = None) -> list[SensorSeries]:
    """The averaged IMS bearing test 2: one unlabelled series per channel (``bearing-1`` .. ``bearing-4``)."""
    path = Path(path) if path is not None else find_bearing_file(data_dir)
    frame = pd.read_csv(path)
    time_column = frame.columns[0]
    timestamps = pd.to_datetime(frame[time_column]).to_numpy(dtype="datetime64[ns]")
    series = []
    for column in frame.columns[1:]:
        sensor_id = "-".join(str(column).lower().split())  # "Bearing 1" -> "bearing-1"
        values = frame[column].to_numpy(dtype=np.float64)
        series.append(SensorSeries(f"bearing/{column}", sensor_id, timestamps, values, None))
    return series


def load_sensor_series(
    data_dir: Path, series: str | None = None, bearing: bool = False
) -> list[SensorSeries]:
    """The NAB series named (key, file name or stem), or the four bearing channels."""
    if bearing == (series is not None):
        raise ValueError(
            "name exactly one source: a NAB series (--series NAME) or the bearing CSV (--bearing)"
        )
    return load_bearing(data_dir) if bearing else [load_nab_series(data_dir, str(series))]
