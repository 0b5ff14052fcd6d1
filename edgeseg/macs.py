"""Multiply-accumulates per frame, counted from a Keras graph's conv layers."""

from __future__ import annotations

from typing import Any


def layer_macs(layer: Any) -> int:
    """MACs of one Conv2D / DepthwiseConv2D layer for a single image (0 for others)."""
    kind = type(layer).__name__
    if kind not in ("Conv2D", "DepthwiseConv2D"):
        return 0
    _, oh, ow, cout = layer.output.shape
    kh, kw = layer.kernel_size
    cin = layer.input.shape[-1]
    if kind == "DepthwiseConv2D":
        return int(oh * ow * kh * kw * cin * layer.depth_multiplier)
    return int(oh * ow * kh * kw * cin * cout)


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
