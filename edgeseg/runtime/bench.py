"""Benchmarks in the style of TFLite's benchmark_model: invoke latency and the frame pipeline."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.runtime import adapters
from edgeseg.runtime.interpreter import (
    backend,
    default_threads,
    delegate_name,
    delegated_nodes,
    make_interpreter,
)


@dataclass(frozen=True)
class BenchResult:
    """One model's numbers. Latencies in milliseconds, memory in MiB."""

    model: str
    runtime: str
    runtime_version: str
    threads: int
    delegate: str
    delegated_nodes: int | None
    total_nodes: int | None
    input: str
    init_ms: float
    warmup: int
    runs: int
    min_ms: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    std_ms: float
    fps: float
    peak_rss_mb: float
    output: str = ""
    pipeline: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux), so each model gets its own figure."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (since the last reset, on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _random_input(interpreter: Any) -> None:
    details = adapters.input_details(interpreter)
    dtype = np.dtype(details["dtype"])
    rng = np.random.default_rng(66)
    shape = tuple(int(x) for x in details["shape"][1:])
    if dtype == np.float32:
        data = rng.uniform(-1, 1, shape).astype(np.float32)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max + 1, shape, dtype=dtype)
    adapters.set_input(interpreter, data)


def latency_stats(times_ms: Any) -> dict[str, float]:
    """min/mean/percentiles/std of invoke times (ms) and the FPS their mean allows.

    Percentiles interpolate linearly between ranks (numpy's default, as benchmark_model).
    """
    ms = np.asarray(times_ms, np.float64)
    if ms.size == 0:
        raise EdgesegError("no timed runs: --runs must be at least 1.")
    pct = {q: float(np.percentile(ms, q)) for q in (50, 90, 99)}
    return {"min_ms": round(float(ms.min()), 4), "mean_ms": round(float(ms.mean()), 4),
            "p50_ms": round(pct[50], 4), "p90_ms": round(pct[90], 4), "p99_ms": round(pct[99], 4),
            "std_ms": round(float(ms.std()), 4), "fps": round(1000 / float(ms.mean()), 2)}


def _output_text(interpreter: Any, model: str | os.PathLike) -> str:
    """``[1, 208, 208, 4] uint8 softmax``: the segmentation output and its head."""
    from edgeseg.runtime.metadata import read_metadata

    d = adapters.output_details(interpreter)
    head = read_metadata(model).head or "?"
    return f"{[int(x) for x in d['shape']]} {np.dtype(d['dtype']).name} {head}"


def bench_model(model: str | os.PathLike, threads: int | None = None,
                delegate: str | None = None, fallback: bool = False, runs: int = 50,
                warmup: int = 5, min_seconds: float = 0.0) -> BenchResult:
    """Time ``invoke()`` on random input: ``warmup`` untimed runs, then at least ``runs``
    timed runs and at least ``min_seconds`` of them.

    Raises:
        EdgesegError: Bad counts, or a model that can't be loaded.
    """
    if runs < 1 or warmup < 0 or min_seconds < 0:
        raise EdgesegError("--runs must be ≥ 1, --warmup and --min-seconds ≥ 0.")
    _reset_peak_rss()
    t0 = time.perf_counter()
    interpreter = make_interpreter(model, threads, delegate, fallback)
    init_ms = (time.perf_counter() - t0) * 1000
    _random_input(interpreter)
    for _ in range(warmup):
        interpreter.invoke()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - t) * 1000)
    nodes = delegated_nodes(interpreter)
    details = adapters.input_details(interpreter)
    be = backend()
    return BenchResult(
        model=str(model), runtime=be.name, runtime_version=be.version,
        threads=threads or default_threads(), delegate=delegate_name(interpreter),
        delegated_nodes=nodes[0] if nodes else None, total_nodes=nodes[1] if nodes else None,
        input=f"{list(int(x) for x in details['shape'])} {np.dtype(details['dtype']).name}",
        init_ms=round(init_ms, 2), warmup=warmup, runs=len(times), **latency_stats(times),
        peak_rss_mb=round(peak_rss_mb(), 1), output=_output_text(interpreter, model),
    )


# Fewer timed pipeline frames than this and the FPS is noise: the result says so.
MIN_PIPELINE_FRAMES = 10


def bench_pipeline(model: str | os.PathLike, source: str, invoke_ms: float,
                   threads: int | None = None, delegate: str | None = None,
                   fallback: bool = False, frames: int = 100, warmup: int = 5) -> dict[str, Any]:
    """Time the whole frame pipeline (capture → preprocess → invoke → postprocess → draw).

    Args:
        model: The ``.tflite`` model.
        source: A video, image folder, ``rtsp://`` URL or camera number.
        invoke_ms: Mean raw invoke time from :func:`bench_model`, for the efficiency.
        threads: CPU threads.
        delegate: As for :func:`bench_model`.
        fallback: As for :func:`bench_model`.
        frames: Frames to time (fewer if the source ends first).
        warmup: Untimed frames first.

    Returns:
        fps, per-stage mean milliseconds, frame-time percentiles, dropped frames,
        ``efficiency``: pipeline fps over raw invoke fps (1 means no overhead), and
        ``efficiency_in_run``: the same against the invoke time inside the pipeline;
        ``note`` when the source ended before ``MIN_PIPELINE_FRAMES`` frames were timed.
    """
    from edgeseg.runtime import capture
    from edgeseg.runtime.overlay import Overlay
    from edgeseg.runtime.pipeline import run_pipeline
    from edgeseg.runtime.segmenter import Segmenter

    seg = Segmenter(model, threads=threads, delegate=delegate, fallback=fallback)
    overlay = Overlay(seg.labels)
    src = capture.open_source(source if source.isdigit() else None,
                              None if source.isdigit() else source)
    capture.open_with_retry(src)
    reader = capture.FrameReader(src)
    try:
        for _ in range(warmup):
            frame = reader.read()
            if frame is None:
                raise EdgesegError(f"{source} ended during the warm-up; use a longer video.")
            overlay.draw(frame, seg.segment(frame).mask)
        stats = run_pipeline(seg, reader, overlay.draw, max_frames=frames)
    finally:
        reader.close()
    out = stats.to_dict()
    out["source"] = source
    out["efficiency"] = round(stats.fps * invoke_ms / 1000, 3)
    # Against the invokes of this same run: immune to the machine's load changing between
    # the two measurements.
    out["efficiency_in_run"] = round(stats.fps * stats.stages["invoke"].mean / 1000, 3)
    if stats.frames < min(frames, MIN_PIPELINE_FRAMES):  # the source ended first
        out["note"] = (f"only {stats.frames} frame{'s' if stats.frames != 1 else ''} timed "
                       f"after the {warmup} warm-up ones: too few for the FPS and efficiency to "
                       f"mean anything; give --pipeline a source of {warmup + MIN_PIPELINE_FRAMES}"
                       "+ frames (a longer video or folder)")
    return out
