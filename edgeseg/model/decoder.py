"""SegNet decoders: the seed's (plain 3×3 convs) and an edge-friendly lite one."""

from __future__ import annotations

import functools
from typing import Any

SEED_FILTERS = (512, 256, 128, 64)


def decoder_filters(n_up: int) -> list[int]:
    """Conv widths of the decoder for ``n_up`` upsamplings (one conv per stage).

    The seed (n_up=3) is 512, 256, 128, 64; extra stages repeat 128 as
    keras_segmentation does; fewer stages drop the middle widths.
    """
    if n_up == 1:
        return [512, 64]
    return [512, 256] + [128] * (n_up - 2) + [64]


# How a deployment graph does its ×2 nearest upsampling; each lowers to different TFLite ops.
# tile: Keras UpSampling2D -> RESHAPE + TILE on 5-D tensors (the training graph).
# resize: RESIZE_NEAREST_NEIGHBOR with half_pixel_centers=False, align_corners=False:
#   op version 2 for int8 (1 for float), the version edgetpu_compiler maps; Keras'
#   Resizing(nearest) sets half_pixel_centers=True -> version 3, which it refuses
#   ("Operation version not supported": google-coral/edgetpu #187, #420, #114).
# concat_reshape: CONCATENATION along channels, RESHAPE to twice the width, CONCATENATION
#   along the width, RESHAPE to twice the height: XNNPACK runs all four in int8 and
#   float32, so the CPU graph stays one delegate partition, where RESIZE_NEAREST_NEIGHBOR
#   falls back to the builtin kernel and splits it (benchmarks/RESULTS.md §8).
# All three give the same values: for ×2, every source index is floor(dst / 2).
UPSAMPLING = ("tile", "resize", "concat_reshape")


def upsampling_kind(value: str | bool) -> str:
    """Normalize an upsampling choice; ``True``/``False`` mean ``resize``/``tile``.

    Raises:
        ValueError: Not one of ``UPSAMPLING``.
    """
    if isinstance(value, bool):
        return "resize" if value else "tile"
    if value not in UPSAMPLING:
        raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {value!r}")
    return value


