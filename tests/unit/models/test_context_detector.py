"""The sensor ``context`` detector: it learns all along, sees no future, scores the same however the
stream is batched, and resumes from a checkpoint exactly."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from models.detectors.context import ContextDetector
from models.evaluation.nab.benchmark import run_online
from stream.datasets.sensor import load_nab_series
from stream.windows import sliding_windows
from tests.support import require_data

WINDOW = 16
# The shortest NAB series (1,127 rows): a road speed sensor with one labelled anomaly window.
SHORT_SERIES = "realTraffic/speed_7578.csv"


def wave(n: int = 3000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sin(np.arange(n) * 2 * np.pi / 50) + rng.normal(0, 0.05, n)


def fitted(X: np.ndarray, **params: object) -> ContextDetector:
    """A detector that has learnt nothing yet: the tests stream ``X`` through it from its start."""
    return ContextDetector(gap=WINDOW, **params).fit(X[:0])  # type: ignore[arg-type]


def stream(detector: ContextDetector, X: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Score then learn ``X`` in consecutive batches of ``sizes`` (cycled), as a worker does."""
    scores, start, i = [], 0, 0
    while start < len(X):
        batch = X[start : start + sizes[i % len(sizes)]]
        scores.append(detector.score_next(batch))
        detector.learn(batch)
        start, i = start + len(batch), i + 1
    return np.concatenate(scores)


def test_scores_do_not_depend_on_the_batching() -> None:
    X = sliding_windows(wave(1200), WINDOW)
    whole = stream(fitted(X), X, [len(X)])
    assert np.array_equal(stream(fitted(X), X, [1]), whole)
    assert np.array_equal(stream(fitted(X), X, [7, 64, 3, 500]), whole)


def test_fit_learns_the_training_windows_as_the_stream_would() -> None:
    """The state a worker starts from has seen the training windows: what follows them scores as if
    the whole stream had been scored and learnt from its start. (Before issue 27 fit learnt nothing,
    and the threshold was fitted on calibration windows scored from an empty state.)"""
    X = sliding_windows(wave(1500), WINDOW)
    whole = stream(fitted(X), X, [64])
    trained = ContextDetector(gap=WINDOW).fit(X[:500], X[500:600])
    assert trained.trained_ == 600 and trained.state()["learnt"] == 600
    assert np.array_equal(trained.score(X[600:]), whole[600:])
    assert np.array_equal(stream(trained, X[600:], [64]), whole[600:])


def test_batches_scored_ahead_of_learning_score_as_if_learnt() -> None:
    # A worker scores batch n+1 while batch n is still being published, then learns n, then n+1.
    X = sliding_windows(wave(), WINDOW)
    expected = stream(fitted(X), X, [100])
    detector = fitted(X)
    first, second = detector.score_next(X[:100]), detector.score_next(X[100:200])
    detector.learn(X[:100])
    detector.learn(X[100:200])
    rest = stream(detector, X[200:], [100])
    assert np.array_equal(np.r_[first, second, rest], expected)


def test_a_repeated_anomaly_stops_being_new_when_learning_all_along() -> None:
    values = wave(4000)
    for start in (1500, 2500):  # a plateau inside the seen range: a new shape, not out of range
        values[start : start + 20] = 0.6
    X = sliding_windows(values, WINDOW)
    first, second = slice(1500 - WINDOW, 1520), slice(2500 - WINDOW, 2520)
    online = stream(fitted(X), X, [64])
    frozen = stream(fitted(X, online=False, freeze_after=1000), X, [64])
    assert online[first].max() >= 0.5 and frozen[first].max() >= 0.5  # new the first time
    assert frozen[second].max() >= 0.5  # a frozen memory finds it new again
    assert online[second].max() < 0.5  # one that learnt it does not


def test_a_value_beyond_the_running_range_scores_one() -> None:
    values = wave(1500)
    values[1200] = 1.5  # above every value seen so far by more than 2% of the range
    X = sliding_windows(values, WINDOW)
    scores = stream(fitted(X), X, [50])
    assert scores[1200 - WINDOW + 1] == 1.0
    assert scores[1200 - WINDOW + 1 - 300 : 1200 - WINDOW + 1].max() < 1.0


def test_the_likelihood_averages_a_few_novelties_over_a_bounded_history() -> None:
    # The likelihood judges the mean of the last ``average`` novelties against the last ``history``
    # such means: an old regime leaves the estimate instead of widening it for the whole series.
    X = sliding_windows(wave(1500), WINDOW)
    detector = fitted(X, history=400, average=3)
    stream(detector, X, [64])
    saved = detector.state()["likelihood"]
    assert len(saved["averages"]) == 400 and len(saved["recent"]) == 3
    assert saved["averages"][-1] == pytest.approx(np.mean(saved["recent"]))


def test_checkpointed_state_resumes_exactly(tmp_path: object) -> None:
    X = sliding_windows(wave(), WINDOW)
    expected = stream(fitted(X), X, [128])
    detector = fitted(X)
    head = stream(detector, X[:1700], [128])
    resumed = fitted(X)
    resumed.set_state(json.loads(json.dumps(detector.state())))  # through JSON, as checkpoints are
    assert np.array_equal(np.r_[head, stream(resumed, X[1700:], [128])], expected)


@pytest.mark.data
def test_no_look_ahead_on_a_nab_series() -> None:
    """What the benchmark's detector scores up to a row never depends on the rows after it: a huge
    spike in the last row leaves every earlier score unchanged, bit for bit. Handing the detector
    whole-file statistics (the series' global min/max, as NAB hands HTM and CAD OSE) breaks that."""
    series = load_nab_series(require_data("nab").parent, SHORT_SERIES)
    values = series.values.copy()
    values[-1] = values.max() + 1000 * (values.max() - values.min())
    spiked = replace(series, values=values)
    before = len(sliding_windows(values, WINDOW)) - 1  # every window but the one ending at the spike
    honest, honest_spiked = run_online(series, "context", WINDOW), run_online(spiked, "context", WINDOW)
    assert np.array_equal(honest.raw[:before], honest_spiked.raw[:before])
    assert honest_spiked.raw[-1] == 1.0  # the spike itself fires
    peek = {"whole_file_range": True}
    peeking, peeking_spiked = (
        run_online(series, "context", WINDOW, params=peek),
        run_online(spiked, "context", WINDOW, params=peek),
    )
    assert not np.allclose(peeking.raw[:before], peeking_spiked.raw[:before], atol=1e-3)
