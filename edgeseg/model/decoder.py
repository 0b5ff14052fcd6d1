"""SegNet decoders: the seed's (plain 3×3 convs) and an edge-friendly lite one."""

from __future__ import annotations

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


def _upsample(x: Any, name: str, resize: bool) -> Any:
    from keras import layers

    if not resize:
        return layers.UpSampling2D((2, 2), name=name)(x)
    # Resizing(nearest) lowers to RESIZE_NEAREST_NEIGHBOR, which the Edge TPU maps;
    # UpSampling2D lowers to TILE+RESHAPE, which it does not. Same values.
    h, w = x.shape[1], x.shape[2]
    return layers.Resizing(2 * h, 2 * w, interpolation="nearest", name=name)(x)


def seed_decoder(x: Any, n_classes: int, n_up: int, resize: bool = False) -> Any:
    """The keras_segmentation SegNet decoder: ZeroPad + Conv3x3 + BN per stage, no activation."""
    from keras import layers

    for i, filters in enumerate(decoder_filters(n_up), start=1):
        if i > 1:
            x = _upsample(x, f"dec_up_{i - 1}", resize)
        x = layers.ZeroPadding2D((1, 1), name=f"dec_pad_{i}")(x)
        x = layers.Conv2D(filters, 3, padding="valid", name=f"dec_conv_{i}")(x)
        x = layers.BatchNormalization(name=f"dec_bn_{i}")(x)
    return layers.Conv2D(n_classes, 3, padding="same", name="seg_logits")(x)


def lite_decoder(x: Any, n_classes: int, n_up: int, width: float = 0.5,
                 resize: bool = False) -> Any:
    """The seed's stages as depthwise-separable 3×3 convs with BN + ReLU6.

    Bounded activations quantize well, and a depthwise 3×3 + pointwise 1×1 pair
    costs about 1/9 of a full 3×3 conv at these widths.
    """
    from keras import layers

    for i, filters in enumerate(decoder_filters(n_up), start=1):
        if i > 1:
            x = _upsample(x, f"dec_up_{i - 1}", resize)
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dec_dw_{i}")(x)
        x = layers.BatchNormalization(name=f"dec_dw_{i}_bn")(x)
        x = layers.ReLU(6.0, name=f"dec_dw_{i}_relu")(x)
        x = layers.Conv2D(max(8, int(filters * width)), 1, use_bias=False, name=f"dec_pw_{i}")(x)
        x = layers.BatchNormalization(name=f"dec_pw_{i}_bn")(x)
        x = layers.ReLU(6.0, name=f"dec_pw_{i}_relu")(x)
    return layers.Conv2D(n_classes, 3, padding="same", name="seg_logits")(x)


def fast_decoder(x: Any, n_classes: int, n_up: int, width: float = 0.5) -> Any:
    """One 3×3 conv (BN + ReLU6) at the tap's resolution, then the logits upsampled once.

    Decoding at the tap (1/8 for ``encoder_level`` 2) and resizing only the
    ``n_classes``-channel logits bilinearly to half the input removes the large
    decoder activations that bound the seed and lite decoders by memory traffic:
    at 416² int8 the realtime preset runs ~4× faster than the seed (benchmarks/RESULTS.md §6c).
    RESIZE_BILINEAR runs in int8 under XNNPACK and on the Edge TPU.

    Args:
        x: Encoder features, N×h×w×C.
        n_classes: Output channels.
        n_up: Upsamplings to half the input (the tap's ``encoder_level``): ×2**n_up.
        width: Filters of the conv, as a multiple of 128 (0.5: 64, an XNNPACK-friendly width).

    Returns:
        Logits, N×(h·2**n_up)×(w·2**n_up)×n_classes.
    """
    from keras import layers

    x = layers.Conv2D(max(8, int(128 * width)), 3, padding="same", use_bias=False,
                      name="dec_conv_1")(x)
    x = layers.BatchNormalization(name="dec_bn_1")(x)
    x = layers.ReLU(6.0, name="dec_relu_1")(x)
    x = layers.Conv2D(n_classes, 1, name="seg_logits")(x)
    h, w = x.shape[1], x.shape[2]
    # Bilinear, not nearest: smooth class boundaries from 1/8-resolution logits, and
    # XNNPACK delegates it in int8 (nearest via Resizing measured slower here).
    return layers.Resizing(h << n_up, w << n_up, interpolation="bilinear", name="seg_upsample")(x)
