"""Training step time on this CPU: Keras' BatchNormalization vs the fused kernel, float32 vs bfloat16.

    python benchmarks/train_step.py [--steps 40] [--batch-size 8] [--json out.json]

Times ``model.fit`` steps of the models ``edgeseg train`` builds (128x128, 4 classes,
alpha 0.5) with a per-step callback, median over ``--steps`` after a warm-up, each
configuration in its own process so the dtype policy and thread pools start clean.
The time outside the steps is left out on purpose: ``fit`` on a repeated tf.data
source sometimes stalls 2-5 s at its end, which says nothing about training speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CONFIGS = [  # (label, decoder, encoder level, precision, fused BN)
    ("lite 1/8, float32, Keras BN", "lite", 2, "float32", False),
    ("lite 1/8, float32, fused BN", "lite", 2, "float32", True),
    ("lite 1/8, bfloat16, fused BN", "lite", 2, "mixed_bfloat16", True),
    ("seed 1/16, float32, fused BN", "seed", 3, "float32", True),
    ("seed 1/16, bfloat16, Keras BN", "seed", 3, "mixed_bfloat16", False),
    ("seed 1/16, bfloat16, fused BN", "seed", 3, "mixed_bfloat16", True),
]


def one(decoder: str, level: int, precision: str, fused: bool, steps: int, batch: int) -> float:
    import time

    import numpy as np

    from edgeseg.config import ModelConfig
    from edgeseg.deps import keras, tensorflow
    from edgeseg.model.build import build_model
    from edgeseg.model.fused_bn import with_fused_batch_norm

    tf, k = tensorflow(), keras()
    cfg = ModelConfig(n_classes=4, height=128, width=128, alpha=0.5, encoder_level=level, decoder=decoder,
                      decoder_width=0.5)  # edgeseg train's default
    k.config.set_dtype_policy(precision)
    model = build_model(cfg)
    if fused:
        model = with_fused_batch_norm(model)
    model.compile(optimizer=k.optimizers.Adam(1e-3), loss=k.losses.SparseCategoricalCrossentropy())
    oh, ow = cfg.output_size
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (batch, 128, 128, 3)).astype("float32")
    y = rng.integers(0, 4, (batch, oh * ow))
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(ds, steps_per_epoch=10, epochs=1, verbose=0)  # trace, warm up
    stamps: list[float] = []
    cb = k.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs=None: stamps.append(time.perf_counter()))
    model.fit(ds, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[cb])
    return float(np.median(np.diff(stamps))) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--one", nargs=4, help=argparse.SUPPRESS)  # decoder level precision fused
    a = ap.parse_args()
    if a.one:
        dec, level, prec, fused = a.one
        print(one(dec, int(level), prec, fused == "1", a.steps, a.batch_size))
        return
    rows = []
    for label, dec, level, prec, fused in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--steps", str(a.steps), "--batch-size",
                              str(a.batch_size), "--one", dec, str(level), prec, "1" if fused else "0"],
                             capture_output=True, text=True, check=True)
        ms = float(out.stdout.strip().splitlines()[-1])
        rows.append({"config": label, "ms_per_step": round(ms, 1),
                     "images_per_s": round(1000 * a.batch_size / ms, 1)})
        print(f"{label:32s} {ms:7.1f} ms/step  {1000 * a.batch_size / ms:6.1f} img/s", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"batch_size": a.batch_size, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
