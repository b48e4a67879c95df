"""Any table as a live stream: ``anomstream replay FILE --schema S``.

The file is read whole and checked against its :mod:`dataset schema <stream.datasets.schema>` first,
and every message is built before the first is sent, so a file that disagrees with its schema
publishes nothing. What a message is depends on the schema's kind:

- ``records``: one JSON object per row: every numeric feature as a JSON number (a column whose values
  are all whole numbers as integers, as the file has them, any other as the shortest text that reads
  back to the same float64), every categorical one as a string, and the timestamp column, when the
  schema has one, as RFC 3339 UTC text. Key: the schema's ``key`` column, else
  ``<file>-<pass>-<row:07d>`` (as ``replay kdd``);
- ``series``: one :class:`~stream.messages.SensorWindow` per sliding window, keyed by sensor id, as
  ``replay sensor`` sends them (several value columns: one multivariate window, ``channels`` > 1);
- ``windows``: one ``{"record", "values"}`` object per row (an :class:`~stream.messages.EcgBeat`),
  keyed by the ``key`` column, else ``<file>-<row:05d>``.

Ground truth rides in the ``label`` header (:meth:`~stream.datasets.table.Table.header_labels`; a
series window's is its last row's, ``anomaly`` / ``normal``), never in the value. The topic is the
schema's input topic, created if missing.

For example::

    replay_table(Settings(), load_schema("weather.toml"), "weather.parquet", ReplayOptions(rate=100))
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import orjson
import pandas as pd

from producers.drift import DriftSpec, drifted_records, sensor_drift_events, with_phases
from producers.ecg import record_id
from producers.replay import Event, ReplayProducer, ReplayStats, repeat
from producers.sensor import SeriesPacer, event_count, event_end_times, iso_times, sensor_events
from stream.datasets.files import DatasetFormatError
from stream.datasets.schema import DatasetSchema
from stream.datasets.sensor import SensorSeries, table_series
from stream.datasets.table import Table, read_table
from stream.errors import ConfigurationError
from stream.kafka import create_topics, wait_for_broker
from stream.settings import Settings
from stream.windows import WindowSpec

# Whole numbers up to 2**53 are exact as float64 too: a decoder reading them as floats gets the
# file's value back.
EXACT_INTEGERS = 2.0**53
# What one EcgBeat may carry (stream.messages).
BEAT_VALUES = (8, 4096)


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay a table: pacing (``rate`` events/s, or the table's own clock ``/ speedup`` with
    waits capped at ``max_gap`` s), how much (``limit``, ``loop``), series windows (``window`` and
    ``stride``, default the schema's) and a drift scenario."""

    rate: float = 0.0
    limit: int | None = None
    loop: bool = False
    speedup: float | None = None
    max_gap: float | None = 10.0
    window: int | None = None
    stride: int | None = None
    drift: DriftSpec | None = None


@dataclass(frozen=True)
class TableEvents:
    """The events of a table and what pacing needs: ``count`` events a pass, and the time of each
    (None where the schema has no timestamp)."""

    events: Iterator[Event]
    count: int
    times: np.ndarray | None


# -- records ----------------------------------------------------------------------------------------
def _number_texts(name: str, column: np.ndarray, table: Table) -> list[str]:
    finite = np.isfinite(column)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise DatasetFormatError(
            f"{table.source}: column {name!r}, row {table.file_row(row)}: {column[row]} is not a finite "
            "number, which JSON "
            "cannot carry: fix the value, or drop the row"
        )
    if np.array_equal(column, np.trunc(column)) and (
        not len(column) or np.abs(column).max() <= EXACT_INTEGERS
    ):
        return [str(v) for v in column.astype(np.int64).tolist()]
    return [repr(v) for v in column.tolist()]  # float repr: the shortest text that reads back exactly


def _string_texts(values: np.ndarray) -> list[str]:
    quoted = {value: orjson.dumps(value).decode() for value in pd.unique(values)}
    return [quoted[value] for value in values.tolist()]


