"""``edgeseg run`` as a function: open the model and source, run the loop, finalize outputs."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeseg.errors import EdgesegError
from edgeseg.runtime import capture
from edgeseg.runtime.pipeline import JsonLog, PipelineStats, run_pipeline
from edgeseg.runtime.segmenter import Segmenter


@dataclass(frozen=True)
class RunOptions:
    """Everything ``edgeseg run`` takes, one field per option."""

    model: str
    camera: str | None = None
    source: str | None = None
    threads: int | None = None
    delegate: str | None = None
    fallback: bool = False
    alpha: float = 0.5
    display: bool = True
    save: str | None = None
    stream: int | None = None
    host: str = "127.0.0.1"
    max_frames: int | None = None
    json_log: str | None = None


def load_segmenter(model: str, threads: int | None, delegate: str | None, fallback: bool,
                   note: Callable[[str], None]) -> Segmenter:
    """A Segmenter, with any fallback warning passed to ``note`` as one line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seg = Segmenter(model, threads=threads, delegate=delegate, fallback=fallback)
    for w in caught:
        note(f"warning: {w.message}")
    return seg


def describe(seg: Segmenter) -> str:
    """One line: runtime, delegate, threads, input and output."""
    d = seg.describe()
    _, h, w, _ = d["input"]
    feed = "pixels fed directly" if d["feeds_pixels"] else "normalized by lookup table"
    oh, ow, c = d["output"]
    return (f"{d['model']} on {d['runtime']} {d['runtime_version']} ({d['delegate']}, "
            f"{d['threads']} threads): input {w}x{h} {d['input_dtype']} ({feed}), "
            f"output {ow}x{oh}x{c} {d['output_kind']} {d['output_dtype']}, "
            f"{seg.n_classes or '?'} classes, metadata from {d['metadata']} ("
            + "; ".join(f"{k}: {v}" for k, v in d["sources"].items()) + ")"
            + "".join(f"; note: {n}" for n in d["notes"]))


def run(opts: RunOptions, note: Callable[[str], None] = print,
        retry: capture.Retry | None = None) -> PipelineStats:
    """Segment a camera or video, drawing/saving/streaming as ``opts`` asks.

    Ctrl-C, the end of a video, ``max_frames`` and a closed window all end the run
    normally, with the saved video and JSON log finalized. A source that fails is
    raised as EdgesegError after the outputs so far are finalized.

    Args:
        opts: The run's options.
        note: Prints one-line messages (warnings, stream URL, headless fallback).
        retry: Backoff policy for opening and reconnecting live sources.
    """
    from edgeseg.runtime.overlay import Overlay
    from edgeseg.runtime.sinks import Display, VideoSaver, display_available

    if opts.max_frames is not None and opts.max_frames < 1:
        raise EdgesegError(f"--max-frames must be at least 1 (got {opts.max_frames}).")
    src = capture.open_source(opts.camera, opts.source)
    saver = VideoSaver(opts.save, 0.0) if opts.save else None  # checks the suffix early
    seg = load_segmenter(opts.model, opts.threads, opts.delegate, opts.fallback, note)
    note(describe(seg))
    show = opts.display
    if show and not display_available():
        note("no display ($DISPLAY is not set): running headless; pass --no-display to skip "
             "this note, or use --stream PORT / --save FILE to see the output.")
        show = False
    overlay = Overlay(seg.labels, opts.alpha)
    capture.open_with_retry(src, retry)
    closers: list[Callable[[bool], Any]] = []
    sinks: list[Callable[[Any], Any]] = []
    reader = capture.FrameReader(src, retry)
    try:
        if saver is not None:
            saver.fps = src.fps or saver.fps
            sinks.append(saver.write)
            closers.append(saver.close)
        if opts.stream is not None:
            from edgeseg.runtime.stream import MjpegServer

            server = MjpegServer(opts.stream, opts.host)
            sinks.append(server.publish)
            closers.append(lambda keep: server.close())
            scope = ("this machine only; --host 0.0.0.0 to open it" if opts.host == "127.0.0.1"
                     else "open to the network")
            note(f"streaming on {server.url} ({scope})")
        if show:
            window = Display(note=note)
            sinks.append(window.show)
            closers.append(lambda keep: window.close())
        log = JsonLog(opts.json_log) if opts.json_log else None
        if log is not None:
            closers.append(log.close)
        stats = run_pipeline(seg, reader, overlay.draw if sinks else None, tuple(sinks),
                             opts.max_frames, log)
    except EdgesegError:
        _close(reader, closers, keep=True)  # keep what was recorded before the source failed
        raise
    except BaseException:
        _close(reader, closers, keep=False)
        raise
    _close(reader, closers, keep=True)
    if getattr(src, "skipped", 0):
        note(f"warning: skipped {src.skipped} unreadable image(s).")  # type: ignore[attr-defined]
    return stats


def _close(reader: capture.FrameReader, closers: list[Callable[[bool], Any]], keep: bool) -> None:
    reader.close()
    for close in reversed(closers):
        close(keep)
