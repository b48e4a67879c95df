"""Dense autoencoder: anomaly score = mean squared reconstruction error of a row.

Trained on normal data only, it learns to reconstruct normal traffic; a record it reconstructs badly
is unlike anything it saw. The per-feature squared errors explain the score (they sum to it, times d).

>>> import numpy as np
>>> X = np.random.default_rng(0).random((512, 8), dtype=np.float32)
>>> ae = DenseAutoencoder(hidden=(6, 3), epochs=2, verbose=0).fit(X)
>>> ae.score(X).shape
(512,)
"""

from __future__ import annotations

from typing import Any, ClassVar

from models.detectors.backend import keras_module
from models.detectors.base import ReconstructionDetector


class DenseAutoencoder(ReconstructionDetector):
    name: ClassVar[str] = "ae"

    def __init__(
        self,
        hidden: tuple[int, ...] | list[int] = (64, 32, 16),
        activation: str = "relu",
        dropout: float = 0.0,
        l2: float = 0.0,
        **training: Any,
    ) -> None:
        super().__init__(**training)
        self.hidden = tuple(hidden)
        self.activation = activation
        self.dropout = dropout
        self.l2 = l2

    def build(self, n_features: int) -> Any:
        keras = keras_module()
        layers = keras.layers
        reg = keras.regularizers.L2(self.l2) if self.l2 else None
        inputs = keras.Input(shape=(n_features,), name="features")
        x = inputs
        # Encoder narrows to the bottleneck (the last entry of `hidden`); the decoder mirrors it.
        sizes = [*self.hidden, *reversed(self.hidden[:-1])]
        for i, units in enumerate(sizes):
            x = layers.Dense(units, activation=self.activation, kernel_regularizer=reg, name=f"dense_{i}")(x)
            if self.dropout and i < len(sizes) - 1:
                x = layers.Dropout(self.dropout)(x)
        # Linear output: scaled test values can leave [0, 1] and should be able to show it.
        outputs = layers.Dense(n_features, name="reconstruction")(x)
        return keras.Model(inputs, outputs, name="dense_autoencoder")

    def dense_layers(self) -> list[tuple[str, str]]:
        """The scoring forward pass as a chain of the layers ``build`` names: (name, activation) in
        order (dropout is a no-op at inference), which :mod:`models.detectors.light` runs in NumPy."""
        sizes = [*self.hidden, *reversed(self.hidden[:-1])]
        return [*((f"dense_{i}", self.activation) for i in range(len(sizes))), ("reconstruction", "linear")]
