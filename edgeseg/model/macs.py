"""Multiply-accumulates and int8 memory traffic per frame, counted from a Keras graph's layers."""

from __future__ import annotations

from typing import Any

import numpy as np

# Layers that become a TFLite op of their own and move their tensors through memory.
# BatchNormalization and ReLU fold into the preceding conv; Reshape is free.
_MOVERS = ("Conv2D", "DepthwiseConv2D", "ZeroPadding2D", "UpSampling2D", "Resizing", "Softmax",
           "Add", "GlobalAveragePooling2D", "Dense")


def layer_macs(layer: Any) -> int:
    """MACs of one Conv2D / DepthwiseConv2D / Dense layer for a single image (0 for others)."""
    kind = type(layer).__name__
    if kind == "Dense":
        return int(layer.input.shape[-1] * layer.units)
    if kind not in ("Conv2D", "DepthwiseConv2D"):
        return 0
    _, oh, ow, cout = layer.output.shape
    kh, kw = layer.kernel_size
    cin = layer.input.shape[-1]
    if kind == "DepthwiseConv2D":
        return int(oh * ow * kh * kw * cin * layer.depth_multiplier)
    return int(oh * ow * kh * kw * cin * cout)


def layer_bytes(layer: Any) -> int:
    """Bytes an int8 model moves for one layer and one image: inputs read, output written, weights.

    One byte per activation and weight element (int8); biases and BatchNormalization
    parameters are folded or small and left out. 0 for layers that fold into another op.
    """
    if type(layer).__name__ not in _MOVERS:
        return 0
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    n = sum(int(np.prod(t.shape[1:])) for t in inputs) + int(np.prod(layer.output.shape[1:]))
    kernel = getattr(layer, "kernel", None)  # Keras 3 names the depthwise kernel "kernel" too
    return n + (int(np.prod(kernel.shape)) if kernel is not None else 0)


def count_macs(model: Any) -> dict[str, int]:
    """MACs per frame of the encoder (MobileNet), the decoder and the whole model."""
    enc = dec = 0
    for layer in model.layers:
        n = layer_macs(layer)
        if layer.name.startswith(("dec_", "seg_")):
            dec += n
        else:
            enc += n
    return {"encoder": enc, "decoder": dec, "total": enc + dec}


def count_traffic(model: Any) -> dict[str, int]:
    """Total MACs and int8 bytes moved per frame: the two terms of a roofline-style estimate."""
    return {"macs": sum(layer_macs(layer) for layer in model.layers),
            "bytes": sum(layer_bytes(layer) for layer in model.layers)}
