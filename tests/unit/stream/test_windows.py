"""Window slicing shared by the sensor replay and offline evaluation: no off-by-one, row order kept."""

from __future__ import annotations

import numpy as np
import pytest

from producers.sensor import iso_times, sensor_events
from stream.datasets.sensor import SensorSeries, load_nab_series
from stream.messages import decode_sensor_window
from stream.windows import per_row_scores, sliding_windows, window_end_rows
from tests.support import require_data


def test_windows_end_on_the_row_they_claim() -> None:
    values = np.arange(10.0)
    ends = window_end_rows(10, length=4, stride=1)
    assert ends.tolist() == [3, 4, 5, 6, 7, 8, 9]  # n - length + 1 windows, the first ends on row 3
    windows = sliding_windows(values, 4)
    assert windows.shape == (7, 4)
    # Values are row numbers: each window is rows end-3 .. end, the last value is its end row.
    np.testing.assert_array_equal(windows[:, -1], ends)
    np.testing.assert_array_equal(windows[:, 0], ends - 3)


def test_stride_and_the_last_window() -> None:
    # 10 rows, length 4, stride 3: windows end on 3, 6, 9; the last one ends exactly on the last row.
    assert window_end_rows(10, 4, 3).tolist() == [3, 6, 9]
    # stride 4: ends on 3 and 7; rows 8-9 complete no window yet (a live stream waits for row 11).
    assert window_end_rows(10, 4, 4).tolist() == [3, 7]
    assert sliding_windows(np.arange(10.0), 4, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # Exactly one window when the series is as long as a window; none when shorter.
    assert window_end_rows(4, 4).tolist() == [3]
    assert window_end_rows(3, 4).tolist() == []
    assert sliding_windows(np.arange(3.0), 4).shape == (0, 4)


@pytest.mark.parametrize(("length", "stride"), [(1, 1), (4, 0)])
def test_invalid_window_specs_are_refused(length: int, stride: int) -> None:
    with pytest.raises(ValueError):
        window_end_rows(10, length, stride)


def test_per_row_scores_pair_each_row_with_the_window_ending_there() -> None:
    ends = window_end_rows(8, 3)  # 2..7
    scores = per_row_scores(8, ends, np.arange(1.0, 7.0))
    assert scores.tolist() == [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    # stride 2: rows between two window ends keep the last window's score.
    held = per_row_scores(8, window_end_rows(8, 3, 2), np.array([1.0, 2.0, 3.0]), fill=-1.0)
    assert held.tolist() == [-1.0, -1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        per_row_scores(8, ends, np.ones(3))


def _replayed(series: SensorSeries, length: int) -> list:
    return [decode_sensor_window(e.value) for e in sensor_events([series], length)]


def test_backward_timestamps_keep_row_order() -> None:
    t = np.array(
        ["2014-03-09T01:50", "2014-03-09T01:55", "2014-03-09T01:00", "2014-03-09T01:05"], "datetime64[ns]"
    )
    windows = _replayed(SensorSeries("toy", "toy", t, np.arange(4.0)), 2)
    assert [w.values for w in windows] == [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]
    # The window over the step back starts later than it ends: reported as the rows say, not sorted.
    assert (windows[1].start, windows[1].end) == ("2014-03-09T01:55:00Z", "2014-03-09T01:00:00Z")


@pytest.mark.data
def test_real_series_with_repeated_timestamps() -> None:
    require_data("nab", "data", "realKnownCause", "machine_temperature_system_failure.csv")
    series = load_nab_series(require_data(), "machine_temperature_system_failure")
    steps = np.diff(series.timestamps.astype(np.int64))
    assert (steps <= 0).sum() >= 1, "the series is known to step backwards"
    length = 8  # shorter than the hour that repeats, so some windows start after they end
    windows = _replayed(series, length)
    assert len(windows) == len(series) - length + 1
    ends = iso_times(series.timestamps[length - 1 :])
    starts = iso_times(series.timestamps[: len(series) - length + 1])
    assert [w.end for w in windows] == ends and [w.start for w in windows] == starts
    assert [w.values[-1] for w in windows] == series.values[length - 1 :].tolist()
    assert any(w.start > w.end for w in windows)  # windows over the step back are kept as they are
