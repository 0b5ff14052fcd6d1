"""Interleaved int8 latency of model pairs (before/after), for a machine shared with other work.

`edgeseg bench` times one model after the other; on a loaded machine the load moves
between them. This alternates: each round invokes every model ``--per-round`` times in a
fresh random order, and the ratio is taken round by round (same load), then the median.

    python benchmarks/xnnpack_partitions.py before.tflite after.tflite [b2 a2 ...] \\
        --threads 2 --rounds 30 --per-round 5

``--cpu-time`` (needs ``--threads 1``: XNNPACK then runs in the calling thread) times
each invoke by the thread's CPU time instead of the wall clock: other processes
stretch the wall time of an invoke but not the CPU time it uses.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path, help="before/after pairs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--per-round", type=int, default=5)
    ap.add_argument("--cpu-time", action="store_true", help="thread CPU time (with --threads 1)")
    args = ap.parse_args()
    if args.cpu_time and args.threads != 1:
        ap.error("--cpu-time needs --threads 1")
    clock = time.thread_time if args.cpu_time else time.perf_counter
    if len(args.models) % 2:
        ap.error("give models in before/after pairs")

    import numpy as np

    from edgeseg.convert.targets import check_target
    from edgeseg.runtime.interpreter import make_interpreter
    from edgeseg.tflite.flatbuffer import read_tflite

    its = []  # by position: a model may appear in more than one pair
    for path in args.models:
        it = make_interpreter(path, args.threads)
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.random.default_rng(0).integers(0, 256, d["shape"])
                      .astype(d["dtype"]))
        for _ in range(3):
            it.invoke()
        runtime_parts = sum(o["op_name"] == "DELEGATE" for o in it._get_ops_details())
        predicted = check_target(read_tflite(path), "xnnpack").partitions
        its.append(it)
        print(f"{path.name}: XNNPACK partitions {runtime_parts} (inspect predicts {predicted})")
    times: list[list[list[float]]] = [[] for _ in args.models]
    rng = random.Random(0)
    for _ in range(args.rounds):
        order = list(range(len(args.models)))
        rng.shuffle(order)
        for i in order:
            ms = []
            for _ in range(args.per_round):
                t = clock()
                its[i].invoke()
                ms.append((clock() - t) * 1000)
            times[i].append(ms)
    for b in range(0, len(args.models), 2):
        before, after = args.models[b], args.models[b + 1]
        med = [statistics.median(x for r in times[i] for x in r) for i in (b, b + 1)]
        ratios = sorted(statistics.median(a) / statistics.median(x)
                        for x, a in zip(times[b], times[b + 1]))
        q = len(ratios) // 4
        print(f"{before.name} {med[0]:.2f} ms -> {after.name} {med[1]:.2f} ms; "
              f"after/before per round: median {statistics.median(ratios):.3f} "
              f"(quartiles {ratios[q]:.3f}-{ratios[-q - 1]:.3f}, {len(ratios)} rounds)")


if __name__ == "__main__":
    main()
