"""Sensor series: any Numenta Anomaly Benchmark file by name, a NAB-like CSV anywhere on disk, the NASA
IMS bearing CSV, and the series of any ``kind = "series"`` dataset schema.

All of them are read through dataset schemas (the built-in ``nab`` and ``bearing``, or a user's own)
by :func:`stream.datasets.table.read_table`.

Every reader returns :class:`SensorSeries` objects in *file order*: NAB scores by row position, and
some series repeat timestamps or step backwards (daylight-saving changes), so rows are never sorted.

For example::

    series = load_nab_series(Path("../shared/data"), "machine_temperature_system_failure")
    series.name, series.sensor_id, len(series), series.probation
    # -> ('realKnownCause/machine_temperature_system_failure.csv', 'machine_temperature_system_failure',
    #     22695, 750)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from stream.datasets.files import DatasetMissingError, first_file
from stream.datasets.nab import list_series, load_series, load_windows, probation_length, window_row_bounds
from stream.datasets.schema import DatasetSchema, Timestamp, load_schema
from stream.datasets.table import Table, read_table

BEARING_FILES = ("Averaged_BearingTest_Dataset.csv",)


@dataclass(frozen=True)
class SensorSeries:
    """One series: univariate (``values`` of shape ``(n,)``) or multivariate (``(n, channels)``).

    ``name`` is the NAB key (``"<category>/<file>.csv"``), ``"bearing/<column>"``, the file name of a
    NAB-like CSV outside NAB, or ``"<file>/<key>"`` (``"<file>/<column>"``) of a series schema's table;
    ``sensor_id`` is the message key on the topic. ``anomaly_rows`` marks the rows inside an anomaly
    (a NAB anomaly window, or a labelled row of one's own file; None for an unlabelled series).
    """

    name: str
    sensor_id: str
    timestamps: np.ndarray  # datetime64[ns], file order
    values: np.ndarray  # float64, (n,) or (n, channels)
    anomaly_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    @property
    def channels(self) -> int:
        return 1 if self.values.ndim == 1 else int(self.values.shape[1])

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
    """One NAB series by key, file name or stem (read through the ``nab`` schema), with its anomaly
    windows as a row mask."""
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
    """The averaged IMS bearing test 2 through the built-in ``bearing`` schema: one unlabelled series per
    channel (``bearing-1`` .. ``bearing-4``), named ``bearing/<column>``."""
    path = Path(path) if path is not None else find_bearing_file(data_dir)
    table = read_table(load_schema("bearing"), path)
    prefix = f"{table.source}/"
    return [replace(item, name="bearing/" + item.name.removeprefix(prefix)) for item in table_series(table)]


def nab_key_of(path: Path, data_dir: Path) -> str | None:
    """The NAB key of a file that lies in the NAB folder of ``data_dir`` (None elsewhere, or no NAB)."""
    try:
        data = (nab_root(data_dir) / "data").resolve()
    except DatasetMissingError:
        return None
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(data):
        return None
    key = resolved.relative_to(data).as_posix()
    return key if key in list_series(data.parent) else None


def load_series_file(path: Path, data_dir: Path) -> SensorSeries:
    """A NAB-like CSV (``timestamp,value``) anywhere on disk, through the built-in ``nab`` schema; its
    sensor id (the message key) is the file's stem.

    A file inside the NAB folder is that NAB series, with its anomaly windows; any other file is
    unlabelled, and its times may be any ISO 8601 text (NAB's own are ``%Y-%m-%d %H:%M:%S``).
    """
    key = nab_key_of(path, data_dir)
    if key is not None:
        return load_nab_series(data_dir, key)
    schema = load_schema("nab")
    schema = schema.model_copy(update={"timestamp": Timestamp(column="timestamp")})
    table = read_table(schema, path)
    (series,) = table_series(table)
    return replace(series, name=table.source, sensor_id=table.source.rsplit(".", 1)[0], anomaly_rows=None)


def sensor_id_of(text: str) -> str:
    """A message key from a column or key name: ``"Bearing 1"`` -> ``"bearing-1"``."""
    return "-".join(str(text).lower().split())


def table_series(table: Table) -> list[SensorSeries]:
    """The series of a ``kind = "series"`` table: one per key value (in order of first appearance; the
    file's stem when the schema has no key), and with ``multivariate = false`` one per value column
    too. A row's label marks it an anomaly unless it is one of the schema's normal values."""
    spec = table.schema.series
    if spec is None or table.timestamps is None:
        raise ValueError(f"schema {table.schema.name!r} is not a series schema (kind = 'series')")
    stem = table.source.rsplit(".", 1)[0]
    keys = table.keys if table.keys is not None else np.full(len(table), stem, dtype=object)
    groups = pd.unique(keys)
    out = []
    for key in groups:
        rows = np.flatnonzero(keys == key) if len(groups) > 1 else np.arange(len(table))
        values = table.frame[spec.values].to_numpy(dtype=np.float64)[rows]
        anomaly = None if table.normal is None else ~table.normal[rows]
        times = table.timestamps[rows]
        if spec.multivariate or len(spec.values) == 1:
            flat = values[:, 0] if len(spec.values) == 1 else values
            out.append(SensorSeries(f"{table.source}/{key}", sensor_id_of(str(key)), times, flat, anomaly))
            continue
        for column, channel in zip(spec.values, values.T, strict=True):
            sensor = sensor_id_of(column) if len(groups) == 1 else sensor_id_of(f"{key} {column}")
            channel = np.ascontiguousarray(channel)  # a column of the rows: strided otherwise
            out.append(SensorSeries(f"{table.source}/{column}", sensor, times, channel, anomaly))
    return out


def sensor_source(
    data_dir: Path, series: str | None = None, bearing: bool = False
) -> tuple[DatasetSchema, Path]:
    """The built-in schema and the file of the sensor stream's data: a NAB series (the path of a NAB-like
    CSV, else a NAB series by key, file name or stem) read through ``nab``, or the bearing CSV through
    ``bearing``."""
    if bearing == (series is not None):
        raise ValueError(
            "name exactly one source: a NAB series (--series NAME or PATH) or the bearing CSV (--bearing)"
        )
    if bearing:
        return load_schema("bearing"), find_bearing_file(data_dir)
    path = Path(str(series)).expanduser()
    key = nab_key_of(path, data_dir) if path.is_file() else resolve_series(nab_root(data_dir), str(series))
    if key is not None:
        return load_schema("nab"), nab_root(data_dir) / "data" / key
    # Any other NAB-like file: its times may be any ISO 8601 text (load_series_file).
    return load_schema("nab").model_copy(update={"timestamp": Timestamp(column="timestamp")}), path


def load_sensor_series(
    data_dir: Path, series: str | None = None, bearing: bool = False
) -> list[SensorSeries]:
    """The series named by ``series``: the path of a NAB-like CSV (:func:`load_series_file`), else a NAB
    series by key, file name or stem; or the four bearing channels."""
    if bearing == (series is not None):
        raise ValueError(
            "name exactly one source: a NAB series (--series NAME or PATH) or the bearing CSV (--bearing)"
        )
    if bearing:
        return load_bearing(data_dir)
    if Path(str(series)).expanduser().is_file():
        return [load_series_file(Path(str(series)).expanduser(), data_dir)]
    return [load_nab_series(data_dir, str(series))]
