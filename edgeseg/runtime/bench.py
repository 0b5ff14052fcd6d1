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
    accelerator_line,
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
    accelerator: str | None = None  # LiteRT's GPU accelerator: adapter, fully accelerated

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


_ASSUMED = {  # how the runtime reads an output whose head the model does not state
    "scores": "class scores, argmax per pixel",
    "binary": "one probability map (sigmoid), foreground at 0.5 or more",
    "ids": "class ids (an in-graph argmax)",
}


def output_text(interpreter: Any, model: str | os.PathLike, index: int | None = None) -> str:
    """The segmentation output, its size and how it is read, e.g.
    ``32×32 (H×W), 4 channels, uint8, softmax`` for an edgeseg model, or for a model
    whose metadata names no head (MediaPipe's), which reading the runtime assumed.

    Args:
        interpreter: An allocated interpreter.
        model: The ``.tflite`` (its description names the head).
        index: Which output is the mask (None: the one the Segmenter picks).
    """
    from edgeseg.runtime.segmenter import pick_output
    from edgeseg.sizes import hw
    from edgeseg.tflite.description import read_description

    head = read_description(model).head
    n_out = len(interpreter.get_output_details())
    if index is None:
        index = pick_output(interpreter, head, False)
    layout = adapters.output_layout(interpreter, head if n_out == 1 else None, index)
    which = f"output {index} of {n_out}: " if n_out > 1 else ""
    text = (f"{which}{hw(layout.height, layout.width)}, {layout.channels} "
            f"channel{'s' if layout.channels != 1 else ''}, {np.dtype(layout.dtype).name}")
    if head:
        return f"{text}, {head}"
    return f"{text}; head not stated in its metadata, read as {_ASSUMED[layout.kind]}"


def bench_model(model: str | os.PathLike, threads: int | None = None,
                delegate: str | None = None, fallback: bool = False, runs: int = 50,
                warmup: int = 5, min_seconds: float = 0.0,
                output: int | None = None) -> BenchResult:
    """Time ``invoke()`` on random input: ``warmup`` untimed runs, then at least ``runs``
    timed runs and at least ``min_seconds`` of them. ``output`` is the index of the
    output tensor that holds the mask (None: the Segmenter's pick), for the description.

    Raises:
        EdgesegError: Bad counts, or a model that can't be loaded.
    """
    from edgeseg.sizes import hw

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
        input=f"{hw(int(details['shape'][1]), int(details['shape'][2]))}, "
              f"{np.dtype(details['dtype']).name}",
        init_ms=round(init_ms, 2), warmup=warmup, runs=len(times), **latency_stats(times),
        peak_rss_mb=round(peak_rss_mb(), 1), output=output_text(interpreter, model, output),
        accelerator=accelerator_line(interpreter),
    )


# Fewer timed pipeline frames than this and the FPS is noise: the result says so.
MIN_PIPELINE_FRAMES = 10


def bench_pipeline(model: str | os.PathLike, source: str, invoke_ms: float,
                   threads: int | None = None, delegate: str | None = None,
                   fallback: bool = False, frames: int = 100, warmup: int = 5,
                   output: int | None = None) -> dict[str, Any]:
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
        output: Which output tensor holds the mask (None: the Segmenter's pick).

    Returns:
        fps, per-stage mean milliseconds, frame-time percentiles, dropped frames,
        ``efficiency``: pipeline fps over raw invoke fps (1 means no overhead), and
        ``efficiency_in_run``: the same against the invoke time inside the pipeline;
        ``note`` when the source ended before ``MIN_PIPELINE_FRAMES`` frames were timed.
    """
    from edgeseg.runtime import capture
    from edgeseg.runtime.overlay import Overlay
    from edgeseg.runtime.pipeline import run_pipeline
    from edgeseg.runtime.reader import FrameReader, open_with_retry
    from edgeseg.runtime.segmenter import Segmenter

    seg = Segmenter(model, threads=threads, delegate=delegate, fallback=fallback, output=output)
    overlay = Overlay(seg.labels)
    draw = overlay.draw
    groups: list[float] = []
    if seg.instance_reader is not None:  # an instance model: time its grouping too
        from edgeseg.runtime.instance_draw import instance_overlay

        draw = instance_overlay(overlay, seg.labels, seg.instance_reader.kind)  # type: ignore[assignment]
        segment = seg.segment

        def timed(frame: Any) -> Any:
            r = segment(frame)
            groups.append(r.timings.group_ms)
            return r

        seg.segment = timed  # type: ignore[method-assign]
    src = capture.open_source(source if source.isdigit() else None,
                              None if source.isdigit() else source)
    open_with_retry(src)
    reader = FrameReader(src)
    try:
        for _ in range(warmup):
            frame = reader.read()
            if frame is None:
                raise EdgesegError(f"{source} ended during the warm-up; use a longer video.")
            r = seg.segment(frame)
            draw(frame, r.mask if r.instances is None else r)
        stats = run_pipeline(seg, reader, draw, max_frames=frames)
    finally:
        reader.close()
    out = stats.to_dict()
    out["source"] = source
    if groups[warmup:]:
        out["group_ms"] = round(float(sum(groups[warmup:]) / len(groups[warmup:])), 3)
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
