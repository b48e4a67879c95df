"""Keras backend isolation: the one place that knows which backend runs the deep models.

Models are written with ``keras.ops`` only, so TensorFlow (default), JAX and PyTorch all run them.
Inference goes through :func:`compiled_forward`, which compiles the forward pass so that batches of
varying size never retrace: TensorFlow compiles one graph for any batch size (input signature
``(None, n_features)``); JAX compiles one program per input shape, so batches are padded up to a
fixed set of sizes (:func:`bucket`: powers of two from 16 to 4,096, larger batches in chunks of
4,096), and a worker compiles them all before its first event (:func:`warm_up_sizes`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Forward = Callable[[np.ndarray], np.ndarray]

# Keras' TensorFlow backend converts tensors with np.array(x), which NumPy 2 reports once per call as
# deprecated (TensorFlow's __array__ lacks ``copy``). Nothing for us to change; silenced there only.
KERAS_NUMPY_WARNING = "__array__ implementation doesn't accept a copy keyword"
KERAS_TF_CORE = r"keras\.src\.backend\.tensorflow\.core"


class BackendMissingError(ImportError):
    """Keras or its backend is not installed."""


# Lines TensorFlow's C++ runtime writes to stderr while it loads, before any log level applies
# (TF_CPP_MIN_LOG_LEVEL does not reach them): dropped. Anything else it writes is passed on.
NATIVE_STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "Unable to register cu",  # cuDNN/cuFFT/cuBLAS factories on a machine without CUDA
    "computation placer already registered",
    "could not find cuda drivers",
    "TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
)


@contextlib.contextmanager
def _native_stderr_filtered() -> Iterator[None]:
    """Capture what native code writes to file descriptor 2; replay all but the start-up noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not any(noise in line for noise in NATIVE_STARTUP_NOISE):
                    print(line, file=sys.stderr)


@cache
def keras_module() -> Any:
    """Import Keras once, after quieting TensorFlow's start-up chatter and enabling GPU memory growth."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    warnings.filterwarnings("ignore", KERAS_NUMPY_WARNING, DeprecationWarning, KERAS_TF_CORE)
    try:
        with _native_stderr_filtered():
            import keras

            if keras.backend.backend() == "tensorflow":
                _tensorflow_gpu_setup()
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise BackendMissingError(
            f"Keras cannot start its {os.environ['KERAS_BACKEND']!r} backend ({exc}): install one with "
            "`pip install 'anomstream[cpu]'` (TensorFlow CPU) or `pip install 'anomstream[gpu]'` (CUDA), "
            "or install jax/torch and set KERAS_BACKEND=jax/torch."
        ) from exc
    return keras


def _tensorflow_gpu_setup() -> None:
    # Grow GPU memory on demand so several worker replicas can share one device.
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        # RuntimeError: already initialised by an earlier model in this process.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)


def device_description() -> str:
    keras = keras_module()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"tensorflow {tf.__version__} on {f'GPU x{len(gpus)}' if gpus else 'CPU'}"
    if backend == "jax":
        import jax

        return f"jax {jax.__version__} on {jax.devices()[0].platform}"
    if backend == "torch":
        import torch

        return f"torch {torch.__version__} on {'cuda' if torch.cuda.is_available() else 'cpu'}"
    return backend


MIN_BUCKET, MAX_BUCKET = 16, 4096


def bucket(n: int) -> int:
    """The padded batch size for ``n`` rows: the next power of two within [16, 4096].

    >>> [bucket(n) for n in (1, 16, 17, 3000, 4096)]
    [16, 16, 32, 4096, 4096]
    """
    return min(max(MIN_BUCKET, 1 << max(n - 1, 0).bit_length()), MAX_BUCKET)


def pads_batches() -> bool:
    """Whether the backend compiles one program per batch shape (so batches are padded)."""
    return keras_module().backend.backend() == "jax"


def warm_up_sizes(max_batch: int) -> tuple[int, ...]:
    """Batch sizes to run once before the first event so that no event waits for a compilation:
    every bucket up to ``max_batch`` where shapes are compiled one by one, else a single call."""
    if not pads_batches():
        return (1,)
    sizes, size = [], MIN_BUCKET
    while size < min(max_batch, MAX_BUCKET):
        sizes.append(size)
        size *= 2
    return (*sizes, bucket(max_batch))


def compiled_forward(model: Any, n_features: int, chunk: int = 65536) -> Forward:
    """Return ``f(X) -> model(X)`` as NumPy, compiled once for ``(None, n_features)`` float32 inputs
    (under JAX: once per bucket size)."""
    keras = keras_module()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec(shape=(None, n_features), dtype=tf.float32)
        fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])

        def run(X: np.ndarray) -> np.ndarray:
            return np.asarray(fn(tf.convert_to_tensor(X)))

    elif backend == "jax":
        import jax

        jitted = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0])
        chunk = MAX_BUCKET

        def run(X: np.ndarray) -> np.ndarray:
            n = X.shape[0]
            padded = np.zeros((bucket(n), n_features), np.float32)
            padded[:n] = X
            tv = [v.value for v in model.trainable_variables]
            ntv = [v.value for v in model.non_trainable_variables]
            return np.asarray(jitted(tv, ntv, padded))[:n]

    elif backend == "torch":
        import torch

        def run(X: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                out = model(torch.from_numpy(X).to(keras.backend.get_device() or "cpu"), training=False)
            return out.detach().cpu().numpy()

    else:  # pragma: no cover
        raise BackendMissingError(f"unsupported Keras backend {backend!r}")

    def forward(X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.shape[0] <= chunk:
            return run(X)
        return np.concatenate([run(X[i : i + chunk]) for i in range(0, X.shape[0], chunk)])

    return forward
