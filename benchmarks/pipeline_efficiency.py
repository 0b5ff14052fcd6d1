"""Pipeline efficiency and memory over a long run: the figures of issue 5.

    python benchmarks/pipeline_efficiency.py MODEL.tflite [--video V.mp4] [--threads N]

1. Efficiency: frames per second through the ``edgeseg run --no-display`` loop on a
   640×480 video, over the raw invoke rate from ``edgeseg bench`` (interleaved, repeated,
   so a busy machine affects both alike). Also reported against the invoke time measured
   inside the same run, which is immune to the load changing between the two.
2. Memory: resident set size after frame 100 and after frame N (default 2,000) of a run
   that draws, saves a video and writes the JSON log on a looping source.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from edgeseg.runtime import capture
from edgeseg.runtime.bench import bench_model
from edgeseg.runtime.overlay import Overlay
from edgeseg.runtime.pipeline import JsonLog, run_pipeline
from edgeseg.runtime.reader import FrameReader, open_with_retry
from edgeseg.runtime.segmenter import Segmenter
from edgeseg.runtime.sinks import VideoSaver


def make_video(path: Path, frames: int = 200, size: tuple[int, int] = (640, 480)) -> Path:
    import cv2

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(frames):
        img = np.dstack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, np.full_like(xx, 90)])
        writer.write(img.astype(np.uint8))
    writer.release()
    return path


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class LoopingVideo(capture.OpenCVSource):
    """A video file read over and over, in order (no frame dropped)."""

    def read(self) -> np.ndarray | None:
        frame = super().read()
        if frame is None:
            self.close()
            self.open()
            frame = super().read()
        return frame


def efficiency(model: str, video: str, threads: int | None, repeats: int) -> list[dict]:
    rows = []
    seg = Segmenter(model, threads=threads)
    for _ in range(repeats):
        raw = bench_model(model, threads, runs=100, warmup=5)
        src = capture.open_source(source=video)
        open_with_retry(src)
        reader = FrameReader(src)
        try:
            stats = run_pipeline(seg, reader)  # what `edgeseg run --no-display` runs
        finally:
            reader.close()
        inv = stats.stages["invoke"].mean
        rows.append({
            "bench_invoke_ms": raw.mean_ms, "run_fps": round(stats.fps, 2),
            "run_invoke_ms": round(inv, 2),
            "pre_ms": round(stats.stages["preprocess"].mean, 3),
            "post_ms": round(stats.stages["postprocess"].mean, 3),
            "capture_wait_ms": round(stats.stages["capture"].mean, 3),
            "efficiency_vs_bench": round(stats.fps * raw.mean_ms / 1000, 3),
            "efficiency_in_run": round(stats.fps * inv / 1000, 3),
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def memory(model: str, video: str, threads: int | None, frames: int) -> dict:
    seg = Segmenter(model, threads=threads)
    overlay = Overlay(seg.labels)
    src = LoopingVideo(video, live=False, name=video)
    src.open()
    reader = FrameReader(src)
    marks: dict[int, float] = {}
    count = {"n": 0}

    def probe(img: np.ndarray) -> None:
        count["n"] += 1
        if count["n"] in (100, frames // 2, frames):
            marks[count["n"]] = rss_mb()

    with tempfile.TemporaryDirectory() as tmp:
        saver = VideoSaver(Path(tmp) / "long.avi", 30.0)
        log = JsonLog(Path(tmp) / "long.jsonl")
        try:
            stats = run_pipeline(seg, reader, overlay.draw, (saver.write, probe), frames, log)
        finally:
            reader.close()
            saver.close()
            log.close()
    return {"frames": stats.frames, "fps": round(stats.fps, 2),
            "rss_mb": {k: round(v, 1) for k, v in marks.items()},
            "growth_mb_100_to_end": round(marks[frames] - marks[100], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--video", help="default: a generated 640x480, 200-frame video")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=2000, help="frames for the memory run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video or str(make_video(Path(tmp) / "clip.mp4"))
        rows = efficiency(args.model, video, args.threads, args.repeats)
        med = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
        print("median:", json.dumps(med))
        if args.frames:
            print("memory:", json.dumps(memory(args.model, video, args.threads, args.frames)))


if __name__ == "__main__":
    main()
