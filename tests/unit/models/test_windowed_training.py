"""Training a windowed detector saves exactly the threshold it fitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import Registry
from models.training import TrainingRequest, train
from models.training.train import fit_request, training_data
from tests.support import require_data

pytestmark = pytest.mark.data  # every test here reads the data folder


def test_saved_sliding_threshold_is_the_fitted_one(tmp_path: Path) -> None:
    # Working out the calibration false-positive rate must not feed the calibration scores into a
    # sliding threshold's window a second time before it is saved.
    data = require_data("nab").parent
    request = TrainingRequest("sensor", "pca", series="nyc_taxi", threshold="sliding")
    train(Registry(tmp_path), data, request)
    saved = Registry(tmp_path).load("sensor").threshold.to_dict()
    fitted = fit_request(training_data(data, request), request)
    assert saved == fitted.threshold.to_dict()
