"""``edgeseg run`` as a function: open the model and source, run the loop, finalize outputs."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeseg.errors import EdgesegError
from edgeseg.runtime import capture
from edgeseg.runtime.confidence import ConfidenceMonitor
from edgeseg.runtime.health import Health, prometheus_text
from edgeseg.runtime.interpreter import check_model_file
from edgeseg.runtime.pipeline import JsonLog, PipelineStats, run_pipeline
from edgeseg.runtime.reader import DEFAULT_RETRY, FrameReader, Retry, open_with_retry
from edgeseg.runtime.sdnotify import SystemdNotifier
from edgeseg.runtime.segmenter import Segmenter
from edgeseg.sizes import hw


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
    reconnect: int | str | None = None  # attempts, "forever" (the service), None: default
    stall_s: float = 3.0
    token: str | None = None
    no_auth: bool = False
    collect: str | None = None
    collect_max: int = 200
    collect_max_mb: float = 200.0
    output_index: int | None = None  # which output tensor is the mask (None: the Segmenter's pick)
    instances: str | None = None  # components | off (None: an instance model's own)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def stream_token(opts: RunOptions) -> str | None:
    """The token the stream requires: none on loopback or with ``--no-auth``, else the
    given one (``--token`` / ``$EDGESEG_STREAM_TOKEN``) or a new random one."""
    import secrets

    if opts.no_auth or (opts.host in LOOPBACK and not opts.token):
        return None
    if opts.token and len(opts.token) < 8:
        raise EdgesegError("--token must be at least 8 characters; leave it out to get a "
                           "random one printed at start.")
    return opts.token or secrets.token_urlsafe(18)


def reconnect_policy(value: int | str | None) -> Retry:
    """``--reconnect N|forever`` as a Retry (None: the default, 4 attempts)."""
    base = DEFAULT_RETRY
    if value is None:
        return base
    if str(value).lower() in ("forever", "inf", "always"):
        return Retry(None, base.backoff_s, base.max_s)
    if not str(value).isdigit():
        raise EdgesegError(f"--reconnect {value}: give a number of attempts or 'forever'.")
    return Retry(int(value), base.backoff_s, base.max_s)


def load_segmenter(model: str, threads: int | None, delegate: str | None, fallback: bool,
                   note: Callable[[str], None], output: int | None = None,
                   instances: str | None = None) -> Segmenter:
    """A Segmenter, with any fallback warning passed to ``note`` as one line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seg = Segmenter(model, threads=threads, delegate=delegate, fallback=fallback,
                        output=output, instances=instances, track=True)
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
            f"{d['threads']} threads): input {hw(h, w)} {d['input_dtype']} ({feed}), "
            f"output {hw(oh, ow)} ×{c} {d['output_kind']} {d['output_dtype']}, "
            f"{seg.n_classes or '?'} classes, metadata from {d['metadata']} ("
            + "; ".join(f"{k}: {v}" for k, v in d["sources"].items()) + ")"
            + "".join(f"; note: {n}" for n in d["notes"]))


