"""Training a windowed detector saves exactly the threshold it fitted."""

from __future__ import annotations

from pathlib import Path

from models.registry import Registry
from models.windowed import fit_windowed, train_sensor
from stream.datasets.sensor import load_sensor_series
from tests.conftest import require_data


def test_saved_sliding_threshold_is_the_fitted_one(tmp_path: Path) -> None:
    # Working out the calibration false-positive rate must not feed the calibration scores into a
    # sliding threshold's window a second time before it is saved.
    data = require_data("nab").parent
    train_sensor(Registry(tmp_path), data, "nyc_taxi", detector="pca", threshold="sliding")
    saved = Registry(tmp_path).load("sensor").threshold.to_dict()
    fitted = fit_windowed(load_sensor_series(data, "nyc_taxi", False), "pca", threshold="sliding")
    assert saved == fitted.threshold.to_dict()
