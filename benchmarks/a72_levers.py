"""Emulated Cortex-A72 instructions per invoke of each realtime-model lever at 320², one thread.

    python benchmarks/a72_levers.py --work /work/scratch/piest/arm64 [--size 320] [--out DIR]
                                    [--only "NAME;NAME"] [--pipeline] [--json out.json]

Every variant has random weights (instruction counts do not depend on them), is converted to
int8 with uint8 I/O on 8 images of the shipped calibration set (``realtime_levers.convert_int8``)
and counted under qemu-user ``-cpu cortex-a72`` by ``a72_count.run_guest`` (the TCG plugin,
deterministic to 0.01 %). Variants a ``ModelConfig`` can say are built by ``build_model``;
the others (blocks dropped, output at 1/4, no decoder pointwise conv) by ``_graph``, the same
layers without the fixed names. ``--pipeline`` also counts the whole camera loop (640×480 BGR
frame: ``Segmenter.segment`` + ``Overlay.draw``) of realtime and realtime_1core (argmax heads),
or of every lever named by ``--only`` (these
files carry no labels, so the overlay draws no legend: ~1 M fewer than an ``edgeseg convert`` file).
benchmarks/RESULTS.md §6d holds the table with the mIoU each lever cost.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

CLASSES = 4


def _cfg_model(size: int, deploy: str = "argmax", **over: Any) -> Any:
    """A ModelConfig variant of the realtime preset (``over`` its fields; ``deploy`` the
    deployment head; the trained head is ``spatial`` unless ``over`` says ``upsampled``)."""
    from edgeseg.config import ModelConfig, preset
    from edgeseg.model.build import build_model

    fields = {**preset("realtime"), "stem": "mobilenet", "decoder": "fast", "decoder_width": 0.5,
              "head": "spatial", **over}
    cfg = ModelConfig(n_classes=CLASSES, height=size, width=size, **fields)
    return build_model(cfg, batch_size=1, head=deploy)


def _graph(size: int, stem: int = 16, strides: tuple[int, ...] = (1, 2, 1, 2, 1),
           keep: tuple[int, ...] = (1, 2, 3, 4, 5), dec_pw: int = 64, out_div: int = 2,
           widths: tuple[int, ...] = (32, 64, 64, 128, 128)) -> Any:
    """MobileNet blocks 1..5 at alpha 0.5 (``keep`` of them), a depthwise-separable decoder
    conv (``dec_pw`` filters, 0: none), logits, bilinear resize to 1/``out_div``, argmax."""
    import keras
    from keras import layers

    from edgeseg.model.build import _argmax_layer

    def bn_relu(x: Any) -> Any:
        return layers.ReLU(6.0)(layers.BatchNormalization()(x))

    inp = keras.Input((size, size, 3), batch_size=1)
    x = bn_relu(layers.Conv2D(stem, 3, strides=2, padding="same", use_bias=False)(inp))
    for i, (w, s) in enumerate(zip(widths, strides), start=1):
        if i in keep:
            x = bn_relu(layers.DepthwiseConv2D(3, strides=s, padding="same", use_bias=False)(x))
            x = bn_relu(layers.Conv2D(w, 1, use_bias=False)(x))
    x = bn_relu(layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x))
    if dec_pw:
        x = bn_relu(layers.Conv2D(dec_pw, 1, use_bias=False)(x))
    x = layers.Conv2D(CLASSES, 1)(x)
    if x.shape[1] != size // out_div:
        x = layers.Resizing(size // out_div, size // out_div, interpolation="bilinear")(x)
    return keras.Model(inp, _argmax_layer()(x))


def variants(size: int) -> dict[str, Callable[[], Any]]:
    """Lever name -> builder, in the order RESULTS.md §6d lists them."""
    lean, up = {"stem": "lean"}, {"head": "upsampled"}
    return {
        "realtime, softmax head (convert's default)": lambda: _cfg_model(size, deploy="softmax"),
        "realtime, logits head": lambda: _cfg_model(size, deploy="logits"),
        "realtime, argmax head": lambda: _cfg_model(size),
        "realtime + lean stem": lambda: _cfg_model(size, **lean),
        "lean stem, dense 3×3 32": lambda: _cfg_model(size, decoder_width=0.25, **lean),
        "lean stem, dense 3×3 16 (realtime_1core before 2026-12-06)": lambda: _cfg_model(
            size, decoder_width=0.125, **lean),
        "realtime, decoder fast_dw 64": lambda: _cfg_model(size, decoder="fast_dw"),
        "fast_dw 64, lean stem": lambda: _cfg_model(size, decoder="fast_dw", **lean),
        "fast_dw 128, lean stem": lambda: _cfg_model(size, decoder="fast_dw", decoder_width=1.0,
                                                     **lean),
        "fast_dw 64, conv1 half width only": lambda: _graph(size, stem=8),
        "fast_dw 64, block 1 stride 2 only": lambda: _graph(size, strides=(2, 1, 1, 2, 1)),
        "fast_dw 64, conv1 8 + conv_pw_1 16": lambda: _graph(
            size, stem=8, widths=(16, 64, 64, 128, 128)),
        "fast_dw 64, without blocks 3 and 5": lambda: _graph(size, keep=(1, 2, 4)),
        "fast_dw 64, without block 3": lambda: _graph(size, keep=(1, 2, 4, 5)),
        "fast_dw 64, without block 5": lambda: _graph(size, keep=(1, 2, 3, 4)),
        "fast_dw, no pointwise conv": lambda: _graph(size, dec_pw=0),
        "fast_dw 32": lambda: _graph(size, dec_pw=32),
        "fast_dw 64, output at 1/4": lambda: _graph(size, out_div=4),
        # The upsampled head (softmax at the 1/8 tap, probabilities resized), softmax output:
        "realtime, upsampled head": lambda: _cfg_model(size, "softmax", **up),
        "realtime + lean stem, upsampled head": lambda: _cfg_model(size, "softmax", **up, **lean),
        "lean stem, dense 3×3 32, upsampled head": lambda: _cfg_model(
            size, "softmax", decoder_width=0.25, **up, **lean),
        "lean stem, dense 3×3 16, upsampled head": lambda: _cfg_model(
            size, "softmax", decoder_width=0.125, **up, **lean),
        "lean stem, fast_dw 64, upsampled head": lambda: _cfg_model(
            size, "softmax", decoder="fast_dw", **up, **lean),
        "lean stem, fast_dw 128, upsampled head": lambda: _cfg_model(
            size, "softmax", decoder="fast_dw", decoder_width=1.0, **up, **lean),
        "fast_dw 128, upsampled head": lambda: _cfg_model(
            size, "softmax", decoder="fast_dw", decoder_width=1.0, **up),
        "realtime, upsampled head, argmax": lambda: _cfg_model(size, "argmax", **up),
    }


def main(argv: Optional[list[str]] = None) -> None:
    import keras
    from a72_count import run_guest
    from realtime_levers import convert_int8

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="a72_count.py's emulator folder")
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--out", type=Path, default=Path("/tmp/edgeseg-a72-levers"))
    p.add_argument("--only", help="lever names separated by ; (they contain commas) (default: all)")
    p.add_argument("--pipeline", action="store_true",
                   help="also count the camera loop of realtime and realtime_1core")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    wanted = set(a.only.split(";")) if a.only else None
    rows: list[dict[str, Any]] = []
    for i, (name, make) in enumerate(variants(a.size).items()):
        if wanted and name not in wanted:
            continue
        path = a.out / f"lever{i:02d}_{a.size}.tflite"
        if not path.exists():
            keras.backend.clear_session()
            convert_int8(make(), path, a.size)
        got = run_guest(a.work.resolve(), "a72", "invoke", path.resolve(), 1)
        n = dict(got["stages"])["invoke"]
        rows.append({"lever": name, "path": str(path), "invoke": n})
        print(f"| {name} | {n / 1e6:.2f} M |", flush=True)
    if a.pipeline:
        loops = [r["lever"] for r in rows] if wanted else [
            "realtime, argmax head", "lean stem, dense 3×3 16 (realtime_1core before 2026-12-06)",
            "realtime + lean stem, upsampled head", "lean stem, fast_dw 64, upsampled head"]
        for name in loops:
            row = next((r for r in rows if r["lever"] == name), None)
            if row is None:
                continue
            got = run_guest(a.work.resolve(), "a72", "pipeline", Path(row["path"]).resolve(), 1)
            row["pipeline"] = dict(got["stages"])
            print(f"{name}: " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in got["stages"]))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
