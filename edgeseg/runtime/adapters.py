"""Plain functions that take the interpreter first: input size, set input, read the class map.

numpy only: resizing and colour conversion belong to the caller (the Segmenter wires in OpenCV).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from edgeseg.errors import EdgesegError


class OutputLayout(NamedTuple):
    """How to read a segmentation output tensor.

    Attributes:
        kind: ``scores`` (per-class scores, argmax them), ``ids`` (in-graph argmax)
            or ``binary`` (one sigmoid channel, thresholded into 2 classes).
        height: Label map height.
        width: Label map width.
        channels: Classes in the tensor (1 for ``ids`` and ``binary``).
        dtype: Tensor dtype.
        scale: Quantization scale (0.0 when not quantized).
        zero_point: Quantization zero point.
        threshold: For ``binary``: the raw tensor value above which a pixel is class 1.
    """

    kind: str
    height: int
    width: int
    channels: int
    dtype: Any
    scale: float
    zero_point: int
    threshold: float = 0.0


def input_details(interpreter: Any) -> dict[str, Any]:
    """The single image input of a segmentation model.

    Raises:
        EdgesegError: When the input is not one [1, H, W, 3] image tensor.
    """
    inputs = interpreter.get_input_details()
    shape = [int(x) for x in inputs[0]["shape"]] if inputs else []
    if len(inputs) != 1 or len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        shapes = ", ".join(str([int(x) for x in d["shape"]]) for d in inputs) or "none"
        raise EdgesegError(f"the model's input {shapes} is not an image: expected one "
                           "[1, height, width, 3] tensor (a segmentation model).")
    if inputs[0]["dtype"] not in (np.uint8, np.int8, np.float32):
        raise EdgesegError(f"input type {np.dtype(inputs[0]['dtype']).name} is not supported; "
                           "expected uint8, int8 or float32.")
    return inputs[0]


def input_size(interpreter: Any) -> tuple[int, int]:
    """(width, height) of the model input, in the order OpenCV's resize takes."""
    _, h, w, _ = input_details(interpreter)["shape"]
    return int(w), int(h)


def input_tensor(interpreter: Any) -> np.ndarray:
    """A writable H×W×3 view of the input tensor. Drop it before ``invoke()``."""
    return interpreter.tensor(input_details(interpreter)["index"])()[0]


def set_input(interpreter: Any, data: np.ndarray) -> None:
    """Copy an H×W×3 array, already in the tensor's dtype and size, into the input."""
    np.copyto(input_tensor(interpreter), data, casting="unsafe")


def quantization(details: dict[str, Any]) -> tuple[float, int]:
    """(scale, zero point) of a tensor; (0.0, 0) when it isn't quantized."""
    scale, zero_point = details.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


