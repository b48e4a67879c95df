"""Workers serve dense nets in NumPy (models.detectors.light): the same scores (within 1e-5), the same
alerts, severities and explanations as the Keras model they were saved from, and no TensorFlow or
Keras in a process that loads and scores a registry version that way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.detectors.autoencoder import DenseAutoencoder
from models.detectors.base import KerasDetector
from models.detectors.light import DenseReconstruction
from models.detectors.vae import VariationalAutoencoder
from models.features import RecordsRaw, TableEncoder, protocol_encoder
from models.registry import Registry
from models.thresholds import QuantileThreshold
from stream.datasets.schema import builtin_schema
from tests.support.data import corrected_sample, require_data

KDD99 = builtin_schema("kdd99")


@pytest.fixture(scope="module")
def kdd() -> tuple[TableEncoder, np.ndarray, RecordsRaw]:
    """Real connections: normal ones of a ``corrected`` sample to fit on, and another sample (attacks
    and normal traffic mixed) to score."""
    data_dir = require_data("kdd99").parent
    fit_frame = corrected_sample(data_dir, 6_000, seed=1)
    fit_frame = fit_frame[fit_frame["label"].str.startswith("normal")]
    encoder = protocol_encoder(KDD99).fit(RecordsRaw.from_frame(fit_frame, KDD99))
    scored = RecordsRaw.from_frame(corrected_sample(data_dir, 3_000, seed=0), KDD99)
    return encoder, encoder.transform(RecordsRaw.from_frame(fit_frame, KDD99)), scored


def _registry(root: Path, kdd: tuple, detector: KerasDetector) -> Registry:
    encoder, X, _ = kdd
    detector.fit(X)
    threshold = QuantileThreshold(0.05).fit(detector.score(X))
    registry = Registry(root)
    registry.save("kdd", detector, encoder, threshold, {"data": "corrected sample"}, promote=True)
    return registry


@pytest.mark.data
def test_the_kdd_autoencoder_served_by_numpy_alerts_and_explains_as_keras(tmp_path: Path, kdd) -> None:
    registry = _registry(tmp_path, kdd, DenseAutoencoder(epochs=2, verbose=0))  # the default (64, 32, 16)
    light, keras = registry.load("kdd", inference_only=True), registry.load("kdd")
    assert isinstance(light.detector, DenseReconstruction) and isinstance(keras.detector, KerasDetector)

    a, b = light.score(kdd[2]), keras.score(kdd[2])
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-5)
    assert 0.1 < a.is_alert.mean() < 0.9, "the batch must hold both alerting and quiet rows"
    np.testing.assert_array_equal(a.is_alert, b.is_alert)
    assert a.severities == b.severities
    np.testing.assert_array_equal(a.top_index, b.top_index)
    np.testing.assert_allclose(a.top_values, b.top_values, rtol=0, atol=1e-6)
    assert light.threshold.threshold_ == keras.threshold.threshold_
    assert light.detector.count_params() == keras.detector.model_.count_params()


@pytest.mark.data
def test_the_vae_is_served_by_numpy_by_error_and_by_keras_by_probability(tmp_path: Path, kdd) -> None:
    X = kdd[1][:2000]
    by_error = _registry(
        tmp_path / "error", kdd, VariationalAutoencoder(hidden=(32,), latent=4, epochs=2, verbose=0)
    )
    light, keras = by_error.load("kdd", inference_only=True), by_error.load("kdd")
    assert isinstance(light.detector, DenseReconstruction)
    np.testing.assert_allclose(light.judge(X), keras.judge(X), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(light.score_encoded(X).top_index, keras.score_encoded(X).top_index)

    by_probability = _registry(
        tmp_path / "probability",
        kdd,
        VariationalAutoencoder(
            hidden=(32,), latent=4, score_kind="probability", n_samples=4, epochs=1, verbose=0
        ),
    )
    assert isinstance(by_probability.load("kdd", inference_only=True).detector, KerasDetector)


def test_an_activation_numpy_lacks_is_served_by_keras(tmp_path: Path) -> None:
    X = np.random.default_rng(0).random((300, 6), dtype=np.float32)
    detector = DenseAutoencoder(hidden=(4, 2), activation="selu", epochs=1, verbose=0).fit(X)
    detector.save(tmp_path)
    from models.detectors.light import NotServableError, load_detector

    with pytest.raises(NotServableError, match="selu"):
        DenseReconstruction.load(tmp_path, "ae")
    served = load_detector("ae", tmp_path, inference_only=True)
    assert isinstance(served, KerasDetector)
    np.testing.assert_allclose(served.score(X), detector.score(X), rtol=1e-6)


# The worker's import path, then a registry version loaded and scored as a worker does.
WORKER_SCORES = """
import json, sys
import anomstream.cli, consumers.worker
from models.features import RecordsRaw
from stream.datasets.schema import builtin_schema
from models.registry import Registry
from tests.support.data import corrected_sample, require_data

model = Registry(sys.argv[1]).load("kdd", inference_only=sys.argv[2] == "light")
model.warm_up(5000)
sample = corrected_sample(require_data("kdd99").parent, 500)
scored = model.score(RecordsRaw.from_frame(sample, builtin_schema("kdd99")))
heavy = {"tensorflow", "keras", "jax", "torch", "sklearn"}
frameworks = sorted({name.split(".")[0] for name in sys.modules} & heavy)
print(json.dumps({"frameworks": frameworks, "alerts": int(scored.is_alert.sum())}))
"""


@pytest.mark.data
def test_a_worker_that_loads_and_scores_a_version_imports_no_training_framework(tmp_path: Path, kdd) -> None:
    _registry(tmp_path, kdd, DenseAutoencoder(hidden=(16, 4), epochs=1, verbose=0))
    repo = Path(__file__).resolve().parents[3]

    def frameworks(mode: str) -> list[str]:
        result = subprocess.run(
            [sys.executable, "-c", WORKER_SCORES, str(tmp_path), mode],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        out = json.loads(result.stdout.strip().splitlines()[-1])
        assert out["alerts"] > 0
        return list(out["frameworks"])

    assert frameworks("light") == []
    assert "tensorflow" in frameworks("keras"), "the control: loading for training imports TensorFlow"
