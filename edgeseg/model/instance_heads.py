"""Class-agnostic instance heads in the style of Panoptic-DeepLab (Cheng et al., CVPR 2020), and their losses.

A light instance decoder beside the semantic one: one depthwise-separable 3×3 block
on the encoder's tap, then two 1×1 heads resized bilinearly to the semantic output's
size (half the input): the object-centre heatmap (1 channel) and the offset from each
pixel to its object's centre (2 channels, dy and dx, in output pixels).
"""

from __future__ import annotations

from typing import Any

# Loss weights. Panoptic-DeepLab uses 200 (centre MSE) and 0.01 (offset L1 in pixels of
# 1024×2048 frames). Adam scales each head's own steps, so the weights only set how hard
# the instance losses pull on the shared encoder. On 128² touching-object scenes, 9 CPU-min
# (benchmarks/instances.md): 200 and 0.1 left the encoder learning the classes at half the
# semantic model's pace; after 17 epochs 5 and 0.02 had val mIoU 0.42, 0.5 and 0.002 0.57,
# the semantic-only model 0.60; a centre weight of 1.5 was worse than 0.5. Without class
# weights, two runs each: 0.5 / 0.002 int8 mIoU 0.802, 0.793 and PQ things 0.507, 0.492;
# 0.1 / 0.0004 0.815, 0.787 and 0.502, 0.488 (the semantic-only model: mIoU 0.798): no
# difference beyond the spread; the lower pulls least on the encoder.
CENTER_WEIGHT = 0.1
OFFSET_WEIGHT = 0.0004
HEAD_NAMES = ("instance_center", "instance_offset")


def instance_heads(inputs: Any, tap: Any, level: int, output_size: tuple[int, int],
                   width: float = 0.5, skip: bool = False, edgetpu: bool = False) -> tuple[Any, Any]:
    """The centre heatmap and offset outputs of a model whose encoder ends at ``tap``.

    One depthwise-separable 3×3 block at the tap (about a tenth of the fast decoder's
    3×3 conv), optionally joined with the 1/4 features first (``skip``, as
    Panoptic-DeepLab's instance decoder; sharper boundaries, ~35 % more per training
    step at 128²), then the two 1×1 heads resized bilinearly to the output size.

    Args:
        inputs: The model's input tensor (its graph holds the 1/4 features).
        tap: The encoder's output at 1/2**(level+1).
        level: The encoder tap level (1: 1/4 … 4: 1/32).
        output_size: (h, w) of the semantic output.
        width: Filters as a multiple of 128.
        skip: Join the 1/4 features (levels ≥ 2).
        edgetpu: Resize with RESIZE_BILINEAR version 2 (the Edge TPU deployment copy's,
            Keras' values: ``edgeseg.model.decoder._edgetpu_bilinear_layer``). Keras'
            Resizing is version 3, and one version-3 use makes the file's RESIZE_BILINEAR
            op code version 3 for the semantic head's resize too.

    Returns:
        (centre N×h×w×1, offsets N×h×w×2), both float32.
    """
    import keras
    from keras import layers

    from edgeseg.model.encoder import LEVEL_BLOCKS

    f = max(16, int(128 * width))
    x = tap
    if skip and level > 1:
        x = layers.Conv2D(f, 1, use_bias=False, name="ins_tap_conv")(tap)
        x = layers.BatchNormalization(name="ins_tap_bn")(x)
        x = layers.ReLU(6.0, name="ins_tap_relu")(x)
        quarter = keras.Model(inputs, tap).get_layer(f"conv_pw_{LEVEL_BLOCKS[1]}_relu").output
        h4, w4 = quarter.shape[1], quarter.shape[2]
        x = layers.Resizing(h4, w4, interpolation="bilinear", name="ins_up")(x)
        s = layers.Conv2D(f // 2, 1, use_bias=False, name="ins_skip_conv")(quarter)
        s = layers.BatchNormalization(name="ins_skip_bn")(s)
        s = layers.ReLU(6.0, name="ins_skip_relu")(s)
        x = layers.Concatenate(name="ins_concat")([x, s])
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="ins_dw")(x)
    x = layers.BatchNormalization(name="ins_dw_bn")(x)
    x = layers.ReLU(6.0, name="ins_dw_relu")(x)
    x = layers.Conv2D(f, 1, use_bias=False, name="ins_pw")(x)
    x = layers.BatchNormalization(name="ins_pw_bn")(x)
    x = layers.ReLU(6.0, name="ins_pw_relu")(x)
    oh, ow = output_size
    c = layers.Conv2D(1, 1, name="ins_center_logits")(x)
    o = layers.Conv2D(2, 1, name="ins_offset_logits")(x)
    if edgetpu:
        from edgeseg.model.decoder import _edgetpu_bilinear_layer

        resize = _edgetpu_bilinear_layer()
        factor = oh // x.shape[1]
        return (resize(factor, name=HEAD_NAMES[0], dtype="float32")(c),
                resize(factor, name=HEAD_NAMES[1], dtype="float32")(o))
    center = layers.Resizing(oh, ow, interpolation="bilinear", name=HEAD_NAMES[0],
                             dtype="float32")(c)
    offset = layers.Resizing(oh, ow, interpolation="bilinear", name=HEAD_NAMES[1],
                             dtype="float32")(o)
    return center, offset


def head_layout(cfg: Any) -> dict[str, Any]:
    """The ``instance`` block of a .keras sidecar: the model's outputs in order, and their units."""
    from edgeseg.data.instance_pipeline import SIGMA_FULL

    return {"outputs": ["semantic", "center", "offset"], "things": list(cfg.things),
            "center": "object-centre heatmap, Gaussians of sigma "
                      f"{SIGMA_FULL * cfg.output_size[0] / cfg.height:g} output px",
            "offset_units": "output pixels (dy, dx), pixel to its object's centre",
            "stride": cfg.height / cfg.output_size[0]}


def semantic_loss(y: Any, probs: Any) -> Any:
    """Weighted cross-entropy: ``y`` is N×h×w×2 (class id, pixel weight; weight 0 = ignored)."""
    import keras
    from keras import ops

    ids = ops.cast(y[..., 0], "int32")
    ce = keras.losses.sparse_categorical_crossentropy(ids, probs)
    return ops.mean(ce * y[..., 1])


def center_loss(y: Any, heat: Any) -> Any:
    """MSE of the centre heatmap, times ``CENTER_WEIGHT``."""
    from keras import ops

    return CENTER_WEIGHT * ops.mean(ops.square(heat - y))


def offset_loss(y: Any, off: Any) -> Any:
    """L1 of the offsets over thing pixels: ``y`` is N×h×w×3 (dy, dx, thing mask)."""
    from keras import ops

    mask = y[..., 2:3]
    return OFFSET_WEIGHT * ops.sum(ops.abs(off - y[..., :2]) * mask) / ops.maximum(ops.sum(mask), 1.0)


def losses() -> dict[str, Any]:
    """The instance model's losses by name, in output order (semantic, centre, offsets):
    what ``compile`` takes and what loading a compiled checkpoint (``--resume``) needs."""
    return {"semantic_loss": semantic_loss, "center_loss": center_loss, "offset_loss": offset_loss}
