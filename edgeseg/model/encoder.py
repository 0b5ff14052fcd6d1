"""MobileNet v1 encoder with Keras' layer names (conv1 … conv_pw_13)."""

from __future__ import annotations

from typing import Any

# (pointwise filters, stride) of depthwise blocks 1..13, as in Keras' MobileNet.
_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
# Last block of each pyramid level: f1 (1/2) … f5 (1/32).
LEVEL_BLOCKS = (1, 3, 5, 11, 13)


def _conv_block(x: Any, filters: int, alpha: float, strides: int = 2) -> Any:
    from keras import layers

    x = layers.ZeroPadding2D(padding=(1, 1), name="conv1_pad")(x)
    x = layers.Conv2D(int(filters * alpha), 3, padding="valid", use_bias=False,
                      strides=strides, name="conv1")(x)
    x = layers.BatchNormalization(name="conv1_bn")(x)
    return layers.ReLU(6.0, name="conv1_relu")(x)


def _depthwise_conv_block(x: Any, filters: int, alpha: float, strides: int, block_id: int) -> Any:
    from keras import layers

    x = layers.ZeroPadding2D((1, 1), name=f"conv_pad_{block_id}")(x)
    x = layers.DepthwiseConv2D(3, padding="valid", strides=strides, use_bias=False,
                               name=f"conv_dw_{block_id}")(x)
    x = layers.BatchNormalization(name=f"conv_dw_{block_id}_bn")(x)
    x = layers.ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
    x = layers.Conv2D(int(filters * alpha), 1, padding="same", use_bias=False,
                      name=f"conv_pw_{block_id}")(x)
    x = layers.BatchNormalization(name=f"conv_pw_{block_id}_bn")(x)
    return layers.ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)


def mobilenet_encoder(inputs: Any, alpha: float = 1.0, level: int = 3,
                      stem: str = "mobilenet") -> Any:
    """Run MobileNet v1 blocks on ``inputs`` up to the tap of ``level``.

    Args:
        inputs: A Keras tensor (H×W×3).
        alpha: Width multiplier.
        level: 1..4 selects f2 (1/4), f3 (1/8), f4 (1/16, ``conv_pw_11``), f5 (1/32).
        stem: ``mobilenet`` (Keras' layers) or ``lean``: ``conv1`` with half the filters
            and the stride of block 2 moved to block 1, so ``conv_pw_1`` already runs at
            1/4. Every later shape is MobileNet's. On a Cortex-A72 (int8, no dot product)
            the 3-channel stem runs at < 1 MAC per instruction and the 1/2-resolution
            block 1 moves the largest activations: ~15 M of the realtime model's
            instructions at 320² (benchmarks/RESULTS.md §6d).

    Returns:
        The feature tensor the decoder starts from. Blocks past the tap are not
        built: they would be unused by the graph anyway.
    """
    lean = stem == "lean"
    x = _conv_block(inputs, 16 if lean else 32, alpha)
    last = LEVEL_BLOCKS[level]
    for block_id, (filters, stride) in enumerate(_BLOCKS, start=1):
        if lean and block_id in (1, 2):
            stride = 3 - stride  # block 1 downsamples, block 2 does not
        x = _depthwise_conv_block(x, filters, alpha, stride, block_id)
        if block_id == last:
            break
    return x
