"""int8 latency of the realtime preset vs the seed, and of each lever tried on the way, side by side.

    python benchmarks/realtime_levers.py [--sizes 224,320,416] [--rounds 3] [--threads 2]
                                         [--work DIR] [--json out.json] [--only presets]
                                         [--classes 2]

Every model has random weights (latency does not depend on them) and ``--classes`` classes
(default 2, ``edgeseg build``'s). The presets and their options are the files ``edgeseg build``
+ ``edgeseg convert --int8`` write (uint8 I/O, calibrated on 8 images of the shipped set); the
levers outside ModelConfig go through the TFLite converter the same way. Each is timed with ``edgeseg.runtime.bench``
(XNNPACK, ``--threads``) in interleaved rounds: round r times every model once, so a
load spike hits all of them. The figure per model is the minimum over rounds of the
median invoke time; ratios are against the seed preset at the same size.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 2  # set by --classes


def _lever(size: int, alpha: float, level: int, stages: list[tuple[str, int]],
           up: str = "bilinear", head: str = "softmax", out_stride: int = 2) -> Any:
    """A decoder variant outside ModelConfig: ``stages`` at the tap ('U' = ×2 nearest)."""
    import keras
    from keras import layers

    from edgeseg.model.build import _argmax_layer
    from edgeseg.model.encoder import mobilenet_encoder

    inp = keras.Input((size, size, 3), batch_size=1, name="image")
    x = mobilenet_encoder(inp, alpha, level)
    for kind, f in stages:
        if kind == "U":
            x = layers.UpSampling2D(2)(x)
            continue
        if kind == "dw":
            x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
            x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
            x = layers.Conv2D(f, 1, use_bias=False)(x)
        else:
            x = layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
        x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    x = layers.Conv2D(CLASSES, 1)(x)
    if x.shape[1] != size // out_stride:
        x = layers.Resizing(size // out_stride, size // out_stride, interpolation=up)(x)
    x = _argmax_layer()(x) if head == "argmax" else layers.Softmax()(x)
    return keras.Model(inp, x)


def _preset(name: str, size: int, deploy: str = "softmax", **over: Any) -> Any:
    """Preset ``name`` with ``over`` its ModelConfig fields, and the deployment head ``deploy``:
    (config, head), which :func:`main` saves and hands to ``edgeseg convert``."""
    from edgeseg.config import ModelConfig, preset

    return ModelConfig(n_classes=CLASSES, height=size, width=size, **{**preset(name), **over}), deploy


def variants(size: int, levers: bool) -> dict[str, Callable[[], Any]]:
    """name -> builder. The two presets always; the levers at ``size`` when asked."""
    fast = {"stem": "lean", "head": "upsampled"}  # the realtime preset's fast option (§6e)
    v: dict[str, Callable[[], Any]] = {
        "seed preset (alpha 1.0, 1/16, seed decoder)": lambda: _preset("seed", size),
        "realtime preset (alpha 0.5, 1/8, fast decoder, softmax at 1/2)":
            lambda: _preset("realtime", size),
        "realtime_1core preset (lean stem, separable decoder, softmax at the tap)":
            lambda: _preset("realtime_1core", size),
        "realtime --stem lean --head upsampled (softmax at the tap)":
            lambda: _preset("realtime", size, **fast),
        "realtime --stem lean (softmax at 1/2, one XNNPACK partition)":
            lambda: _preset("realtime", size, stem="lean"),
        "realtime preset, argmax head": lambda: _preset("realtime", size, deploy="argmax"),
        "realtime_1core preset, argmax head": lambda: _preset("realtime_1core", size, deploy="argmax"),
    }
    if not levers:
        return v
    v.update({
        "lite decoder, alpha 0.5, 1/8 (the old from-scratch recipe)":
            lambda: _preset("realtime", size, decoder="lite"),
        "seed decoder, alpha 0.5, 1/8": lambda: _preset("realtime", size, decoder="seed"),
        "fast: depthwise-separable 64 instead of dense 3×3":
            lambda: _lever(size, 0.5, 2, [("dw", 64)]),
        "fast: dense 3×3 128 filters": lambda: _lever(size, 0.5, 2, [("dense", 128)]),
        "fast: two dense 3×3 64": lambda: _lever(size, 0.5, 2, [("dense", 64), ("dense", 64)]),
        "fast + a stage at 1/4 (×2, dw-sep 32)":
            lambda: _lever(size, 0.5, 2, [("dense", 64), ("U", 0), ("dw", 32)]),
        "fast: nearest instead of bilinear logits resize":
            lambda: _lever(size, 0.5, 2, [("dense", 64)], up="nearest"),
        "fast: output at 1/4 instead of 1/2": lambda: _lever(size, 0.5, 2, [("dense", 64)],
                                                             out_stride=4),
        "fast, alpha 1.0": lambda: _preset("realtime", size, alpha=1.0),
        "fast, alpha 0.25": lambda: _preset("realtime", size, alpha=0.25),
        "fast, tap at 1/16 (alpha 0.5)": lambda: _preset("realtime", size, encoder_level=3),
    })
    return v


def convert_int8(model: Any, out: Path, size: int) -> Path:
    import numpy as np
    import tensorflow as tf

    from edgeseg.convert.calibration import DEFAULT_DIR
    from edgeseg.data.readers import read_image
    from edgeseg.preprocess import Preprocessing, preprocess

    spec = Preprocessing(size, size)
    calib = [preprocess(read_image(f), spec)[None].astype(np.float32)
             for f in sorted(DEFAULT_DIR.glob("*.jpg"))[:8]]
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c] for c in calib)
    conv.inference_input_type = tf.uint8
    if model.output.dtype != "uint8":  # the argmax head already outputs uint8
        conv.inference_output_type = tf.uint8
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    out.write_bytes(conv.convert())
    return out


def main(argv: Optional[list[str]] = None) -> None:
    import keras

    from edgeseg.model.macs import count_traffic
    from edgeseg.runtime.bench import bench_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="224,320,416")
    p.add_argument("--lever-size", type=int, default=416)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--classes", type=int, default=2, help="classes of every model (build's default: 2)")
    p.add_argument("--work", type=Path, default=Path("/tmp/edgeseg-levers"))
    p.add_argument("--only", choices=("presets", "all"), default="all")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    models: list[dict[str, Any]] = []
    global CLASSES
    CLASSES = a.classes
    for size in (int(s) for s in a.sizes.split(",")):
        for name, make in variants(size, a.only == "all" and size == a.lever_size).items():
            keras.backend.clear_session()
            m = make()
            path = a.work / f"v{len(models):02d}_{size}_k{CLASSES}.tflite"
            if isinstance(m, tuple):  # a preset: edgeseg's own build + convert --int8
                from edgeseg.convert.quantize import ConvertConfig, convert
                from edgeseg.model.io import build_and_save

                cfg, head = m
                m, _ = build_and_save(cfg, path.with_suffix(".keras"))
                if not path.exists():
                    convert(path.with_suffix(".keras"), path,
                            ConvertConfig(mode="int8", head=head, calib_count=8), log=lambda _: None)
            elif not path.exists():
                convert_int8(m, path, size)
            models.append({"name": name, "size": size, "path": str(path), **count_traffic(m),
                           "p50": []})
            print(f"converted {size}² {name}", flush=True)
    for _ in range(a.rounds):
        for r in models:
            r["p50"].append(bench_model(r["path"], threads=a.threads, runs=30).p50_ms)
    for r in models:
        r["ms"] = min(r["p50"])
        seed = next(s for s in models if s["size"] == r["size"] and s["name"].startswith("seed"))
        r["seed_over_this"] = seed["ms"] / r["ms"]
        print(f"| {r['size']}² | {r['name']} | {r['macs'] / 1e9:.2f} | {r['bytes'] / 1e6:.1f} | "
              f"{r['ms']:.2f} | {' / '.join(f'{x:.2f}' for x in r['p50'])} | "
              f"{r['seed_over_this']:.2f}× |")
    if a.json:
        a.json.write_text(json.dumps(models, indent=1))


if __name__ == "__main__":
    main()
