"""Variational autoencoder with two anomaly scores: reconstruction error or reconstruction probability.

The encoder maps a row to a Gaussian posterior ``q(z|x) = N(mu_z, sigma_z^2)``; the decoder maps a
latent code back to a Gaussian over the features ``p(x|z) = N(mu_x, sigma_x^2)`` (both mean and
variance are learnt, so the model knows which features are tight and which are noisy). Training
minimises the negative ELBO: the Gaussian negative log-likelihood of the row under the decoder plus
``beta`` times the KL divergence of the posterior from ``N(0, I)``.

Scores (``score_kind``):

- ``"error"`` (default): mean squared error between the row and the decoder mean at ``z = mu_z``,
  like :class:`~models.detectors.autoencoder.DenseAutoencoder`. Deterministic.
- ``"probability"``: An & Cho (2015), "Variational Autoencoder based Anomaly Detection using
  Reconstruction Probability": ``-log (1/L) sum_l p(x | mu_x(z_l), sigma_x(z_l))`` with
  ``z_l ~ q(z|x)``, ``L = n_samples``. The Monte-Carlo noise is a fixed, seeded set of ``L`` draws
  shared by every row, so a row's score does not depend on its batch and a reloaded model scores
  identically.

How the KL term is trained on every Keras backend: the sampling layer (:class:`GaussianSample`)
calls ``add_loss`` with the KL divergence, and the reconstruction NLL is an ordinary Keras loss
function written with ``keras.ops``. Keras 3 adds ``add_loss`` terms in its own ``compute_loss``
on every backend (under JAX through ``stateless_call(return_losses=True)``), so the standard ``fit``
loop of :class:`~models.detectors.base.KerasDetector` trains it: no backend-specific ``train_step``.
Checked under TensorFlow and JAX (``beta`` changes the validation loss; a TensorFlow-trained model
scores the same under JAX).

>>> import numpy as np
>>> X = np.random.default_rng(0).random((512, 8), dtype=np.float32)
>>> vae = VariationalAutoencoder(hidden=(16,), latent=2, epochs=2, verbose=0).fit(X)
>>> vae.score(X).shape
(512,)
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any, ClassVar

import numpy as np

from models.detectors.backend import keras_module
from models.detectors.base import ReconstructionDetector

SCORE_KINDS = ("error", "probability")


@cache
def _layers() -> Any:
    """Custom layers, defined once Keras is imported (keeps importing this module TensorFlow-free)."""
    keras = keras_module()
    ops = keras.ops
    Layer: Any = keras.layers.Layer

    class GaussianSample(Layer):
        """``z = mu + sigma * eps`` while training (and ``mu`` otherwise); adds ``beta * KL / d``."""

        def __init__(self, beta: float, n_features: int, seed: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.beta = beta
            self.n_features = n_features
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, inputs: Any, training: bool | None = None) -> Any:
            mean, log_var = inputs
            kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)
            # The reconstruction loss is a mean over features, so the KL is scaled the same way.
            self.add_loss(self.beta * ops.mean(kl) / self.n_features)
            if not training:
                return mean
            eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
            return mean + ops.exp(0.5 * log_var) * eps

    class ReconstructionProbability(Layer):
        """Monte-Carlo reconstruction probability with fixed noise; output ``(n, d + 1)``.

        Columns ``0..d-1``: per-feature mean of ``0.5 (x - mu_x)^2 / sigma_x^2`` over the samples
        (non-negative, the explanation); column ``d``: ``-log`` of the mean sample likelihood.
        """

        def __init__(self, decoder: Any, noise: np.ndarray, n_features: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.decoder = decoder
            self.noise = noise.astype(np.float32)
            self.n_features = n_features

        def call(self, inputs: Any) -> Any:
            x, mean, log_var = inputs
            n_samples, latent = self.noise.shape
            d = self.n_features
            noise = ops.convert_to_tensor(self.noise)
            # (n, L, latent): every row gets the same L standard-normal draws, scaled by its posterior.
            z = ops.expand_dims(mean, 1) + ops.expand_dims(ops.exp(0.5 * log_var), 1) * noise
            x_mean, x_log_var = self.decoder(ops.reshape(z, (-1, latent)))
            x_mean = ops.reshape(x_mean, (-1, n_samples, d))
            x_log_var = ops.reshape(x_log_var, (-1, n_samples, d))
            surprise = 0.5 * ops.square(ops.expand_dims(x, 1) - x_mean) / ops.exp(x_log_var)
            log_lik = ops.sum(-0.5 * (math.log(2 * math.pi) + x_log_var) - surprise, axis=-1)
            log_prob = ops.logsumexp(log_lik, axis=1) - math.log(n_samples)
            return ops.concatenate([ops.mean(surprise, axis=1), -ops.expand_dims(log_prob, -1)], axis=-1)

    return GaussianSample, ReconstructionProbability


def gaussian_nll(y_true: Any, y_pred: Any) -> Any:
    """Per-row mean Gaussian negative log-likelihood; ``y_pred`` is ``[mu_x, log sigma_x^2]``."""
    ops = keras_module().ops
    mean, log_var = ops.split(y_pred, 2, axis=-1)
    nll = 0.5 * (math.log(2 * math.pi) + log_var + ops.square(y_true - mean) / ops.exp(log_var))
    return ops.mean(nll, axis=-1)


class VariationalAutoencoder(ReconstructionDetector):
    name: ClassVar[str] = "vae"

    def __init__(
        self,
        hidden: tuple[int, ...] | list[int] = (64, 32),
        latent: int = 8,
        beta: float = 1.0,
        score_kind: str = "error",
        n_samples: int = 16,
        min_variance: float = 1e-3,
        activation: str = "relu",
        **training: Any,
    ) -> None:
        # 10 epochs of 87k KDD rows take ~25 s on 2 CPU cores; more did not improve ROC AUC.
        training.setdefault("epochs", 10)
        super().__init__(**training)
        self.hidden = tuple(hidden)
        self.latent = latent
        self.beta = beta
        self.score_kind = score_kind
        self.n_samples = n_samples
        self.min_variance = min_variance
        self.activation = activation

    def build(self, n_features: int) -> Any:
        if self.score_kind not in SCORE_KINDS:
            raise ValueError(f"score_kind must be one of {SCORE_KINDS}, got {self.score_kind!r}")
        keras = keras_module()
        layers, ops = keras.layers, keras.ops
        GaussianSample, ReconstructionProbability = _layers()

        x_in = keras.Input(shape=(n_features,), name="features")
        h = x_in
        for i, units in enumerate(self.hidden):
            h = layers.Dense(units, activation=self.activation, name=f"encoder_{i}")(h)
        z_mean = layers.Dense(self.latent, name="z_mean")(h)
        z_log_var = layers.Dense(self.latent, name="z_log_var")(h)
        encoder = keras.Model(x_in, [z_mean, z_log_var], name="encoder")

        z_in = keras.Input(shape=(self.latent,), name="latent")
        h = z_in
        for i, units in enumerate(reversed(self.hidden)):
            h = layers.Dense(units, activation=self.activation, name=f"decoder_{i}")(h)
        x_mean = layers.Dense(n_features, name="x_mean")(h)
        # A floor under the variance: features that never vary in training would otherwise drive
        # it (and the likelihood) to infinity.
        floor = math.log(self.min_variance)
        x_log_var = layers.Dense(n_features, name="x_log_var_raw")(h)
        x_log_var = floor + ops.softplus(x_log_var - floor)
        decoder = keras.Model(z_in, [x_mean, x_log_var], name="decoder")

        mean, log_var = encoder(x_in)
        z = GaussianSample(self.beta, n_features, self.seed, name="sample")([mean, log_var])
        reconstruction = ops.concatenate(decoder(z), axis=-1)
        model = keras.Model(x_in, reconstruction, name="variational_autoencoder")

        # Scoring graph on the same layers: decoder mean at mu_z, or the Monte-Carlo probability.
        if self.score_kind == "error":
            scorer_out = decoder(mean)[0]
        else:
            noise = np.random.default_rng(self.seed).standard_normal((self.n_samples, self.latent))
            mc = ReconstructionProbability(decoder, noise, n_features, name="reconstruction_probability")
            scorer_out = mc([x_in, mean, log_var])
        self.scorer_ = keras.Model(x_in, scorer_out, name=f"vae_{self.score_kind}")
        return model

    def compile_model(self, model: Any) -> None:
        keras = keras_module()
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss=gaussian_nll)

    def dense_layers(self) -> list[tuple[str, str]] | None:
        """The ``"error"`` scoring pass as a chain of the layers ``build`` names (encoder to ``z_mean``,
        decoder to ``x_mean``), which :mod:`models.detectors.light` runs in NumPy; None for
        ``"probability"`` (Monte-Carlo sampling: served by Keras)."""
        if self.score_kind != "error":
            return None
        encoder = [(f"encoder_{i}", self.activation) for i in range(len(self.hidden))]
        decoder = [(f"decoder_{i}", self.activation) for i in range(len(self.hidden))]
        return [*encoder, ("z_mean", "linear"), *decoder, ("x_mean", "linear")]

    def inference_model(self) -> Any:
        return self.scorer_

    def score_from_output(self, X: np.ndarray, output: np.ndarray) -> np.ndarray:
        if self.score_kind == "probability":
            return output[:, -1]
        return super().score_from_output(X, output)

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and per-feature contributions (non-negative).

        ``"error"``: squared error / d (rows sum to the score). ``"probability"``: each feature's
        mean standardised squared residual ``0.5 (x - mu_x)^2 / sigma_x^2`` over the samples, i.e.
        the part of the negative log-likelihood that the row's values (not the model's variances)
        are responsible for.
        """
        if self.score_kind == "probability":
            output = self.forward(np.asarray(X, dtype=np.float32))
            return output[:, -1], output[:, :-1]
        return super().explain(X)
