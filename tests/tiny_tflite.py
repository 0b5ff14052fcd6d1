"""Tiny .tflite graphs for the metadata, inspect and export tests, built with TensorFlow.

Each is a 32×32 RGB segmenter with a known op list; ``build_models`` converts them
once per session (about a second each) and caches the files.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

LABELS = ["background", "road", "car"]
SIZE = 32
_CACHE: dict[str, Path] = {}


def sidecar(mode: str = "int8", head: str = "softmax", labels: list[str] | None = None) -> dict:
    """A sidecar like ``edgeseg convert`` writes, for a 3-class 32×32 model."""
    from edgeseg.config import ModelConfig

    cfg = ModelConfig(n_classes=3, height=SIZE, width=SIZE, labels=tuple(labels or LABELS))
    io_type = "uint8" if mode == "int8" else "float32"
    return {"edgeseg": cfg.to_dict(),
            "tflite": {"mode": mode, "head": head, "target": "cpu", "io": io_type}}


def _keras(upsample: str, head: str):
    import keras
    from keras import layers

    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inp)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = layers.Conv2D(8, 1, activation="relu6")(x)
    x = layers.Conv2D(3, 1)(x)
    if upsample == "tile":  # Keras 3 lowers UpSampling2D to RESHAPE + TILE (5-D tensors)
        x = layers.UpSampling2D(2)(x)
    elif upsample == "keras_resize":  # RESIZE_NEAREST_NEIGHBOR v3, half_pixel_centers=True
        x = layers.Resizing(SIZE, SIZE, interpolation="nearest")(x)
    else:  # the project's: v2 (int8), half_pixel_centers=False
        from edgeseg.model.decoder import _upsample

        x = _upsample(x, "up", upsample)
    if head == "softmax":
        x = layers.Softmax()(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(66)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


def _convert(model, mode: str) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "int8":
        def representative():
            rng = np.random.default_rng(66)
            for _ in range(8):
                p = rng.integers(0, 256, (1, SIZE, SIZE, 3)).astype(np.float32)
                p[0, 0, 0], p[0, 0, 1] = 0, 255
                yield [(p - 128.0) / 128.0]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.uint8
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected"
        warnings.simplefilter("ignore", UserWarning)
        return conv.convert()


# name -> (upsampling, head, mode)
SPECS = {
    "int8_resize_logits": ("resize", "logits", "int8"),  # Edge TPU-ready
    "int8_resize_softmax": ("resize", "softmax", "int8"),
    "int8_tile_logits": ("tile", "logits", "int8"),
    "int8_keras_resize_logits": ("keras_resize", "logits", "int8"),  # what the compiler refuses
    "int8_concat_reshape_softmax": ("concat_reshape", "softmax", "int8"),  # the CPU target's
    "float_resize_softmax": ("resize", "softmax", "float32"),
}


def build_models(outdir: Path) -> dict[str, Path]:
    """Convert every graph in SPECS into ``outdir`` (once per process)."""
    if _CACHE:
        return dict(_CACHE)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    outdir.mkdir(parents=True, exist_ok=True)
    for name, (upsample, head, mode) in SPECS.items():
        path = outdir / f"{name}.tflite"
        path.write_bytes(_convert(_keras(upsample, head), mode))
        _CACHE[name] = path
    return dict(_CACHE)


def run(model: bytes, x: np.ndarray) -> np.ndarray:
    """One invoke of ``model`` on ``x`` with the ai-edge-litert interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def sample_input(model: bytes) -> np.ndarray:
    """A seeded input of the model's input type and shape."""
    from ai_edge_litert.interpreter import Interpreter

    d = Interpreter(model_content=model).get_input_details()[0]
    rng = np.random.default_rng(7)
    if d["dtype"] == np.uint8:
        return rng.integers(0, 256, d["shape"]).astype(np.uint8)
    return rng.uniform(-1, 1, d["shape"]).astype(np.float32)
