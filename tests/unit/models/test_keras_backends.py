"""The model call under a non-TensorFlow Keras backend: JAX on CPU scores the same batches as
TensorFlow, through the padded fixed-size batches that keep JAX from recompiling.

The CI machine has no GPU; this is the code path a GPU runs (``KERAS_BACKEND=jax`` with jax[cuda]).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.detectors.autoencoder import DenseAutoencoder
from models.detectors.backend import bucket

SIZES = (1, 17, 300, 5000)  # 5000 > the largest bucket: scored in padded chunks

SCORE_UNDER_JAX = """
import json, sys
import numpy as np
from pathlib import Path
from models.detectors.autoencoder import DenseAutoencoder
from models.detectors.backend import device_description, keras_module, warm_up_sizes
assert keras_module().backend.backend() == "jax", keras_module().backend.backend()
folder = Path(sys.argv[1])
detector = DenseAutoencoder.load(folder / "detector")
X = np.load(folder / "X.npy")
out = {"device": device_description(), "warm_up": list(warm_up_sizes(5000))}
for n in json.loads(sys.argv[2]):
    scores, contributions = detector.explain(X[:n])
    out[str(n)] = {"scores": scores.tolist(), "top": contributions.argmax(axis=1).tolist()}
print(json.dumps(out))
"""


def test_buckets_are_few_fixed_sizes() -> None:
    assert {bucket(n) for n in range(1, 5000)} == {2**k for k in range(4, 13)}


def test_jax_scores_the_same_batches_as_tensorflow(tmp_path: Path) -> None:
    pytest.importorskip("jax", reason="jax[cpu] is in the dev extra: pip install -e '.[cpu,dev]'")
    rng = np.random.default_rng(0)
    X = rng.random((5000, 24), dtype=np.float32)
    detector = DenseAutoencoder(hidden=(16, 4), epochs=2, verbose=0).fit(X[:2000])
    detector.save(tmp_path / "detector")
    np.save(tmp_path / "X.npy", X)

    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", SCORE_UNDER_JAX, str(tmp_path), json.dumps(SIZES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jax_out = json.loads(result.stdout.strip().splitlines()[-1])
    assert jax_out["device"].startswith("jax") and jax_out["warm_up"][-1] == 4096
    for n in SIZES:
        tf_scores, tf_contributions = detector.explain(X[:n])
        jax_scores = np.asarray(jax_out[str(n)]["scores"])
        assert jax_scores.shape == (n,)
        np.testing.assert_allclose(jax_scores, tf_scores, rtol=1e-4, atol=1e-6)
        agree = np.mean(np.asarray(jax_out[str(n)]["top"]) == tf_contributions.argmax(axis=1))
        assert agree > 0.99
