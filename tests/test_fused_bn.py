"""The fused training BatchNormalization matches Keras' own, and never reaches a saved model."""

from __future__ import annotations

import numpy as np
import pytest


def _pair(momentum: float = 0.9):
    import keras

    from edgeseg.model.fused_bn import with_fused_batch_norm

    inp = keras.Input((8, 8, 6))
    x = keras.layers.Conv2D(5, 3, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(momentum=momentum, name="bn")(x)
    plain = keras.Model(inp, keras.layers.ReLU(6.0)(x))
    plain.get_layer("bn").set_weights([np.linspace(0.5, 1.5, 5), np.linspace(-1, 1, 5),
                                       np.full(5, 0.3), np.full(5, 2.0)])
    return plain, with_fused_batch_norm(plain)


def test_fused_batch_norm_matches_keras_in_training_and_inference():
    import tensorflow as tf

    plain, fused = _pair()
    assert type(fused.get_layer("bn")).__name__ == "FusedBatchNormalization"
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (4, 8, 8, 6)), tf.float32)
    grads = []
    for model in (plain, fused):
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            loss = tf.reduce_sum(y * tf.range(1.0, 6.0))
        grads.append(tape.gradient(loss, model.trainable_weights))
        grads[-1].append(y)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-4, atol=2e-4)
    # Moving statistics: momentum 0.9 towards the batch statistics. The fused kernel
    # keeps the unbiased batch variance (n / (n - 1), n = 256 here): within 0.5 %.
    for w_plain, w_fused in zip(plain.get_layer("bn").weights, fused.get_layer("bn").weights):
        np.testing.assert_allclose(w_plain.numpy(), w_fused.numpy(), rtol=5e-3)
    assert not np.allclose(plain.get_layer("bn").moving_mean.numpy(), 0.3)  # they did move
    np.testing.assert_allclose(plain(x, training=False).numpy(), fused(x, training=False).numpy(),
                               rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_trained_model_is_saved_with_plain_batch_norm(trained):
    """The best model is what users convert: plain Keras layers, loadable without edgeseg."""
    import zipfile

    path, _ = trained
    with zipfile.ZipFile(path) as z:
        assert "FusedBatchNormalization" not in z.read("config.json").decode()
    with zipfile.ZipFile(path.with_name("tiny.last.keras")) as z:  # the resumable checkpoint
        assert "FusedBatchNormalization" in z.read("config.json").decode()
