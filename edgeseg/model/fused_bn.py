"""Training-time BatchNormalization on TensorFlow's fused kernel.

Keras 3 computes batch statistics with separate mean, variance, subtract and
multiply ops (and as many again in the gradient). On 2 x86 cores that was over
half of a training step of the alpha-0.5 lite model at 128x128; TensorFlow's
FusedBatchNormV3 (one oneDNN kernel forward, one backward) makes the step 1.5x
faster (126 -> 82 ms at batch 8; benchmarks/train_step.py). Inference and saved models use plain
BatchNormalization: ``train`` saves a plain copy with the same weights.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def fused_batch_norm_class() -> Any:
    """The ``FusedBatchNormalization`` layer class, registered for loading .keras files."""
    import keras

    @keras.saving.register_keras_serializable(package="edgeseg")
    class FusedBatchNormalization(keras.layers.BatchNormalization):
        """BatchNormalization whose training step runs ``FusedBatchNormV3``.

        Same weights, same inference; falls back to Keras' own code for what the
        kernel does not cover (masks, renorm, non-4-D or channels-first inputs,
        other backends).
        """

        def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
            if (not (training and self.trainable) or mask is not None or self.renorm
                    or len(inputs.shape) != 4 or self.axis not in (-1, 3)
                    or keras.backend.backend() != "tensorflow"):
                return super().call(inputs, training=training, mask=mask)
            import tensorflow as tf

            x = tf.cast(inputs, tf.float32)  # as Keras does: statistics in float32
            channels = x.shape[-1]
            gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones((channels,))
            beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros((channels,))
            # With exponential_avg_factor < 1 the kernel also returns the updated
            # moving statistics: moving * momentum + batch * (1 - momentum).
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                is_training=True, exponential_avg_factor=1.0 - self.momentum)
            self.moving_mean.assign(tf.cast(mean, self.moving_mean.dtype))
            self.moving_variance.assign(tf.cast(var, self.moving_variance.dtype))
            return tf.cast(y, self.compute_dtype)

    return FusedBatchNormalization


def with_fused_batch_norm(model: Any) -> Any:
    """A copy of ``model`` whose BatchNormalization layers use the fused kernel; same weights."""
    import keras

    fused = fused_batch_norm_class()

    def clone(layer: Any) -> Any:
        cls = fused if type(layer) is keras.layers.BatchNormalization else layer.__class__
        return cls.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
