"""Tiny .tflite models for the runtime tests, built with TensorFlow in a subprocess.

Every model maps a 64×64 RGB input to a 32×32 label map whose answer is known:
class 1/2/3 where red/green/blue dominates, class 0 where the pixel is dark
(``sigmoid`` variants: foreground where red beats green). The test process never
imports TensorFlow; the models are built once per session and cached.

Run directly to build them: ``python tests/tflite_fixtures.py OUTDIR``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

LABELS = ("background", "red", "green", "blue")
SIZE = 64
# name -> (head, mode, io, sidecar?)  see build()
MODELS = (
    "float_softmax", "float_logits", "float_flat", "float_sigmoid", "float_argmax",
    "int8_softmax", "int8_embedded", "int8_int8io", "int8_flat", "int8_sigmoid",
    "not_image", "bad_output", "two_outputs", "argmax_and_softmax",
)


def _sidecar(head: str, mode: str, io_type: str) -> dict:
    from edgeseg.config import ModelConfig

    labels = ("background", "red") if head == "sigmoid" else LABELS
    cfg = ModelConfig(n_classes=len(labels), height=SIZE, width=SIZE, labels=labels)
    return {"edgeseg": cfg.to_dict(), "tflite": {"mode": mode, "head": head, "io": io_type}}


def _argmax_layer(keras, tf):
    class ArgmaxLayer(keras.layers.Layer):
        # tf.argmax, not keras.ops.argmax: the latter adds a -0.0 fix-up (BitwiseAnd)
        # that only converts as a Flex op.
        def call(self, x):
            return tf.expand_dims(tf.cast(tf.argmax(x, axis=-1), tf.uint8), -1)

    return ArgmaxLayer


def _keras_model(head: str, keras):
    import numpy as np

    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = keras.layers.AveragePooling2D(2)(inp)
    if head == "sigmoid":
        x = keras.layers.Conv2D(1, 1, name="cls")(x)
        out = keras.layers.Activation("sigmoid")(x)
        w, b = np.array([4.0, -4.0, 0.0], np.float32).reshape(1, 1, 3, 1), np.zeros(1, np.float32)
    else:
        x = keras.layers.Conv2D(len(LABELS), 1, name="cls")(x)
        w = np.zeros((1, 1, 3, 4), np.float32)
        for c in range(3):
            w[0, 0, c, c + 1] = 4.0
        b = np.array([-2.0, 0.0, 0.0, 0.0], np.float32)
        if head == "argmax":
            out = _ArgmaxLayer()(x)
        elif head == "flat":
            out = keras.layers.Softmax()(keras.layers.Reshape((32 * 32, len(LABELS)))(x))
        elif head == "logits":
            out = x
        else:
            out = keras.layers.Softmax()(x)
    model = keras.Model(inp, out)
    model.get_layer("cls").set_weights([w, b])
    return model


def _convert(model, tf, mode: str, io_type: str) -> bytes:
    import numpy as np

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "int8":
        def representative():
            rng = np.random.default_rng(66)
            for _ in range(16):
                p = rng.integers(0, 256, (1, SIZE, SIZE, 3)).astype(np.float32)
                p[0, 0, 0], p[0, 0, 1] = 0, 255  # the full pixel range: scale 1/128, zp 128
                yield [(p - 128.0) / 128.0]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = getattr(tf, io_type)
    return conv.convert()


def _embed(data: bytes, meta: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("edgeseg.json", json.dumps(meta))
        zf.writestr("labels.txt", "\n".join(LABELS) + "\n")
    return data + buf.getvalue()


def build(outdir: Path) -> None:
    """Write every model in MODELS (and sidecars where the name says so) to ``outdir``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    import keras
    import tensorflow as tf

    global _ArgmaxLayer
    _ArgmaxLayer = _argmax_layer(keras, tf)
    outdir.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        if name == "not_image":
            inp = keras.Input((10,), batch_size=1)
            data = _convert(keras.Model(inp, keras.layers.Dense(2)(inp)), tf, "float32", "")
            (outdir / f"{name}.tflite").write_bytes(data)
            continue
        if name == "bad_output":
            inp = keras.Input((SIZE, SIZE, 3), batch_size=1)
            out = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(inp))
            (outdir / f"{name}.tflite").write_bytes(
                _convert(keras.Model(inp, out), tf, "float32", ""))
            continue
        if name == "two_outputs":  # a class score vector and the softmax map (as pose models)
            seg = _keras_model("softmax", keras)
            vec = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(seg.input))
            both = keras.Model(seg.input, [vec, seg.output])
            (outdir / f"{name}.tflite").write_bytes(_convert(both, tf, "float32", ""))
            (outdir / f"{name}.tflite.json").write_text(json.dumps(
                _sidecar("softmax", "float32", "float32")))
            continue
        if name == "argmax_and_softmax":  # offers the class map and the scores behind it
            seg = _keras_model("softmax", keras)
            both = keras.Model(seg.input, [_ArgmaxLayer()(seg.output), seg.output])
            (outdir / f"{name}.tflite").write_bytes(_convert(both, tf, "float32", ""))
            continue
        mode, head = name.split("_", 1)
        io_type = "int8" if head == "int8io" else "uint8" if mode == "int8" else "float32"
        head = {"int8io": "softmax", "embedded": "softmax"}.get(head, head)
        data = _convert(_keras_model(head, keras), tf, mode, io_type)
        meta = _sidecar(head, mode, io_type)
        if name == "int8_embedded":
            data = _embed(data, meta)
        elif head != "flat":  # flat models test the no-metadata defaults
            (outdir / f"{name}.tflite.json").write_text(json.dumps(meta, indent=2))
        (outdir / f"{name}.tflite").write_bytes(data)


def build_cached(tmp_path_factory) -> Path:
    """Build the models once per test session, in a subprocess (keeps TensorFlow out)."""
    import pytest

    outdir = tmp_path_factory.getbasetemp() / "tflite_models"
    done = outdir / "DONE"
    if not done.exists():
        try:
            import importlib.util

            if importlib.util.find_spec("tensorflow") is None:
                pytest.skip("building the .tflite fixtures needs TensorFlow (edgeseg[full])")
        except ValueError:
            pass
        proc = subprocess.run([sys.executable, __file__, str(outdir)], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode:
            raise RuntimeError(f"building .tflite fixtures failed:\n{proc.stderr[-3000:]}")
        done.write_text("ok")
    return outdir


def video(path: Path, frames: int, size: tuple[int, int] = (320, 240), fps: float = 10.0) -> Path:
    """A test video: left half red, right half blue, frame i with a green square at row i."""
    import cv2
    import numpy as np

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : w // 2] = (0, 0, 255)
        img[:, w // 2:] = (255, 0, 0)
        y = (8 * i) % (h - 16)
        img[y: y + 16, w // 2 - 8: w // 2 + 8] = (0, 255, 0)
        writer.write(img)
    writer.release()
    return path


if __name__ == "__main__":
    build(Path(sys.argv[1]))
