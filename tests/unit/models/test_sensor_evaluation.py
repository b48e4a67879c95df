"""Sensor evaluation pieces: range-aware metrics, baselines, sensor-only detectors kept out of the
records tables (issue 28), and ``evaluate --schema`` on real labelled files (issue 27)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.evaluation.baselines import BASELINES
from models.evaluation.own_data import evaluate_files
from models.evaluation.ranges import event_counts, event_f1, range_pr_auc, ranges, vus_pr
from models.evaluation.run import SENSOR_ONLY, default_detectors, evaluate
from models.thresholds import QuantileThreshold
from stream.datasets.schema import load_schema
from tests.support import require_data

TELEMETRY_SCHEMA = """
name = "telemetry"
description = "A telemanom test channel: sample index, value, label"
kind = "series"
topic = "telemetry.windows"

[source]
format = "csv"
header = true

[timestamp]
column = "timestamp"
format = "unix"

[label]
column = "label"
normal = [0]

[series]
values = ["value"]
window = 16
"""


def test_ranges_and_event_f1_count_labelled_ranges_and_false_alert_runs() -> None:
    labels = np.zeros(100, bool)
    labels[10:20] = labels[50:60] = True
    assert ranges(labels) == [(10, 20), (50, 60)]
    alerts = np.zeros(100, bool)
    alerts[15] = alerts[30:33] = alerts[80] = True  # one range found, two false runs
    assert event_counts(alerts, labels) == (1, 1, 2)
    assert event_f1(alerts, labels) == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))


def test_vus_pr_rewards_alerts_near_a_range_more_than_far_from_it() -> None:
    labels = np.zeros(500, bool)
    labels[200:220] = True
    near, far = np.zeros(500), np.zeros(500)
    near[222] = far[400] = 1.0  # two rows after the range, or far from it
    # Point-wise (no buffer) both miss the range: only the cut that alerts everywhere finds it.
    assert range_pr_auc(near, labels, 0) == range_pr_auc(far, labels, 0) == pytest.approx(20 / 500)
    assert vus_pr(near, labels) > vus_pr(far, labels)
    perfect = labels.astype(float)
    assert range_pr_auc(perfect, labels, 0) == pytest.approx(1.0)
    # With buffers the soft edges count as positives a 0/1 score cannot rank: below 1, above noise.
    assert vus_pr(perfect, labels) > vus_pr(np.random.default_rng(0).random(500), labels)


def test_baselines_score_a_spike_above_their_threshold() -> None:
    x = np.sin(np.arange(3000) / 7.0) + np.random.default_rng(0).normal(0, 0.05, 3000)
    x[2500:2510] += 3.0
    for name, baseline in BASELINES.items():
        scores, cut = baseline(x, 1500)
        assert scores[2500:2530].max() >= cut, name
        assert np.mean(scores[1500:2400] >= cut) < 0.05, name  # and seldom on the normal rows


def test_a_quantile_cut_on_tied_scores_does_not_alert_on_every_row() -> None:
    """Failed before the fix: calibration scores all at a detector's floor gave that floor as the cut,
    and every later window (all at or above the floor) alerted."""
    floor = np.full(200, 0.0301)
    threshold = QuantileThreshold(fpr=0.01).fit(floor)
    assert not threshold.classify(floor).any()
    assert threshold.classify(np.array([0.05])).all()


def test_sensor_only_detectors_stay_out_of_the_records_tables(tmp_path: Path) -> None:
    """Issue 28: context (a sensor detector) was listed in the KDD table with ROC AUC 0.586."""
    assert "context" in SENSOR_ONLY
    for stream in ("kdd", "ecg"):
        assert not SENSOR_ONLY & set(default_detectors(stream))
    assert "context" in default_detectors("sensor")
    with pytest.raises(KeyError, match="sensor series only"):
        evaluate("kdd", None, ["pca", "context"], tmp_path, tmp_path)
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.data
def test_evaluate_a_labelled_series_file_of_ones_own(tmp_path: Path) -> None:
    data = require_data("telemanom")
    schema_file = tmp_path / "telemetry.toml"
    schema_file.write_text(TELEMETRY_SCHEMA)
    files = [data / "test" / "S-1.csv", data / "test" / "D-11.csv"]
    out = tmp_path / "eval"
    result = evaluate_files(load_schema(schema_file), files, ["context"], out, training_rows=2000,
                            baselines=["rolling_zscore"])  # fmt: skip
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["detectors"]) == {"context", "rolling_zscore"}
    context = saved["detectors"]["context"]
    assert set(context["files"]) == {"S-1.csv/S-1", "D-11.csv/D-11"}
    for key in ("roc_auc", "pr_auc", "vus_pr", "best_f1", "precision", "recall", "f1", "event_f1"):
        assert 0.0 <= context["mean"][key] <= 1.0, key
    # Every row after the training rows, in file order, with the file's own labels.
    for path in files:
        frame = pd.read_csv(path)
        with (out / "scores" / f"{path.stem}.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == len(frame) - 2000
        assert [int(r["label"]) for r in rows] == frame["label"].iloc[2000:].tolist()
        assert {r["is_alert"] for r in rows} <= {"0", "1"}
    assert (out / "report.md").read_text().count("| **context** |") == 1
    # S-1's one anomaly (a level shift) stands out: context ranks its rows above the normal ones.
    assert result["detectors"]["context"]["files"]["S-1.csv/S-1"]["roc_auc"] > 0.6


@pytest.mark.data
def test_evaluate_a_labelled_records_file_of_ones_own(tmp_path: Path) -> None:
    data = require_data("nslkdd")
    out = tmp_path / "eval"
    files = [data / "KDDTrain+_20Percent.txt"]
    result = evaluate_files(load_schema("nslkdd"), files, ["pca"], out, training_rows=8000)
    row = result["detectors"]["pca"]["files"][str(files[0])]
    assert row["roc_auc"] > 0.8 and row["alert_rate_normal"] < 0.05
    with (out / "scores" / "KDDTrain+_20Percent.csv").open() as handle:
        assert sum(1 for _ in handle) == 1 + 25_192 - 8000