def dequantize(raw: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values of a tensor: ``(q - zero_point) * scale`` (float32; as is when not quantized)."""
    if not scale:
        return raw.astype(np.float32)
    return (raw.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def is_identity(lut: np.ndarray) -> bool:
    """True when the table maps every pixel to itself (feed uint8 pixels directly)."""
    return lut.dtype == np.uint8 and bool((lut == np.arange(256)[:, None]).all())


def _grid(n: int, in_h: int, in_w: int, shape: list[int]) -> tuple[int, int]:
    """h, w with h*w == n and the input's aspect ratio (for flattened outputs)."""
    for f in (1, 2, 4, 8, 16, 32):
        if in_h % f == 0 and in_w % f == 0 and (in_h // f) * (in_w // f) == n:
            return in_h // f, in_w // f
    w = round((n * in_w / in_h) ** 0.5)
    if w and n % w == 0:
        return n // w, w
    raise EdgesegError(f"can't tell the label map size of output {shape}: {n} pixels don't "
                       f"match the {in_h}×{in_w} (H×W) input's aspect ratio.")


def output_details(interpreter: Any, index: int = 0) -> dict[str, Any]:
    """The details of output ``index``.

    Raises:
        EdgesegError: No such output (names how many there are).
    """
    outputs = interpreter.get_output_details()
    if not 0 <= index < len(outputs):
        shapes = ", ".join(f"{i}: {[int(x) for x in d['shape']]}" for i, d in enumerate(outputs))
        raise EdgesegError(f"--output-index {index}: the model has {len(outputs)} output(s) "
                           f"({shapes}); pick the segmentation mask's number.")
    return outputs[index]


def output_layout(interpreter: Any, head: str | None = None, index: int = 0) -> OutputLayout:
    """Work out how to read output ``index``.

    Args:
        interpreter: An allocated interpreter.
        head: The model's head from its metadata, if known (``logits`` moves the
            threshold of a single-channel output from 0.5 to 0).
        index: Which output holds the segmentation (MediaPipe's pose model: 2).

    Raises:
        EdgesegError: For shapes that aren't a segmentation output (names the shape).
    """
    details = output_details(interpreter, index)
    shape = [int(x) for x in details["shape"]]
    dtype = np.dtype(details["dtype"])
    scale, zero_point = quantization(details)
    _, in_h, in_w, _ = (int(x) for x in input_details(interpreter)["shape"])
    more = len(interpreter.get_output_details()) > 1
    bad = EdgesegError(f"output {index} shape {shape} ({dtype.name}) is not a segmentation "
                       "output; expected [1, h, w, classes], [1, h*w, classes], [1, h, w] or "
                       "[1, h, w, 1]" + ("; pick another with --output-index N." if more else "."))
    if not shape or shape[0] != 1 or len(shape) not in (3, 4) or min(shape) < 1:
        raise bad
    if len(shape) == 4:
        h, w, c = shape[1:]
    elif shape[1] * in_w == shape[2] * in_h:  # [1, h, w]: ids or one probability map
        h, w, c = shape[1], shape[2], 1
    else:  # [1, h*w, C]: flattened, as the seed's Reshape+Softmax head
        (h, w), c = _grid(shape[1], in_h, in_w, shape), shape[2]
    if c > 1:
        if dtype not in (np.uint8, np.int8, np.float32):
            raise bad
        return OutputLayout("scores", h, w, c, dtype, scale, zero_point)
    if (dtype.kind in "iu" and scale == 0) or head == "argmax":
        return OutputLayout("ids", h, w, 1, dtype, scale, zero_point)
    if dtype not in (np.uint8, np.int8, np.float32):
        raise bad
    level = 0.0 if head == "logits" else 0.5
    threshold = level / scale + zero_point if scale else level
    return OutputLayout("binary", h, w, 1, dtype, scale, zero_point, threshold)


def get_output(interpreter: Any, layout: OutputLayout, index: int = 0) -> np.ndarray:
    """A view of output ``index`` as h×w×C (h×w for ``ids``). Drop it before ``invoke()``."""
    raw = interpreter.tensor(output_details(interpreter, index)["index"])()
    if layout.kind == "ids":
        return raw.reshape(layout.height, layout.width)
    return raw.reshape(layout.height, layout.width, layout.channels)


def argmax_8bit(scores: np.ndarray, key: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """Argmax over the last axis of uint8/int8 scores, much faster than ``np.argmax``.

    Each channel becomes a uint16 key ``value << 8 | (255 - class)`` and the keys are
    maxed channel by channel: the high byte picks the largest score, the low byte
    breaks ties towards the first class, as ``np.argmax`` does. Quantized scores are
    argmaxed raw: dequantizing is monotonic.

    Args:
        scores: h×w×C uint8 or int8, C ≤ 256.
        key: h×w uint16 work buffer; on return, ``key >> 8`` is the winning raw score
            (offset by 128 for int8).
        tmp: h×w uint16 work buffer.

    Returns:
        h×w uint8 class ids.
    """
    flip = 0x8000 if scores.dtype == np.int8 else 0  # int8 -> uint8 order: add 128
    u8 = scores.view(np.uint8)
    for c in range(scores.shape[-1]):
        dst = key if c == 0 else tmp
        np.left_shift(u8[..., c], 8, out=dst, dtype=np.uint16)
        dst |= 255 - c
        if flip:
            dst ^= flip
        if c:
            np.maximum(key, tmp, out=key)
    return (255 - (key & 255)).astype(np.uint8)
