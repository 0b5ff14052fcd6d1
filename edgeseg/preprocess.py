"""The one preprocessing definition: RGB pixels -> model input, used everywhere."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# x / 128 - 1: the uint8 input tensor of an int8 model is then exactly the pixel
# (scale 1/128, zero point 128), so apps feed raw RGB and need no edgeseg code.
DEFAULT_MEAN = (128.0, 128.0, 128.0)
DEFAULT_STD = (128.0, 128.0, 128.0)

# How frames are resized to the model input. ``bilinear`` is exactly OpenCV's
# INTER_LINEAR (keras_segmentation's and MediaPipe's resize); ``auto`` is edgeseg's
# own rule: INTER_AREA when shrinking 2x or more in both directions (no aliasing
# from camera-sized frames), else INTER_LINEAR.
INTERPOLATIONS = ("auto", "bilinear", "nearest", "area")
DEFAULT_INTERPOLATION = "auto"


@dataclass(frozen=True)
class Preprocessing:
    """How a frame becomes a model input. Travels with every model as JSON.

    Attributes:
        height: Model input height in pixels.
        width: Model input width in pixels.
        mean: Per-channel mean subtracted from RGB pixel values (RGB order).
        std: Per-channel divisor applied after the mean (RGB order).
        color: Channel order the model expects: ``"RGB"`` or ``"BGR"`` (channels
            are reversed after normalizing; mean/std stay in RGB order).
        interpolation: One of :data:`INTERPOLATIONS` (``bilinear`` = cv2.INTER_LINEAR).
    """

    height: int
    width: int
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD
    color: str = "RGB"
    interpolation: str = DEFAULT_INTERPOLATION

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of "
                             f"{', '.join(INTERPOLATIONS)}")
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"colour order {self.color!r} is not RGB or BGR")
        if any(float(s) == 0 for s in self.std):
            raise ValueError(f"std {list(self.std)} has a zero")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        keys = {"height", "width", "mean", "std", "color", "interpolation"}
        d = {k: v for k, v in d.items() if k in keys}
        for k in ("mean", "std"):
            if k in d:
                v = d[k]
                d[k] = tuple(float(x) for x in (v if isinstance(v, (list, tuple)) else [v] * 3))
        if "color" in d:
            d["color"] = str(d["color"]).upper()
        return cls(**d)


def normalize(pixels: Any, mean: Any = DEFAULT_MEAN, std: Any = DEFAULT_STD) -> Any:
    """Map RGB pixel values (0..255) to the model's input range: ``(p - mean) / std``.

    numpy arrays are computed in float64 and returned as float32, so the result
    equals :func:`pixel_table`'s entries bit for bit; TensorFlow tensors (the
    training pipeline) in float32.
    """
    if isinstance(pixels, np.ndarray):
        x = (pixels.astype(np.float64) - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
        return x.astype(np.float32)
    import tensorflow as tf  # only reached from the training pipeline

    pixels = tf.cast(pixels, tf.float32)
    return (pixels - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def cv2_interpolation(name: str, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> int:
    """The OpenCV flag for resizing ``src_hw`` to ``dst_hw`` with interpolation ``name``."""
    import cv2

    if name == "auto":
        shrink = src_hw[0] >= 2 * dst_hw[0] and src_hw[1] >= 2 * dst_hw[1]
        return cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    flags = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA}
    if name not in flags:
        raise ValueError(f"interpolation {name!r} is not one of {', '.join(INTERPOLATIONS)}")
    return flags[name]


def resize_rgb(rgb: np.ndarray, height: int, width: int,
               interpolation: str = DEFAULT_INTERPOLATION,
               dst: np.ndarray | None = None) -> np.ndarray:
    """Resize an H×W×3 uint8 image to ``height``×``width`` (OpenCV, imported here only).

    Args:
        rgb: The image.
        height: Target height.
        width: Target width.
        interpolation: One of :data:`INTERPOLATIONS`.
        dst: Optional height×width×3 uint8 buffer to write into (the runtime's, to
            avoid an allocation per frame).

    Returns:
        The resized image (``rgb`` itself when it already has the size).
    """
    if rgb.shape[:2] == (height, width):
        return rgb
    import cv2

    flag = cv2_interpolation(interpolation, rgb.shape[:2], (height, width))
    return cv2.resize(rgb, (width, height), dst=dst, interpolation=flag)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a class-id mask with nearest neighbour sampled at pixel centres.

    The one label resampling: training targets, evaluation and comparison labels
    (at the model's output size) all come from here. Centre sampling
    (``INTER_NEAREST_EXACT``, as TensorFlow's and PIL's nearest) keeps a 2x
    smaller mask aligned with the model's output; OpenCV's plain ``INTER_NEAREST``
    samples the top-left pixel instead and shifts labels by half an output pixel.
    """
    import cv2

    if mask.shape[:2] == (height, width):
        return mask
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def pixel_table(spec: Preprocessing, dtype: Any = np.float32, scale: float = 0.0,
                zero_point: int = 0) -> np.ndarray:
    """A 256×3 table from pixel value to input-tensor value, per RGB channel.

    Normalization and, for integer inputs, quantization in one lookup:
    ``q = clip(round(((p - mean) / std) / scale + zero_point))``. The runtime feeds
    frames through it; for float32 it equals :func:`normalize` exactly.

    Raises:
        ValueError: An integer dtype without a quantization scale.
    """
    x = normalize(np.arange(256, dtype=np.uint8)[:, None], spec.mean, spec.std)
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return x
    if not scale:
        raise ValueError("an integer input needs its quantization scale")
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float64) / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def preprocess(rgb: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """Resize an RGB uint8 image to the model size and normalize it (float32, H×W×3).

    Channels are reversed at the end for a ``BGR`` model.
    """
    x = normalize(resize_rgb(rgb, spec.height, spec.width, spec.interpolation), spec.mean, spec.std)
    return x[..., ::-1] if spec.color == "BGR" else x


def model_input(rgb: np.ndarray, spec: Preprocessing, dtype: Any = np.float32,
                scale: float = 0.0, zero_point: int = 0) -> np.ndarray:
    """The input tensor (H×W×3, ``dtype``) for an RGB image: what the runtime feeds.

    For float32 it equals :func:`preprocess`; for uint8/int8 it is the quantized
    value of the same normalized pixel, through :func:`pixel_table`.
    """
    small = resize_rgb(rgb, spec.height, spec.width, spec.interpolation)
    x = pixel_table(spec, dtype, scale, zero_point)[small, np.arange(3)]
    return x[..., ::-1] if spec.color == "BGR" else x
