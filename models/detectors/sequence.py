"""Sequence autoencoder for fixed-length windows (ECG beats of 140 samples, sensor windows).

Input is ``(n, length)`` float32, the same flat matrix every detector takes; the network reshapes
it to ``(n, length, 1)`` itself, so the registry, the worker and ``compiled_forward`` see no
difference from a tabular model. Score: mean squared reconstruction error over the window;
``explain`` gives per-timestep contributions (which part of the beat looks wrong).

Two encoders (``cell``):

- ``"conv"`` (default): two strided Conv1D layers, a dense bottleneck of ``latent`` units, and the
  mirror image with Conv1DTranspose. Fast on CPU.
- ``"lstm"``: an LSTM encoder whose last state feeds the bottleneck, repeated over time and decoded
  by a second LSTM. Slower (sequential over 140 steps), sometimes better on irregular rhythms.

>>> import numpy as np
>>> t = np.linspace(0, 2 * np.pi, 32, dtype=np.float32)
>>> X = 0.5 + 0.4 * np.sin(t + np.random.default_rng(0).random((256, 1), dtype=np.float32))
>>> SequenceAutoencoder(epochs=2, verbose=0).fit(X).score(X).shape
(256,)
"""

from __future__ import annotations

from typing import Any, ClassVar

from models.detectors.backend import keras_module
from models.detectors.base import ReconstructionDetector

CELLS = ("conv", "lstm")


class SequenceAutoencoder(ReconstructionDetector):
    name: ClassVar[str] = "seq_ae"

    def __init__(
        self,
        cell: str = "conv",
        filters: tuple[int, ...] | list[int] = (32, 16),
        kernel_size: int = 7,
        units: int = 64,
        latent: int = 16,
        **training: Any,
    ) -> None:
        training.setdefault("epochs", 30)
        super().__init__(**training)
        self.cell = cell
        self.filters = tuple(filters)
        self.kernel_size = kernel_size
        self.units = units
        self.latent = latent

    def build(self, n_features: int) -> Any:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        keras = keras_module()
        inputs = keras.Input(shape=(n_features,), name="window")
        x = keras.layers.Reshape((n_features, 1))(inputs)
        body = self._conv if self.cell == "conv" else self._lstm
        x = body(keras, x, n_features)
        outputs = keras.layers.Reshape((n_features,), name="reconstruction")(x)
        return keras.Model(inputs, outputs, name=f"sequence_autoencoder_{self.cell}")

    def _conv(self, keras: Any, x: Any, length: int) -> Any:
        layers = keras.layers
        stride = 2 ** len(self.filters)
        # Pad the window to a multiple of the total stride so the decoder lands on the same length.
        pad = -length % stride
        if pad:
            x = layers.ZeroPadding1D((0, pad))(x)
        for i, f in enumerate(self.filters):
            x = layers.Conv1D(
                f, self.kernel_size, strides=2, padding="same", activation="relu", name=f"conv_{i}"
            )(x)
        steps = (length + pad) // stride
        # The dense bottleneck is what forces compression: strided convolutions alone keep more
        # numbers than the window has and could learn the identity.
        x = layers.Flatten()(x)
        x = layers.Dense(self.latent, activation="relu", name="bottleneck")(x)
        x = layers.Dense(steps * self.filters[-1], activation="relu")(x)
        x = layers.Reshape((steps, self.filters[-1]))(x)
        for i, f in enumerate(reversed(self.filters)):
            x = layers.Conv1DTranspose(
                f, self.kernel_size, strides=2, padding="same", activation="relu", name=f"deconv_{i}"
            )(x)
        x = layers.Conv1D(1, self.kernel_size, padding="same", name="output")(x)
        if pad:
            x = layers.Cropping1D((0, pad))(x)
        return x

    def _lstm(self, keras: Any, x: Any, length: int) -> Any:
        layers = keras.layers
        x = layers.LSTM(self.units, name="encoder")(x)
        x = layers.Dense(self.latent, activation="tanh", name="bottleneck")(x)
        x = layers.RepeatVector(length)(x)
        x = layers.LSTM(self.units, return_sequences=True, name="decoder")(x)
        return layers.TimeDistributed(layers.Dense(1), name="output")(x)
