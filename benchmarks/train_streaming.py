"""Training from a dataset streamed from disk: memory across an epoch, input pairs/s beside model steps/s.

    edgeseg data synth -o /tmp/d5000 --count 5000 --height 256 --width 256
    python benchmarks/train_streaming.py /tmp/d5000 [--batch-size 8] [--train-steps N] [--json out.json]

Builds the input pipeline ``edgeseg train`` uses when the decoded set is larger than
``CACHE_BYTES`` (``make_dataset(..., cache=False)``: file names shuffled, each pair read,
augmented and normalized when needed) and measures, in one process:

1. the input pipeline alone: one pass over every pair, pairs/s (no model);
2. the model's steps on that input (``model.fit``, the realtime preset ``train``
   builds, 256×256 (H×W)), with the process's resident memory (VmRSS) sampled every
   25 steps across the epoch.

If the input pairs/s is below ``steps/s × batch``, the input limits training;
otherwise the model does. The RSS of a cached pipeline is not measured; the
decoded size it would hold is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def rss_mib() -> float:
    """This process's resident memory (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="dataset folder (images/ + annotations/)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--train-steps", type=int, default=0, help="steps to train (0: one full epoch)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from edgeseg.config import ModelConfig
    from edgeseg.data.dataset import list_pairs
    from edgeseg.data.pipeline import CACHE_BYTES, Augment, decoded_bytes, make_dataset
    from edgeseg.deps import keras, tensorflow
    from edgeseg.train.fit import TrainConfig, _fresh_model

    tensorflow()
    k = keras()
    pairs = list_pairs(args.data)
    from edgeseg.data.readers import read_image

    h, w = read_image(pairs[0][0]).shape[:2]
    cfg = ModelConfig(n_classes=4, height=h, width=w, alpha=0.5, encoder_level=2, decoder="fast")
    batch = args.batch_size
    print(f"{len(pairs)} pairs of {h}×{w} (H×W); decoded they would take "
          f"{decoded_bytes(len(pairs), cfg) / 2**30:.2f} GiB (cache limit {CACHE_BYTES / 2**30:.0f} GiB)")
    rss0 = rss_mib()

    ds = make_dataset(pairs, cfg, batch, True, Augment(), seed=0, cache=False)
    t, n = time.perf_counter(), 0
    for x, _, _ in ds:
        n += int(x.shape[0])
    data_s = time.perf_counter() - t
    print(f"input pipeline alone: {n} pairs in {data_s:.1f} s = {n / data_s:.0f} pairs/s; "
          f"RSS {rss0:.0f} -> {rss_mib():.0f} MiB")

    steps = args.train_steps or len(pairs) // batch
    model = _fresh_model(cfg, TrainConfig(data="", output="x.keras", backbone_weights="none",
                                          precision="float32"), lambda s: None)
    samples: list[tuple[int, float, float]] = []

    class Sample(k.callbacks.Callback):
        def on_train_batch_end(self, step: int, logs: object = None) -> None:
            if step % 25 == 0 or step == steps - 1:
                samples.append((step + 1, time.perf_counter(), rss_mib()))
                if step % 100 == 0:
                    print(f"  step {step + 1}: RSS {samples[-1][2]:.0f} MiB, "
                          f"{samples[-1][1] - t:.0f} s", flush=True)

    t = time.perf_counter()
    model.fit(make_dataset(pairs, cfg, batch, True, Augment(), seed=0, cache=False), epochs=1,
              steps_per_epoch=steps, callbacks=[Sample()], shuffle=False, verbose=0)
    # Steps/s after the first sample (tracing and the first batches left out).
    (s0, t0, _), (s1, t1, _) = samples[0], samples[-1]
    steps_s = (s1 - s0) / (t1 - t0)
    rss = [r for _, _, r in samples]
    print(f"training: {steps} steps of {batch}; {steps_s:.2f} steps/s = {steps_s * batch:.0f} pairs/s "
          f"after step {s0}; total {time.perf_counter() - t:.0f} s")
    print("RSS across the epoch (MiB): " + ", ".join(f"step {s}: {r:.0f}" for s, _, r in samples[:: max(
        1, len(samples) // 8)]) + f", last: {rss[-1]:.0f}")
    later = rss[len(rss) // 4:]
    print(f"RSS after the first quarter of the epoch: min {min(later):.0f}, max {max(later):.0f} MiB "
          f"(spread {max(later) - min(later):.0f} MiB); "
          + ("the input limits training" if n / data_s < steps_s * batch else "the model limits training"))
    if args.json:
        args.json.write_text(json.dumps({
            "pairs": len(pairs), "size_hw": [h, w], "batch": batch,
            "decoded_gib_if_cached": decoded_bytes(len(pairs), cfg) / 2**30,
            "input_pairs_per_s": n / data_s, "train_steps": steps, "train_steps_per_s": steps_s,
            "rss_mib": [[s, r] for s, _, r in samples]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
