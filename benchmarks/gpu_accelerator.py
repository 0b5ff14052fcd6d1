"""LiteRT's GPU accelerator vs XNNPACK on the same .tflite files: whole or not, latency, agreement.

Each model is opened twice through ``edgeseg.runtime.Segmenter``: on the CPU (XNNPACK) and
with ``delegate="gpu"``. The masks of both on the photos are compared pixel by pixel; then
``invoke()`` is timed interleaved (each round runs every model on both, in a fresh random
order, so the load of a shared machine falls on all alike). A GPU invoke ends when the
outputs are read back (the accelerator runs asynchronously), so its time is complete.

    VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json \\
    python benchmarks/gpu_accelerator.py a.tflite b.tflite --photos DIR --threads 2
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--photos", type=Path, required=True, help="images to compare masks on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=3)
    args = ap.parse_args()

    import cv2
    import numpy as np

    from edgeseg.runtime import Segmenter

    frames = [cv2.imread(str(p)) for p in sorted(args.photos.iterdir())]
    frames = [f for f in frames if f is not None]
    segs = {}
    for m in args.models:
        segs[(m, "cpu")] = Segmenter(m, threads=args.threads)
        segs[(m, "gpu")] = Segmenter(m, threads=args.threads, delegate="gpu")
        line = segs[(m, "gpu")].describe()["accelerator"]
        same = [float((segs[(m, "cpu")].predict(f)[0] == segs[(m, "gpu")].predict(f)[0]).mean())
                for f in frames]
        print(f"{m.name}: {line}; GPU/CPU pixel agreement on {len(frames)} photos: "
              f"mean {100 * statistics.mean(same):.3f} %, min {100 * min(same):.3f} %")
    times: dict[tuple[Path, str], list[float]] = {k: [] for k in segs}
    keys = list(segs)
    for _ in range(args.rounds):
        random.shuffle(keys)
        for k in keys:
            it = segs[k].interpreter
            for _ in range(args.per_round):
                t = time.perf_counter()
                it.invoke()
                times[k].append((time.perf_counter() - t) * 1e3)
    print(f"\ninvoke ms, median (quartiles) of {args.rounds}x{args.per_round} interleaved runs, "
          f"{args.threads} CPU threads:")
    for m in args.models:
        cells = []
        for where in ("cpu", "gpu"):
            q = np.percentile(times[(m, where)], [25, 50, 75])
            cells.append(f"{where} {q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f})")
        print(f"{m.name}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