def encode_records(table: Table) -> list[bytes]:
    """Each row of a ``records`` table as the JSON value of its message.

    >>> from stream.datasets.schema import DatasetSchema
    >>> schema = DatasetSchema(name="toy", features={"numeric": ["bytes", "rate"], "categorical": ["proto"]})
    >>> frame = pd.DataFrame({"bytes": [181.0, 239.0], "rate": [0.0, 0.5], "proto": ["tcp", "udp"]})
    >>> [value.decode() for value in encode_records(Table(schema, "toy.csv", frame))]
    ['{"bytes":181,"rate":0.0,"proto":"tcp"}', '{"bytes":239,"rate":0.5,"proto":"udp"}']
    """
    schema = table.schema
    numbers = table.numeric()
    names: list[str] = [*schema.features.numeric, *schema.features.categorical]
    columns = [_number_texts(name, numbers[:, i], table) for i, name in enumerate(schema.features.numeric)]
    columns += [_string_texts(column) for column in table.symbols().T]
    if schema.timestamp is not None and schema.timestamp.column is not None and table.timestamps is not None:
        names.append(schema.timestamp.column)
        columns.append(_string_texts(np.array(iso_times(table.timestamps), dtype=object)))
    # A %-template is ~3x faster than a dict per row (see producers.kdd); a "%" in a name is escaped.
    template = "{" + ",".join(orjson.dumps(name).decode().replace("%", "%%") + ":%s" for name in names) + "}"
    return [(template % values).encode() for values in zip(*columns, strict=True)]


def record_events(table: Table, loop: bool = False, limit: int | None = None) -> Iterator[Event]:
    """One event per row of a ``records`` table, keyed by its ``key`` column or
    ``<file>-<pass>-<row:07d>``, its label in the header. Every row is encoded before this returns.

    >>> from stream.datasets.schema import DatasetSchema
    >>> schema = DatasetSchema(name="toy", features={"numeric": ["x"]})
    >>> table = Table(schema, "toy.csv", pd.DataFrame({"x": [1.0, 2.0]}))
    >>> [e.key for e in record_events(table, loop=True, limit=3)]
    [b'toy.csv-0-0000000', b'toy.csv-0-0000001', b'toy.csv-1-0000000']
    """
    values = encode_records(table)
    labels = table.header_labels()
    keys = None if table.keys is None else [str(key).encode() for key in table.keys.tolist()]

    def events() -> Iterator[Event]:
        passes = itertools.count() if loop else range(1)
        rows = ((p, row) for p in passes for row in range(len(values)))
        for p, row in itertools.islice(rows, limit):
            # The file's row, not the table's: a row dropped before it (missing = "drop") keeps the
            # ids of the rows after it.
            key = (
                keys[row]
                if keys is not None
                else f"{table.source}-{p}-{table.file_row(row) - 1:07d}".encode()
            )
            yield Event(key, values[row], labels[row])

    return events()


# -- windows ----------------------------------------------------------------------------------------
def window_events(table: Table, loop: bool = False, limit: int | None = None) -> Iterator[Event]:
    """One event per row of a ``windows`` table: ``{"record": key, "values": [...]}``, keyed by the
    record id (the ``key`` column, else ``<file>-<row:05d>``), its label in the header."""
    samples = np.ascontiguousarray(table.numeric())  # orjson serialises C-ordered rows only
    low, high = BEAT_VALUES
    if not low <= samples.shape[1] <= high:
        raise DatasetFormatError(
            f"{table.source}: a row holds {samples.shape[1]} samples; a window message carries {low} to "
            f"{high:,}: check the schema's columns"
        )
    _check_finite(table.source, samples, table)
    if table.keys is not None:
        ids = [str(key) for key in table.keys.tolist()]
    else:
        ids = [record_id(table.source, table.file_row(row) - 1) for row in range(len(table))]
    dumps, numpy = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY
    events = [
        Event(record.encode(), dumps({"record": record, "values": values}, option=numpy), label)
        for record, values, label in zip(ids, samples, table.header_labels(), strict=True)
    ]
    return repeat(events, loop, limit)


