"""Sensor series as replay events: one :class:`~stream.messages.SensorWindow` per sliding window.

Windows come from :mod:`stream.windows` (the slicing offline training and the NAB benchmark use), in
row order; ``start`` / ``end`` are the timestamps of the window's first and last row, in the series'
own clock (ISO 8601, as in the file: NAB's timestamps carry no zone). The key is the sensor id, so
all windows of one sensor go to one partition, in order. The ``label`` header says whether the
window's *last* row lies in a NAB anomaly window (``anomaly`` / ``normal``; none for unlabelled
series such as the bearing channels): the window is scored when that row arrives.

A multivariate series (``values`` of shape ``(rows, channels)``) sends each window's rows one after
the other, all channels of a row together, and says ``"channels": k``; a univariate window has no
``channels`` field (its messages are byte for byte what they were before channels existed).

Several series (the four bearing channels, the keys of a series schema) are interleaved window by
window, so they advance together; a series with fewer windows drops out when they end, the others
go on.

Kafka's message timestamp stays the wall clock: historic timestamps would let the broker's time-based
retention delete the data at once. The worker reads a window's event time from its ``end`` field.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np
import orjson

from producers.replay import Clock, Event, Pacer, ReplayProducer, ReplayStats, repeat
from stream.datasets.sensor import SensorSeries, load_sensor_series
from stream.errors import ConfigurationError
from stream.settings import Settings
from stream.signals import StopFlag
from stream.windows import WindowSpec, sliding_windows, window_end_rows

ANOMALY, NORMAL = "anomaly", "normal"
T = TypeVar("T")
# What one SensorWindow may carry (stream.messages): a larger window would only reach the dead letters.
MAX_WINDOW_VALUES, MAX_CHANNELS = 4096, 256


def iso_times(timestamps: np.ndarray) -> list[str]:
    """RFC 3339 text of datetime64 values, to the second unless a value has a fraction.

    Series timestamps (NAB, bearing) carry no time zone; they are read as UTC and written with a
    ``Z`` so alerts stay valid against the schema's date-time format.

    >>> iso_times(np.array(["2014-01-07T02:00:00"], "datetime64[ns]"))
    ['2014-01-07T02:00:00Z']
    """
    ts = np.asarray(timestamps, dtype="datetime64[ns]")
    unit = "s" if np.array_equal(ts.astype("datetime64[s]"), ts) else "ms"
    return list(np.datetime_as_string(ts, unit=unit, timezone="UTC").tolist())  # type: ignore[call-overload]


def check_window_size(series: Sequence[SensorSeries], window: int) -> None:
    """Refuse windows that a sensor window message cannot carry, before anything is published."""
    for item in series:
        if item.channels > MAX_CHANNELS or window * item.channels > MAX_WINDOW_VALUES:
            raise ConfigurationError(
                f"{item.name}: a window of {window} rows x {item.channels} channels holds "
                f"{window * item.channels:,} values; a sensor window carries at most {MAX_WINDOW_VALUES:,} "
                f"values of at most {MAX_CHANNELS} channels: use a shorter --window, or fewer value columns"
            )


def _series_windows(item: SensorSeries, window: int, stride: int) -> list[tuple[bytes, str | None]]:
    ends = window_end_rows(len(item), window, stride)
    starts = ends - (window - 1)
    start_text, end_text = iso_times(item.timestamps[starts]), iso_times(item.timestamps[ends])
    labels: list[str | None] = [None] * len(ends)
    if item.anomaly_rows is not None:
        labels = [ANOMALY if flag else NORMAL for flag in item.anomaly_rows[ends].tolist()]
    extra = {"channels": item.channels} if item.channels > 1 else {}
    out = []
    for start, end, values, label in zip(
        start_text, end_text, sliding_windows(item.values, window, stride), labels, strict=True
    ):
        record = {"sensor_id": item.sensor_id, "start": start, "end": end, "values": values, **extra}
        out.append((orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY), label))
    return out


def sensor_events(
    series: Sequence[SensorSeries],
    window: int,
    stride: int = 1,
    loop: bool = False,
    limit: int | None = None,
) -> Iterator[Event]:
    """Events of every complete window of ``series``, interleaved by window, keyed by sensor id.

    >>> import numpy as np
    >>> t = np.arange("2014-01-01T00:00", "2014-01-01T00:25", 5, dtype="datetime64[m]")
    >>> flags = np.array([0, 0, 0, 1, 0], bool)
    >>> s = SensorSeries("toy", "toy", t.astype("datetime64[ns]"), np.arange(5.0), flags)
    >>> [(e.key, e.label) for e in sensor_events([s], window=3)]
    [(b'toy', 'normal'), (b'toy', 'anomaly'), (b'toy', 'normal')]
    """
    check_window_size(series, window)
    per_series = [
        [Event(item.sensor_id.encode(), *built) for built in _series_windows(item, window, stride)]
        for item in series
    ]
    return repeat(round_robin(per_series), loop, limit)


def round_robin(parts: Sequence[Sequence[T]]) -> list[T]:
    """One item of each part in turn; a part that ends drops out.

    >>> round_robin([[1, 2, 3], ["a"], [10, 20]])
    [1, 'a', 10, 2, 20, 3]
    """
    longest = max((len(part) for part in parts), default=0)
    return [part[index] for index in range(longest) for part in parts if index < len(part)]


def event_count(series: Sequence[SensorSeries], window: int, stride: int = 1) -> int:
    """Events in one pass of :func:`sensor_events`."""
    return sum(len(window_end_rows(len(s), window, stride)) for s in series)


class SeriesPacer(Pacer):
    """Paces events by the series' own clock: the gap between two windows' ``end`` timestamps,
    divided by ``speedup``.

    A timestamp that steps backwards (or repeats) adds no wait, never a negative one, and rows are
    never reordered; a gap in the series waits at most ``max_gap`` wall seconds (None: no cap). With
    ``loop``, the next pass follows the last event after one median step.

    >>> t = np.array(["2014-01-01T00:00", "2014-01-01T00:05", "2014-01-01T00:00", "2014-01-01T02:00"],
    ...              "datetime64[ns]")
    >>> SeriesPacer(t, speedup=60, max_gap=10).due.tolist()   # 5 min / 60; back: 0; 2 h: capped
    [0.0, 5.0, 5.0, 15.0]
    """

    def __init__(
        self, end_times: np.ndarray, speedup: float, max_gap: float | None = None, clock: Clock | None = None
    ) -> None:
        if speedup <= 0:
            raise ValueError(f"speedup must be positive, got {speedup}")
        super().__init__(0.0, clock)
        self.chunk = 1  # every event has its own due time
        ends = np.asarray(end_times, dtype="datetime64[ns]").astype(np.int64) / 1e9
        gaps = np.maximum(np.diff(ends), 0.0) / speedup
        if max_gap is not None:
            gaps = np.minimum(gaps, max_gap)
        self.due = np.concatenate([[0.0], np.cumsum(gaps)])  # seconds after the first event
        positive = gaps[gaps > 0]
        self.pass_seconds = float(self.due[-1] + (np.median(positive) if len(positive) else 0.0))
        self._started: float | None = None

    def due_at(self, index: int) -> float:
        """Seconds after the first event at which event ``index`` is due (any pass)."""
        passes, within = divmod(index, len(self.due))
        return passes * self.pass_seconds + float(self.due[within])

    def wait(self, sent: int, stop: StopFlag) -> None:
        # The clock starts when the first event has gone out, not when the pacer was built.
        if self._started is None:
            self._started = self.clock.now() - self.due_at(sent - 1)
        ahead = self._started + self.due_at(sent) - self.clock.now()
        if ahead > 0:
            self.clock.sleep(ahead, stop)


def event_end_times(series: Sequence[SensorSeries], window: int, stride: int = 1) -> np.ndarray:
    """The ``end`` timestamp of every event of one pass of :func:`sensor_events`, in event order."""
    parts = [item.timestamps[window_end_rows(len(item), window, stride)] for item in series]
    if not parts:
        return np.zeros(0, "datetime64[ns]")
    # The order of round_robin, vectorised: by window index, then by series.
    index = np.concatenate([np.arange(len(part)) for part in parts])
    which = np.concatenate([np.full(len(part), k) for k, part in enumerate(parts)])
    return np.concatenate(parts).astype("datetime64[ns]")[np.lexsort((which, index))]


def replay_sensor(
    settings: Settings,
    series: str | None = None,
    bearing: bool = False,
    window: int = 16,
    stride: int = 1,
    speedup: float | None = None,
    max_gap: float = 10.0,
    rate: float = 0.0,
    limit: int | None = None,
    loop: bool = False,
) -> ReplayStats:
    """``anomstream replay sensor``: a series' sliding windows into the ``sensor.windows`` topic, paced
    by the series' own timestamps ``/ speedup`` or at a fixed ``rate``."""
    if speedup is not None and rate:
        raise ValueError("pace by --speedup or by --rate, not both")
    WindowSpec(window, stride)
    chosen = load_sensor_series(settings.data_dir, series, bearing)
    pacer = SeriesPacer(event_end_times(chosen, window, stride), speedup, max_gap) if speedup else None
    total = limit if limit is not None else (None if loop else event_count(chosen, window, stride))
    events = sensor_events(chosen, window, stride, loop, limit)
    producer = ReplayProducer(settings, settings.topic("sensor"), rate=rate, pacer=pacer)
    return producer.run(events, total, ", ".join(item.sensor_id for item in chosen))