@functools.cache
def _upsample_layers() -> dict[str, Any]:
    """The two deployment-only ×2 layers (they call TensorFlow ops, as ArgmaxMask does)."""
    import keras
    import tensorflow as tf

    class NearestResize2x(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            size = (2 * x.shape[1], 2 * x.shape[2])
            return tf.compat.v1.image.resize_nearest_neighbor(
                x, size, align_corners=False, half_pixel_centers=False)

        def compute_output_shape(self, s: Any) -> Any:
            return (s[0], 2 * s[1], 2 * s[2], s[3])

    class ConcatReshape2x(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            # [h, w, 2c] read as [h, 2w, c] repeats each pixel along the width;
            # [h, 4w, c] read as [2h, 2w, c] repeats each row.
            _, h, w, c = x.shape
            y = tf.reshape(tf.concat([x, x], axis=-1), (-1, h, 2 * w, c))
            return tf.reshape(tf.concat([y, y], axis=2), (-1, 2 * h, 2 * w, c))

        def compute_output_shape(self, s: Any) -> Any:
            return (s[0], 2 * s[1], 2 * s[2], s[3])

    return {"resize": NearestResize2x, "concat_reshape": ConcatReshape2x}


@functools.cache
def _edgetpu_bilinear_layer() -> Any:
    """The fast decoder's ×N bilinear logits resize with RESIZE_BILINEAR version 2.

    Keras' Resizing(bilinear) samples source ``(d + 0.5) / N - 0.5`` (half-pixel
    centres: op version 3, which edgetpu_compiler refuses). Version 2 samples
    ``d / N``: a grid shifted by ``(N - 1) / 2`` output pixels, and for even N no
    integer crop of a ×N resize lands on Keras' grid. A ×2N resize does: replicate
    the first row and column (the edge clamping half-pixel centres do), resize that
    ``(h + 1)×(w + 1)`` tensor ×2N (source ``d2 / 2N``) and keep ``d2 = 2d + N + 1``,
    which is ``(d + 0.5) / N + 0.5`` in the padded grid: Keras' values. The crop is a
    stride-1 slice plus a 1×1 max pool of stride 2 (STRIDED_SLICE takes only strides
    of 1 on the Edge TPU); CONCATENATION, STRIDED_SLICE, RESIZE_BILINEAR v2 and
    MAX_POOL_2D all map to it.
    """
    import keras
    import tensorflow as tf

    class EdgeTpuBilinearResize(keras.layers.Layer):
        def __init__(self, factor: int, **kw: Any) -> None:
            super().__init__(**kw)
            self.factor = factor

        def call(self, x: Any) -> Any:
            n, (_, h, w, _) = self.factor, x.shape
            x = tf.concat([x[:, :1], x], axis=1)
            x = tf.concat([x[:, :, :1], x], axis=2)
            y = tf.compat.v1.image.resize_bilinear(
                x, (2 * n * (h + 1), 2 * n * (w + 1)), align_corners=False,
                half_pixel_centers=False)
            k = n + 1
            y = y[:, k:k + 2 * n * h - 1, k:k + 2 * n * w - 1]
            return tf.nn.max_pool2d(y, 1, 2, "VALID")

        def compute_output_shape(self, s: Any) -> Any:
            return (s[0], self.factor * s[1], self.factor * s[2], s[3])

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "factor": self.factor}

    return EdgeTpuBilinearResize


def _upsample(x: Any, name: str, upsampling: str | bool) -> Any:
    from keras import layers

    kind = upsampling_kind(upsampling)
    if kind == "tile":
        return layers.UpSampling2D((2, 2), name=name)(x)
    return _upsample_layers()[kind](name=name)(x)


def seed_decoder(x: Any, n_classes: int, n_up: int, upsampling: str | bool = "tile") -> Any:
    """The keras_segmentation SegNet decoder: ZeroPad + Conv3x3 + BN per stage, no activation."""
    from keras import layers

    for i, filters in enumerate(decoder_filters(n_up), start=1):
        if i > 1:
            x = _upsample(x, f"dec_up_{i - 1}", upsampling)
        x = layers.ZeroPadding2D((1, 1), name=f"dec_pad_{i}")(x)
        x = layers.Conv2D(filters, 3, padding="valid", name=f"dec_conv_{i}")(x)
        x = layers.BatchNormalization(name=f"dec_bn_{i}")(x)
    return layers.Conv2D(n_classes, 3, padding="same", name="seg_logits")(x)


def lite_decoder(x: Any, n_classes: int, n_up: int, width: float = 0.5,
                 upsampling: str | bool = "tile") -> Any:
    """The seed's stages as depthwise-separable 3×3 convs with BN + ReLU6.

    Bounded activations quantize well, and a depthwise 3×3 + pointwise 1×1 pair
    costs about 1/9 of a full 3×3 conv at these widths.
    """
    from keras import layers

    for i, filters in enumerate(decoder_filters(n_up), start=1):
        if i > 1:
            x = _upsample(x, f"dec_up_{i - 1}", upsampling)
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dec_dw_{i}")(x)
        x = layers.BatchNormalization(name=f"dec_dw_{i}_bn")(x)
        x = layers.ReLU(6.0, name=f"dec_dw_{i}_relu")(x)
        x = layers.Conv2D(max(8, int(filters * width)), 1, use_bias=False, name=f"dec_pw_{i}")(x)
        x = layers.BatchNormalization(name=f"dec_pw_{i}_bn")(x)
        x = layers.ReLU(6.0, name=f"dec_pw_{i}_relu")(x)
    return layers.Conv2D(n_classes, 3, padding="same", name="seg_logits")(x)


def fast_decoder(x: Any, n_classes: int, n_up: int, width: float = 0.5,
                 edgetpu: bool = False, separable: bool = False,
                 before_resize: Any = None) -> Any:
    """One 3×3 conv (BN + ReLU6) at the tap's resolution, then the logits upsampled once.

    Decoding at the tap (1/8 for ``encoder_level`` 2) and resizing only the
    ``n_classes``-channel logits bilinearly to half the input removes the large
    decoder activations that bound the seed and lite decoders by memory traffic:
    at 416² int8 the realtime preset runs ~4× faster than the seed (benchmarks/RESULTS.md §6c).
    RESIZE_BILINEAR runs in int8 under XNNPACK and, as version 2 (``edgetpu``), on the Edge TPU.

    Args:
        x: Encoder features, N×h×w×C.
        n_classes: Output channels.
        n_up: Upsamplings to half the input (the tap's ``encoder_level``): ×2**n_up.
        width: Filters of the conv, as a multiple of 128 (0.5: 64, an XNNPACK-friendly width).
        edgetpu: Resize with RESIZE_BILINEAR version 2 (the Edge TPU deployment copy's;
            Keras' values, see ``_edgetpu_bilinear_layer``).
        separable: The conv as depthwise 3×3 + BN + ReLU6 + pointwise 1×1 (``fast_dw``):
            ~1/8 of the dense conv's MACs, which on a Cortex-A72 (no int8 dot product) are
            half the dense decoder's model.
        before_resize: A layer applied to the logits at the tap's resolution, before the
            resize (the ``upsampled`` head's softmax); None: resize the logits.

    Returns:
        Logits (or ``before_resize`` of them), N×(h·2**n_up)×(w·2**n_up)×n_classes.
    """
    from keras import layers

    filters = max(8, int(128 * width))
    if separable:
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dec_dw_1")(x)
        x = layers.BatchNormalization(name="dec_dw_1_bn")(x)
        x = layers.ReLU(6.0, name="dec_dw_1_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name="dec_pw_1")(x)
    else:
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="dec_conv_1")(x)
    x = layers.BatchNormalization(name="dec_bn_1")(x)
    x = layers.ReLU(6.0, name="dec_relu_1")(x)
    x = layers.Conv2D(n_classes, 1, name="seg_logits")(x)
    if before_resize is not None:
        x = before_resize(x)
    h, w = x.shape[1], x.shape[2]
    if edgetpu:
        return _edgetpu_bilinear_layer()(1 << n_up, name="seg_upsample")(x)
    # Bilinear, not nearest: smooth class boundaries from 1/8-resolution logits, and
    # XNNPACK delegates it in int8 (nearest via Resizing measured slower here).
    return layers.Resizing(h << n_up, w << n_up, interpolation="bilinear", name="seg_upsample")(x)
