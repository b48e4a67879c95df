"""BiGAN anomaly detector (Zenati et al. 2018, "Efficient GAN-Based Anomaly Detection").

Three networks: an encoder ``E: x -> z``, a generator ``G: z -> x`` and a discriminator ``D`` on
``(x, z)`` pairs, trained adversarially: ``D`` tells real pairs ``(x, E(x))`` from generated pairs
``(G(z), z)``, while ``E`` and ``G`` try to fool it. Trained on normal data, ``G(E(x))`` stays
close to a normal ``x`` and far from an anomaly.

Anomaly score (Zenati et al. 2018, eq. 4, with their L1 norms; the score the Fast Forward Labs
report used for its BiGAN)::

    A(x) = alpha * ||x - G(E(x))||_1 + (1 - alpha) * ||f(x, E(x)) - f(G(E(x)), E(x))||_1

where ``f`` is the discriminator's last hidden layer (feature matching). ``explain`` returns the
reconstruction part per feature, ``alpha * |x - G(E(x))|``.

Adversarial training oscillates: on KDD the ROC AUC of the raw weights swung between 0.82 and 0.98
from one epoch to the next. Three stabilisers make it usable: dropout in ``D``, one-sided label
smoothing, and scoring with an exponential moving average of all three networks' weights (``ema``,
with the warm-up of ``tf.train.ExponentialMovingAverage``). Early stopping watches the mean anomaly
score of the held-out normal rows (``val_loss``), computed with the averaged weights.

Backends: the networks use ``keras.ops`` only and scoring goes through ``compiled_forward``, so a
trained BiGAN scores under TensorFlow, JAX or PyTorch. *Training* alternates two optimisers in a
custom ``train_step`` written with ``tf.GradientTape`` and therefore needs the TensorFlow backend
(Keras 3 asks for one adversarial step per backend); ``fit`` says so under any other.

>>> import numpy as np
>>> X = np.random.default_rng(0).random((512, 8), dtype=np.float32)
>>> BiGAN(hidden=16, latent=4, epochs=2, verbose=0).fit(X).score(X).shape
(512,)
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar, Self

import numpy as np

from models.detectors.backend import keras_module
from models.detectors.base import KerasDetector


@cache
def _bigan_model_class() -> Any:
    """The ``keras.Model`` subclass, defined once Keras is imported."""
    keras = keras_module()
    ops = keras.ops
    Model: Any = keras.Model

    class BiGANModel(Model):
        """``call(x)`` returns ``[G(E(x)), feature-matching distance]`` as one ``(n, d + 1)`` array."""

        def __init__(
            self,
            live: tuple[Any, Any, Any],
            averaged: tuple[Any, Any, Any],
            latent: int,
            alpha: float,
            smoothing: float,
            ema: float,
            seed: int,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            self.encoder, self.generator, self.discriminator = live
            # Scoring uses an exponential moving average of the weights: adversarial training
            # oscillates, and the average of the recent iterates is far steadier than any one.
            self.avg_encoder, self.avg_generator, self.avg_discriminator = averaged
            self.latent = latent
            self.alpha = alpha
            self.smoothing = smoothing
            self.ema = ema
            self.noise_seed = keras.random.SeedGenerator(seed)
            self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
            self.ge_loss_tracker = keras.metrics.Mean(name="ge_loss")
            self.score_tracker = keras.metrics.Mean(name="loss")

        def call(self, x: Any, training: bool = False) -> Any:
            z = self.avg_encoder(x, training=False)
            rec = self.avg_generator(z, training=False)
            _, f_real = self.avg_discriminator([x, z], training=False)
            _, f_rec = self.avg_discriminator([rec, z], training=False)
            fm = ops.sum(ops.abs(f_real - f_rec), axis=-1, keepdims=True)
            return ops.concatenate([rec, fm], axis=-1)

        @property
        def metrics(self) -> list[Any]:
            return [self.d_loss_tracker, self.ge_loss_tracker, self.score_tracker]

        def compile(self, d_optimizer: Any, ge_optimizer: Any) -> None:
            super().compile()
            self.d_optimizer = d_optimizer
            self.ge_optimizer = ge_optimizer

        def train_step(self, data: Any) -> dict[str, Any]:
            import tensorflow as tf  # TensorFlow backend only: see the module docstring.

            x = data[0] if isinstance(data, tuple) else data
            z = keras.random.normal((ops.shape(x)[0], self.latent), seed=self.noise_seed)
            with tf.GradientTape(persistent=True) as tape:
                real, _ = self.discriminator([x, self.encoder(x, training=True)], training=True)
                fake, _ = self.discriminator([self.generator(z, training=True), z], training=True)
                ones, zeros = ops.ones_like(real), ops.zeros_like(real)
                # One-sided label smoothing: a discriminator that is never fully sure of the real
                # pairs leaves the encoder and generator a gradient to follow.
                d_loss = ops.mean(
                    ops.binary_crossentropy(ones * (1.0 - self.smoothing), real, from_logits=True)
                ) + ops.mean(ops.binary_crossentropy(zeros, fake, from_logits=True))
                # E and G want the labels swapped: real pairs look generated and vice versa.
                ge_loss = ops.mean(ops.binary_crossentropy(zeros, real, from_logits=True)) + ops.mean(
                    ops.binary_crossentropy(ones, fake, from_logits=True)
                )
            d_vars = self.discriminator.trainable_variables
            ge_vars = self.encoder.trainable_variables + self.generator.trainable_variables
            self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars, strict=True))
            self.ge_optimizer.apply_gradients(zip(tape.gradient(ge_loss, ge_vars), ge_vars, strict=True))
            del tape
            # Momentum warms up as in tf.train.ExponentialMovingAverage(num_updates), so short
            # trainings are not dominated by the initial weights.
            step = ops.cast(self.ge_optimizer.iterations, "float32")
            momentum = ops.minimum(self.ema, (1.0 + step) / (10.0 + step))
            for live, averaged in (
                (self.encoder, self.avg_encoder),
                (self.generator, self.avg_generator),
                (self.discriminator, self.avg_discriminator),
            ):
                for v, a in zip(live.weights, averaged.weights, strict=True):
                    a.assign(momentum * a + (1.0 - momentum) * v)
            self.d_loss_tracker.update_state(d_loss)
            self.ge_loss_tracker.update_state(ge_loss)
            return {"d_loss": self.d_loss_tracker.result(), "ge_loss": self.ge_loss_tracker.result()}

        def test_step(self, data: Any) -> dict[str, Any]:
            x = data[0] if isinstance(data, tuple) else data
            out = self(x, training=False)
            d = ops.shape(x)[-1]
            rec, fm = out[:, :d], out[:, d]
            score = self.alpha * ops.sum(ops.abs(x - rec), axis=-1) + (1 - self.alpha) * fm
            self.score_tracker.update_state(score)
            return {"loss": self.score_tracker.result()}

    return BiGANModel


class BiGAN(KerasDetector):
    name: ClassVar[str] = "bigan"

    def __init__(
        self,
        hidden: int = 64,
        latent: int = 32,
        disc_hidden: int = 128,
        alpha: float = 0.9,
        dropout: float = 0.5,
        label_smoothing: float = 0.1,
        ema: float = 0.999,
        d_learning_rate: float | None = None,
        **training: Any,
    ) -> None:
        # An epoch of 87k KDD rows takes 5-8 s on 2 CPU cores; the averaged weights' score on
        # held-out normal rows levels off within a few epochs, so stop after 3 without progress.
        training.setdefault("learning_rate", 1e-4)
        training.setdefault("epochs", 10)
        training.setdefault("patience", 3)
        super().__init__(**training)
        self.hidden = hidden
        self.latent = latent
        self.disc_hidden = disc_hidden
        self.alpha = alpha
        self.dropout = dropout
        self.label_smoothing = label_smoothing
        self.ema = ema
        self.d_learning_rate = d_learning_rate

    def build(self, n_features: int) -> Any:
        live, averaged = self._networks(n_features, ""), self._networks(n_features, "avg_")
        for net, copy in zip(live, averaged, strict=True):
            copy.set_weights(net.get_weights())
        model = _bigan_model_class()(
            live,
            averaged,
            self.latent,
            self.alpha,
            self.label_smoothing,
            self.ema,
            self.seed,
            name="bigan",
        )
        model(np.zeros((1, n_features), np.float32))  # create every variable before load_weights
        return model

    def _networks(self, n_features: int, prefix: str) -> tuple[Any, Any, Any]:
        """Encoder, generator and discriminator (``D([x, z]) -> [logit, features]``)."""
        keras = keras_module()
        layers = keras.layers

        x_in = keras.Input(shape=(n_features,))
        h = layers.LeakyReLU(0.2)(layers.Dense(self.hidden)(x_in))
        encoder = keras.Model(x_in, layers.Dense(self.latent)(h), name=f"{prefix}encoder")

        z_in = keras.Input(shape=(self.latent,))
        h = layers.Dense(self.hidden, activation="relu")(z_in)
        h = layers.Dense(2 * self.hidden, activation="relu")(h)
        generator = keras.Model(z_in, layers.Dense(n_features)(h), name=f"{prefix}generator")

        dx_in, dz_in = keras.Input(shape=(n_features,)), keras.Input(shape=(self.latent,))
        hx = layers.Dropout(self.dropout)(layers.LeakyReLU(0.2)(layers.Dense(self.disc_hidden)(dx_in)))
        hz = layers.Dropout(self.dropout)(layers.LeakyReLU(0.2)(layers.Dense(self.disc_hidden)(dz_in)))
        h = layers.Concatenate()([hx, hz])
        features = layers.Dropout(self.dropout)(layers.LeakyReLU(0.2)(layers.Dense(self.disc_hidden)(h)))
        logit = layers.Dense(1)(features)
        discriminator = keras.Model([dx_in, dz_in], [logit, features], name=f"{prefix}discriminator")
        return encoder, generator, discriminator

    def compile_model(self, model: Any) -> None:
        keras = keras_module()
        # beta_1 = 0.5: the usual choice for adversarial training (Radford et al., DCGAN).
        model.compile(
            d_optimizer=keras.optimizers.Adam(self.d_learning_rate or self.learning_rate, beta_1=0.5),
            ge_optimizer=keras.optimizers.Adam(self.learning_rate, beta_1=0.5),
        )

    def fit(self, X: np.ndarray, X_val: np.ndarray | None = None) -> Self:
        backend = keras_module().backend.backend()
        if backend != "tensorflow":
            raise RuntimeError(
                f"BiGAN training needs the TensorFlow backend (KERAS_BACKEND=tensorflow), not {backend!r}: "
                "train it there; a trained BiGAN scores under any backend"
            )
        return super().fit(X, X_val)

    def score_from_output(self, X: np.ndarray, output: np.ndarray) -> np.ndarray:
        rec, fm = output[:, :-1], output[:, -1]
        return self.alpha * np.sum(np.abs(X - rec), axis=1) + (1 - self.alpha) * fm

    def explain(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and the reconstruction part per feature, ``alpha * |x - G(E(x))|``."""
        X = np.asarray(X, dtype=np.float32)
        output = self.forward(X)
        contributions = self.alpha * np.abs(X - output[:, :-1])
        return self.score_from_output(X, output), contributions
