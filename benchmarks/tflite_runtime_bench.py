"""Time invoke() of one .tflite with whichever interpreter package this Python has.

    python benchmarks/tflite_runtime_bench.py MODEL.tflite [--threads 2] [--runs 30]
        [--min-seconds 3] [--warmup 5] [--runtime auto|ai-edge-litert|tflite-runtime]

Standalone on purpose: it imports numpy and the interpreter only (no edgeseg, no
TensorFlow), so the same file times the same model under ai-edge-litert in the main
environment and under tflite-runtime 2.14 in its own venv (that wheel needs numpy<2).
Prints one JSON object: runtime, versions, init time and invoke latency statistics.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time

import numpy as np

BACKENDS = {
    "ai-edge-litert": ("ai_edge_litert.interpreter", "ai_edge_litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite_runtime"),
}


def load_backend(name: str):  # noqa: ANN201 - (name, version, module)
    """The interpreter module for ``name`` ('auto': the first that imports)."""
    names = list(BACKENDS) if name == "auto" else [name]
    for n in names:
        module_name, package = BACKENDS[n]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        version = getattr(importlib.import_module(package), "__version__", "unknown")
        return n, str(version), module
    raise SystemExit(f"error: no interpreter package for {name!r}; pip install ai-edge-litert "
                     "or tflite-runtime")


def random_input(details: dict) -> np.ndarray:
    """Seeded random data of the input's shape and type (latency does not depend on it)."""
    rng = np.random.default_rng(66)
    dtype = np.dtype(details["dtype"])
    shape = tuple(int(x) for x in details["shape"])
    if dtype == np.float32:
        return rng.uniform(-1, 1, shape).astype(np.float32)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape, dtype=dtype)


def bench(path: str, threads: int, runs: int, min_seconds: float, warmup: int,
          runtime: str = "auto") -> dict:
    """Warm-up, then at least ``runs`` timed invokes and at least ``min_seconds`` of them."""
    name, version, module = load_backend(runtime)
    t0 = time.perf_counter()
    interp = module.Interpreter(model_path=path, num_threads=threads)
    interp.allocate_tensors()
    init_ms = (time.perf_counter() - t0) * 1000
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], random_input(inp))
    for _ in range(warmup):
        interp.invoke()
    times = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - t) * 1000)
    ms = np.asarray(times)
    return {"runtime": name, "runtime_version": version, "numpy": np.__version__,
            "threads": threads, "init_ms": round(init_ms, 2), "runs": len(times),
            "p50_ms": round(float(np.median(ms)), 3), "mean_ms": round(float(ms.mean()), 3),
            "min_ms": round(float(ms.min()), 3), "p90_ms": round(float(np.percentile(ms, 90)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runtime", default="auto", choices=["auto", *BACKENDS])
    a = ap.parse_args()
    print(json.dumps(bench(a.model, a.threads, a.runs, a.min_seconds, a.warmup, a.runtime)))


if __name__ == "__main__":
    main()
