"""Shared pieces of the benchmark scripts: the plan, logging, conversion and timing helpers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

MODES = ("float32", "float16", "dynamic", "int8")
LABELS = {"keras": "Keras (TF)", "float32": "TFLite float32", "float16": "TFLite float16",
          "dynamic": "TFLite dynamic-range", "int8": "TFLite int8 (uint8 I/O)"}


@dataclass(frozen=True)
class Plan:
    """How much to measure. The default is the full run (≤ 25 min on 2 cores)."""

    runs: int = 30
    min_seconds: float = 3.0
    warmup: int = 5
    rounds: int = 2
    sizes: tuple[int, ...] = (224, 320, 416)
    alphas: tuple[float, ...] = (0.5, 1.0)
    calib_timing: int = 32
    calib_accuracy: int = 200
    val_limit: Optional[int] = None
    video_frames: int = 150
    pipeline_repeats: int = 3


QUICK = Plan(runs=5, min_seconds=0.5, warmup=2, rounds=1, sizes=(224,), calib_timing=8,
             calib_accuracy=32, val_limit=40, video_frames=40, pipeline_repeats=1)
T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{(time.monotonic() - T0) / 60:5.1f} min] {msg}", flush=True)


def _quiet(_: str) -> None:
    pass


def describe(cfg: Any) -> str:
    dec = "seed decoder" if cfg.decoder == "seed" else f"lite decoder (width {cfg.decoder_width:g})"
    return f"{cfg.height}×{cfg.width}, alpha {cfg.alpha:g}, {dec}, {cfg.n_classes} classes"


def to_tflite(src: Path, out: Path, mode: str, calib_count: int, calib: Optional[str]) -> Path:
    from edgeseg.convert.quantize import ConvertConfig, convert

    if not out.exists():
        t = time.monotonic()
        convert(src, out, ConvertConfig(mode=mode, calib=calib, calib_count=calib_count), log=_quiet)
        log(f"  converted {out.name} in {time.monotonic() - t:.0f} s")
    return out


def bench_p50(path: Path, plan: Plan, threads: int) -> float:
    from edgeseg.runtime.bench import bench_model

    return bench_model(path, threads, runs=plan.runs, warmup=plan.warmup,
                       min_seconds=plan.min_seconds).p50_ms


def count_macs(model: Any) -> dict[str, int]:
    from edgeseg.model.macs import count_macs

    return count_macs(model)
