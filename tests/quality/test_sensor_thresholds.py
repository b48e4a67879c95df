"""Thresholds that work (issue 27): every sensor detector's alert threshold, fitted as ``anomstream
train`` fits it, alerts near the configured rate (1%) on held-out normal rows of a real labelled
series, and still alerts on its anomaly. A threshold that alerts on nothing or on everything fails.

Before the fix, ``context`` was calibrated from an empty state: its cut came out 1.0 (no alert but an
out-of-range one) or 0.0301, the floor of its scale, where every window alerted.

The series is telemanom's S-1 (SMAP): trained on ``train/S-1.csv``, scored on ``test/S-1.csv`` as the
stream that follows, each window scored and then learnt as a worker does.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluation.series import run_detector
from models.evaluation.telemanom import load_channel
from tests.support import measure, require_data

pytestmark = pytest.mark.slow

QUICK = {"ae": {"epochs": 3, "verbose": 0}, "seq_ae": {"epochs": 3, "verbose": 0}}


@pytest.mark.parametrize("detector", ["context", "hst", "ae", "seq_ae"])
def test_a_sensor_threshold_alerts_near_its_rate_on_held_out_normal_rows(detector: str) -> None:
    item = load_channel(require_data("telemanom").parent, "S-1")
    scored = run_detector(item.series, item.n_train, detector, 16, QUICK.get(detector), fpr=0.01)
    labels = item.labels
    normal_rate = float(scored.alerts[~labels].mean())
    caught = int(scored.alerts[labels].sum())
    measure(
        f"{detector} on S-1: threshold {scored.threshold:.4g}, alerts on {normal_rate:.2%} of "
        f"{int((~labels).sum())} normal rows, on {caught} of {int(labels.sum())} anomaly rows"
    )
    assert np.isfinite(scored.threshold)
    assert normal_rate <= 0.02  # the configured 1%, with room for one calibration sample's error
    assert caught > 0  # and not a threshold that never alerts


def test_context_trained_on_a_short_probation_does_not_alert_on_every_window() -> None:
    """Failed before: NAB's shortest series gives 130 training windows, fewer than the likelihood
    needs for its first estimate; every calibration window scored the scale's floor (0.0301), that
    became the cut, and 74% of the normal rows after the probation alerted."""
    from models.detectors.context import WARM_UP_SCORE
    from stream.datasets.sensor import load_nab_series

    series = load_nab_series(require_data("nab").parent, "realTraffic/speed_7578.csv")
    scored = run_detector(series, series.probation, "context", 16, fpr=0.01)
    assert series.anomaly_rows is not None
    labels = series.anomaly_rows[series.probation :]
    normal_rate = float(scored.alerts[~labels].mean())
    measure(
        f"context on speed_7578: threshold {scored.threshold:.4g}, normal rows alerting {normal_rate:.2%}"
    )
    assert scored.threshold > WARM_UP_SCORE
    assert normal_rate <= 0.03 and scored.alerts[labels].any()
