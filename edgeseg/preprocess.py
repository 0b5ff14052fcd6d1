"""The one preprocessing definition: RGB pixels -> normalized float, used everywhere."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# x / 128 - 1: the uint8 input tensor of an int8 model is then exactly the pixel
# (scale 1/128, zero point 128), so apps feed raw RGB and need no edgeseg code.
DEFAULT_MEAN = (128.0, 128.0, 128.0)
DEFAULT_STD = (128.0, 128.0, 128.0)


@dataclass(frozen=True)
class Preprocessing:
    """How a frame becomes a model input. Travels with every model as JSON.

    Attributes:
        height: Model input height in pixels.
        width: Model input width in pixels.
        mean: Per-channel mean subtracted from RGB pixel values.
        std: Per-channel divisor applied after the mean.
        color: Channel order the model expects (always ``"RGB"`` for edgeseg models).
    """

    height: int
    width: int
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD
    color: str = "RGB"
    interpolation: str = field(default="bilinear")

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
        return cls(**d)


def normalize(pixels: Any, mean: Any = DEFAULT_MEAN, std: Any = DEFAULT_STD) -> Any:
    """Map RGB pixel values (0..255) to the model's input range.

    Written with plain operators so the same definition serves numpy arrays
    (calibration, evaluation, runtime) and TensorFlow tensors (training).
    """
    if isinstance(pixels, np.ndarray):
        pixels = pixels.astype(np.float32)
        return (pixels - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    import tensorflow as tf  # only reached from the training pipeline

    pixels = tf.cast(pixels, tf.float32)
    return (pixels - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def resize_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an H×W×3 uint8 image with bilinear filtering (area when shrinking a lot)."""
    import cv2  # the imaging library is only needed where images are resized

    if rgb.shape[:2] == (height, width):
        return rgb
    shrink = rgb.shape[0] >= 2 * height and rgb.shape[1] >= 2 * width
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interp)


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


def preprocess(rgb: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """Resize an RGB uint8 image to the model size and normalize it (float32, H×W×3)."""
    return normalize(resize_rgb(rgb, spec.height, spec.width), spec.mean, spec.std)