def _check_finite(source: str, values: np.ndarray, table: Table | None = None) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = (int(i[0]) for i in np.nonzero(bad))
        number = table.file_row(row) if table is not None else row + 1
        raise DatasetFormatError(
            f"{source}: row {number}, value {column + 1} is {values[row, column]}, not a finite number, "
            "which JSON cannot carry: fix the value, or drop the row"
        )


# -- series -----------------------------------------------------------------------------------------
def window_of(schema: DatasetSchema, options: ReplayOptions) -> WindowSpec:
    """The window and stride: the options' if given, else the schema's ``[series]``."""
    assert schema.series is not None
    window = options.window if options.window is not None else schema.series.window
    stride = options.stride if options.stride is not None else schema.series.stride
    return WindowSpec(window, stride)


def _series(table: Table) -> list[SensorSeries]:
    series = table_series(table)
    for item in series:
        _check_finite(item.name, item.values.reshape(len(item), -1))
    return series


# -- any kind ---------------------------------------------------------------------------------------
def table_events(table: Table, options: ReplayOptions) -> TableEvents:
    """The events of ``table`` as its schema's kind makes them, with ``options``' window, loop, limit
    and drift; every message is built (and so checked) before this returns."""
    schema, drift = table.schema, options.drift
    if schema.kind != "series" and (options.window is not None or options.stride is not None):
        raise ConfigurationError(f"--window and --stride cut series; schema {schema.name!r} is {schema.kind}")
    if drift is not None and options.loop:
        raise ConfigurationError("--drift replays one pass with a single change: drop --loop")
    if schema.kind == "series":
        spec = window_of(schema, options)
        series = _series(table)
        # Both build every window's message before they return.
        if drift is not None:
            events = sensor_drift_events(series, drift, spec.length, spec.stride, options.limit)
        else:
            events = sensor_events(series, spec.length, spec.stride, options.loop, options.limit)
        times = event_end_times(series, spec.length, spec.stride)
        return TableEvents(events, event_count(series, spec.length, spec.stride), times)
    if drift is not None and schema.kind == "windows":
        raise ConfigurationError(
            f"--drift changes records or series; schema {schema.name!r} is windows (rows of samples)"
        )
    if schema.kind == "windows":
        return TableEvents(window_events(table, options.loop, options.limit), len(table), table.timestamps)
    if drift is not None:
        if not schema.features.numeric:
            raise ConfigurationError(f"--drift moves numeric features; schema {schema.name!r} has none")
        frame = table.frame.copy()
        frame[schema.features.numeric] = drifted_records(table.numeric(), drift)
        events = with_phases(record_events(replace(table, frame=frame), limit=options.limit), drift)
        return TableEvents(events, len(table), table.timestamps)
    return TableEvents(record_events(table, options.loop, options.limit), len(table), table.timestamps)


def replay_table(
    settings: Settings, schema: DatasetSchema, path: str | None, options: ReplayOptions
) -> ReplayStats:
    """``anomstream replay FILE --schema S``: ``path`` (default the schema's ``source.path``) into the
    schema's input topic, created if missing."""
    if options.speedup is not None and options.rate:
        raise ConfigurationError("pace by --speedup or by --rate, not both")
    table = read_table(schema, path)
    planned = table_events(table, options)
    pacer = None
    if options.speedup is not None:
        if planned.times is None:
            raise ConfigurationError(
                f"--speedup paces by the rows' times, and schema {schema.name!r} has no [timestamp]: "
                "use --rate"
            )
        pacer = SeriesPacer(planned.times, options.speedup, options.max_gap)
    total = planned.count if not options.loop else None
    if options.limit is not None:
        total = options.limit if total is None else min(options.limit, total)
    topic = schema.input_topic(settings)
    wait_for_broker(settings, timeout=15)
    create_topics(settings, topics=[topic])
    producer = ReplayProducer(settings, topic, rate=options.rate, pacer=pacer)
    return producer.run(planned.events, total, f"{table.source} -> {topic}")
