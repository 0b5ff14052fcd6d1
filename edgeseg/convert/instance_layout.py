"""Which output tensor of a converted instance model holds which head, written into its description."""

from __future__ import annotations

import re
from typing import Any

from edgeseg.config import ModelConfig
from edgeseg.errors import EdgesegError

HEADS = ("semantic", "center", "offset")  # the Keras model's output order


def _describe(d: dict[str, Any]) -> dict[str, Any]:
    scale, zp = d["quantization"]
    return {"name": d["name"], "shape": [int(x) for x in d["shape"]],
            "dtype": d["dtype"].__name__, "scale": float(scale), "zero_point": int(zp)}


def head_layout(model_bytes: bytes, cfg: ModelConfig) -> dict[str, Any]:
    """The ``instance`` block of a converted instance model's description.

    The TFLite converter orders output tensors its own way (an int8 model here lists
    the centre heatmap first); each output tensor keeps the Keras output number as the
    ``:N`` suffix of its name, which maps it back to a head.

    Returns:
        ``{"heads": {"semantic": i, "center": j, "offset": k}`` (positions in the
        interpreter's output list), ``"things"``, ``"offset_units"``, ``"stride"`` (input
        pixels per output pixel), ``"outputs"`` (each head's tensor: shape, dtype,
        scale, zero point)}.

    Raises:
        EdgesegError: The outputs cannot be told apart (not three, or unnamed and ambiguous).
    """
    from edgeseg.runtime.interpreter import make_interpreter

    details = make_interpreter(model_bytes, 1, allocate=False).get_output_details()
    if len(details) != 3:
        raise EdgesegError(f"an instance model has 3 outputs (scores, centre, offsets); the "
                           f"converted one has {len(details)}.")
    heads: dict[str, int] = {}
    for pos, d in enumerate(details):
        m = re.search(r":(\d+)$", d["name"])
        if m and int(m.group(1)) < 3:
            heads[HEADS[int(m.group(1))]] = pos
    if len(heads) != 3:  # by channels: semantic C, centre 1, offsets 2
        by_ch = {int(d["shape"][-1]): pos for pos, d in enumerate(details)}
        if len(by_ch) != 3 or 1 not in by_ch or 2 not in by_ch:
            raise EdgesegError("cannot tell the converted model's outputs apart (scores, centre, "
                               "offsets); please report this with the model.")
        heads = {"center": by_ch.pop(1), "offset": by_ch.pop(2), "semantic": by_ch.popitem()[1]}
    oh = int(details[heads["semantic"]]["shape"][1])
    return {"heads": heads, "things": list(cfg.things),
            "offset_units": "output pixels (dy, dx), pixel to its object's centre",
            "stride": cfg.height / oh,
            "outputs": {h: _describe(details[i]) for h, i in heads.items()}}