def run(opts: RunOptions, note: Callable[[str], None] = print,
        retry: Retry | None = None) -> PipelineStats:
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
    check_model_file(opts.model)  # a .keras given by mistake is said before the source is opened
    src = capture.open_source(opts.camera, opts.source)
    token = stream_token(opts) if opts.stream is not None else None
    saver = VideoSaver(opts.save, 0.0) if opts.save else None  # checks the suffix early
    seg = load_segmenter(opts.model, opts.threads, opts.delegate, opts.fallback, note,
                         opts.output_index, opts.instances)
    note(describe(seg))
    if seg.describe()["accelerator"]:
        note(seg.describe()["accelerator"])
    show = opts.display
    if show and not display_available():
        note("no display ($DISPLAY is not set): running headless; pass --no-display to skip "
             "this note, or use --stream PORT / --save FILE to see the output.")
        show = False
    overlay = Overlay(seg.labels, opts.alpha)
    draw = overlay.draw
    if seg.instance_reader is not None:
        from edgeseg.runtime.instance_draw import instance_overlay

        draw = instance_overlay(overlay, seg.labels, seg.instance_reader.kind)
    retry = retry or reconnect_policy(opts.reconnect)
    notifier = SystemdNotifier()
    # Ready once the model is loaded: the watchdog then covers opening the camera too, which
    # under --reconnect forever may take as long as the camera stays unplugged.
    notifier.ready(f"opening {src.name}")
    open_with_retry(src, retry, note, idle=notifier.ping)
    closers: list[Callable[[bool], Any]] = []
    sinks: list[Callable[[Any], Any]] = []
    reader = FrameReader(src, retry, stall_s=opts.stall_s, note=note)
    health = Health(opts.model, reader)
    counter = None
    if seg.instance_reader is not None:
        from edgeseg.runtime.tracking import InstanceCounter

        health.instances = counter = InstanceCounter(seg.labels, seg.instance_reader.kind)
    monitor = ConfidenceMonitor.for_segmenter(seg, note, opts.collect, opts.collect_max,
                                              opts.collect_max_mb)
    try:
        if saver is not None:
            saver.fps = src.fps or saver.fps
            sinks.append(saver.write)
            closers.append(saver.close)
        if opts.stream is not None:
            from edgeseg.runtime.stream import MjpegServer

            server = MjpegServer(opts.stream, opts.host, token=token, stats=health.snapshot,
                                 metrics=lambda: prometheus_text(health))
            sinks.append(server.publish)
            closers.append(lambda keep: server.close())
            scope = ("this machine only; --host 0.0.0.0 to open it" if opts.host in LOOPBACK
                     else "open to the network, token required" if token
                     else "open to the network WITHOUT a token (--no-auth)")
            if server.all_interfaces:
                found = len(server.urls) > 1
                scope = (f"listening on all interfaces ({opts.host or '0.0.0.0'}); "
                         + ("" if found else "no network address found, is the network up? ")
                         + scope)
            note(f"streaming on {' or '.join(server.urls)} ({scope}); health at /stats and "
                 "/metrics")
        if show:
            window = Display(note=note)
            sinks.append(window.show)
            closers.append(lambda keep: window.close())
        log = JsonLog(opts.json_log) if opts.json_log else None
        if log is not None:
            closers.append(log.close)

        def on_frame(result: Any, frame: Any, e2e_ms: float) -> None:
            health.frame(result.timings.invoke_ms, e2e_ms)
            health.confidence = monitor.update(result, frame)
            if counter is not None:
                counter.update(result.instances or ())
            notifier.ping()

        notifier.send(f"STATUS=segmenting {src.name}")
        stats = run_pipeline(seg, reader, draw if sinks else None, tuple(sinks),
                             opts.max_frames, log, on_frame=on_frame,
                             idle=notifier.ping if notifier.enabled else None)
    except EdgesegError:
        # keep what was recorded before the source failed
        _close(reader, closers, keep=True, notifier=notifier)
        raise
    except BaseException:
        _close(reader, closers, keep=False, notifier=notifier)
        raise
    _close(reader, closers, keep=True, notifier=notifier)
    if getattr(src, "skipped", 0):
        note(f"warning: skipped {src.skipped} unreadable image(s).")  # type: ignore[attr-defined]
    if stats.frames == 0 and stats.ended == "end-of-source":
        raise EdgesegError(f"{src.name} opened but yielded no frame: a header-only or "
                           "undecodable file, or a codec this OpenCV build lacks (check it "
                           "with ffprobe; re-encode with ffmpeg -c:v mjpeg).")
    if saver is not None and (saver.frames == 0 or not saver.path.is_file()):
        raise EdgesegError(f"--save {saver.path} was not written ({saver.frames} frames); "
                           "check the folder is writable and has space.")
    if reader.reconnects:
        note(f"the source was reconnected {reader.reconnects} time(s) "
             f"({reader.stalls} stall(s) detected).")
    return stats


def _close(reader: FrameReader, closers: list[Callable[[bool], Any]], keep: bool,
           notifier: SystemdNotifier | None = None) -> None:
    if notifier is not None:
        notifier.stopping()
    reader.close()
    for close in reversed(closers):
        close(keep)
