"""``evaluate --protocol stream`` on a prefix of the 10% file (the CI-sized run; the full file is the
published one): the outputs, the unlabelled warm-up, and a loop that never learns a flood."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.evaluation.stream_report import MEMSTREAM_NOTE, write_stream_report
from models.evaluation.streaming import StreamProtocol, evaluate_stream, fit_warmup, load_stream
from tests.support import require_data

pytestmark = pytest.mark.slow

PREFIX = 80_000  # holds the warm-up, a drift of normal traffic and a 20,480-connection neptune flood


@pytest.fixture(scope="module")
def figures() -> dict:
    data = require_data("kdd99")
    return evaluate_stream(data.parent, StreamProtocol(limit=PREFIX, overrides={"epochs": 10}))


def test_outputs_follow_the_evaluation_contract(figures: dict, tmp_path: Path) -> None:
    paths = write_stream_report(tmp_path, figures)
    assert [p.name for p in paths] == ["metrics.json", "details.json", "stream.png", "report.md"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["stream"], metrics["protocol"]) == ("kdd", "stream")
    assert set(metrics["detectors"]) == {"ae", "ae+loop"}
    keys = {"roc_auc", "pr_auc", "precision", "recall", "f1", "f2", "threshold", "fit_seconds",
            "score_seconds_per_10k", "n_params", "size_kb"}  # fmt: skip
    assert all(keys <= set(row) for row in metrics["detectors"].values())
    report = (tmp_path / "report.md").read_text()
    assert MEMSTREAM_NOTE in report and "without their labels" in report and "N = 5,000" in report
    rolling = figures["details"]["rolling"]["static"]
    assert len(rolling["start"]) == -(-(PREFIX - 5_000) // 10_000)


def test_the_static_model_ranks_attacks_well_on_the_prefix(figures: dict) -> None:
    static = figures["metrics"]["detectors"]["ae"]
    assert static["roc_auc"] > 0.95 and static["recall"] > 0.9


def test_the_loop_detects_drift_and_never_learns_the_flood(figures: dict) -> None:
    details = figures["details"]
    assert details["events"], "the prefix drifts (new services after the warm-up): the watch must fire"
    outcomes = [e["outcome"] for e in details["events"]]
    assert set(outcomes) <= {
        "passed",
        "rejected",
        "insufficient_data",
        "pending",
    }  # pending: the prefix ended
    assert any(o != "pending" for o in outcomes), "at least one retrain ran and was judged"
    flood = details["flood"]
    assert flood["label"] == "neptune" and flood["length"] >= 20_000
    assert min(flood["recall_of_each_model"].values()) >= 0.98
    assert flood["recall"]["loop"] >= 0.98


def test_the_warm_up_never_reads_a_label(tmp_path: Path) -> None:
    data_dir = require_data("kdd99").parent
    protocol = StreamProtocol(limit=30_000, overrides={"epochs": 2})
    data = load_stream(data_dir, protocol)
    blind = type(data)(data.X, np.full(len(data.labels), "?"), data.encoder, data.validation, data.source)
    a = fit_warmup(data, protocol)
    b = fit_warmup(blind, protocol)
    assert a.threshold.threshold_ == b.threshold.threshold_
    np.testing.assert_array_equal(a.calibration_scores, b.calibration_scores)
