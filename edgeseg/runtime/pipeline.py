"""The frame loop shared by ``edgeseg run`` and ``edgeseg bench --pipeline``."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.atomic import atomic_path
from edgeseg.errors import EdgesegError

STAGES = ("capture", "preprocess", "invoke", "postprocess", "draw", "output")


# Takes each drawn frame; returning False stops the run (a closed window).
Sink = Callable[[np.ndarray], Any]


@dataclass
class StageStats:
    """Running sums plus a bounded window of recent values, so memory stays flat."""

    total: float = 0.0
    count: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=4096))

    def add(self, ms: float) -> None:
        self.total += ms
        self.count += 1
        self.recent.append(ms)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.fromiter(self.recent, float), q)) if self.recent else 0.0


@dataclass
class PipelineStats:
    """What a run did: frames, time, per-stage milliseconds, dropped frames, how it ended."""

    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    ended: str = "max-frames"
    stages: dict[str, StageStats] = field(default_factory=lambda: {s: StageStats() for s in STAGES})
    frame_ms: StageStats = field(default_factory=StageStats)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames, "seconds": round(self.seconds, 3), "fps": round(self.fps, 2),
            "dropped": self.dropped, "ended": self.ended,
            "stage_ms": {k: round(v.mean, 3) for k, v in self.stages.items()},
            "frame_ms": {"mean": round(self.frame_ms.mean, 3),
                         "p50": round(self.frame_ms.percentile(50), 3),
                         "p90": round(self.frame_ms.percentile(90), 3)},
        }


class JsonLog:
    """Per-frame timings as JSON lines, renamed into place when closed."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(Path(path)))
        self._file = self._stack.enter_context(open(tmp, "w", encoding="utf-8"))  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")

    def close(self, keep: bool = True) -> None:
        """Move the log into place (``keep=False`` deletes it instead)."""
        if keep:
            self._stack.close()
        else:
            self._stack.__exit__(RuntimeError, RuntimeError("discarded"), None)


def run_pipeline(segmenter: Any, reader: Any, draw: Callable[..., np.ndarray] | None = None,
                 sinks: tuple[Sink, ...] = (), max_frames: int | None = None,
                 json_log: JsonLog | None = None,
                 on_frame: Callable[[Any, np.ndarray, float], Any] | None = None,
                 idle: Callable[[], Any] | None = None) -> PipelineStats:
    """Capture → segment → draw → sinks until the source ends, ``max_frames``, Ctrl-C or a stop.

    Args:
        segmenter: A :class:`~edgeseg.runtime.Segmenter`.
        reader: A :class:`~edgeseg.runtime.reader.FrameReader` (``read()`` → frame or None).
        draw: ``draw(frame, mask, fps, latency_ms)`` → image for the sinks; skipped when
            None, so a headless run pays nothing for drawing.
        sinks: Called with each drawn image; one returning False ends the run.
        max_frames: Stop after this many frames.
        json_log: Receives one record per frame.
        on_frame: Called after the sinks as ``on_frame(segmentation, frame, e2e_ms)``,
            ``e2e_ms`` being capture → output (health, confidence, collection).
        idle: Called about twice a second while no frame comes (watchdog pings).

    Returns:
        The run's statistics. A capture failure is raised after the frames so far have
        been counted (the caller's sinks can still be finalized).
    """
    stats = PipelineStats()
    ema_fps = 0.0
    start = last = time.perf_counter()
    try:
        while max_frames is None or stats.frames < max_frames:
            t0 = time.perf_counter()
            frame = reader.read(idle=idle) if idle is not None else reader.read()
            t1 = time.perf_counter()
            if frame is None:
                stats.ended = "end-of-source"
                break
            if stats.frames == 0:
                start = last = t1  # don't count the wait for the first frame
            seg = segmenter.segment(frame)
            t2 = time.perf_counter()
            # An instance run's draw takes the whole result (ids and instances), not the mask.
            shown = seg.mask if seg.instances is None else seg
            img = draw(frame, shown, ema_fps or None, seg.timings.total_ms) if draw else None
            t3 = time.perf_counter()
            stop = img is not None and False in [sink(img) for sink in sinks]
            t4 = time.perf_counter()
            stats.frames += 1
            tm = seg.timings
            values = ((t1 - t0) * 1e3 if stats.frames > 1 else 0.0, tm.preprocess_ms, tm.invoke_ms,
                      tm.postprocess_ms, (t3 - t2) * 1e3, (t4 - t3) * 1e3)
            for name, ms in zip(STAGES, values):
                stats.stages[name].add(ms)
            dt = t4 - last
            last = t4
            if stats.frames > 1 and dt > 0:
                ema_fps = 1 / dt if not ema_fps else 0.9 * ema_fps + 0.1 / dt
            stats.frame_ms.add(dt * 1e3)
            if on_frame is not None:
                captured_at = getattr(reader, "frame_time", 0.0)
                e2e = (time.monotonic() - captured_at) * 1e3 if captured_at else dt * 1e3
                on_frame(seg, frame, e2e)
            if json_log is not None:
                json_log.write({"frame": stats.frames, "t": round(t4 - start, 4),
                                **{f"{k}_ms": round(v, 3) for k, v in zip(STAGES, values)},
                                "frame_ms": round(dt * 1e3, 3),
                                "dropped": int(getattr(reader, "dropped", 0)),
                                **({"group_ms": round(tm.group_ms, 3),
                                    "instance_kind": segmenter.instance_reader.kind,
                                    "instances": [i.to_dict(segmenter.labels) for i in seg.instances]}
                                   if seg.instances is not None else {})})
            if stop:
                stats.ended = "window-closed"
                break
    except KeyboardInterrupt:
        stats.ended = "interrupted"
    except EdgesegError:
        stats.ended = "error"
        raise
    finally:
        stats.seconds = last - start
        stats.dropped = int(getattr(reader, "dropped", 0))
    return stats
