"""``edgeseg run``: segment a camera or video with a .tflite model, without TensorFlow."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli import _run_options as ro
from edgeseg.cli._common import console, err_console, handle_errors
from edgeseg.errors import EdgesegError

_ENDINGS = {
    "end-of-source": "end of the source",
    "max-frames": "reached --max-frames",
    "interrupted": "stopped (Ctrl-C or SIGTERM)",
    "window-closed": "window closed",
}


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (``systemctl stop``) ends the run like Ctrl-C: the saved video and the JSON
    log are finalized instead of lost with the process."""
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (a test calling the command from a thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@handle_errors
def run(
    model: Annotated[Path, typer.Argument(help="The .tflite model (its .json sidecar is read).")],
    camera: Annotated[Optional[str], typer.Option(
        help="Camera: a device number (OpenCV/V4L2) or 'picam' (picamera2).")] = None,
    source: Annotated[Optional[str], typer.Option(
        help="A video file, an image or folder of images, or an rtsp:// or http:// URL.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all).")] = None,
    delegate: Annotated[Optional[str], typer.Option(
        help="cpu (XNNPACK), edgetpu, gpu, or a delegate library path.")] = None,
    fallback: Annotated[bool, typer.Option(
        help="If the delegate can't be loaded, warn and run on the CPU.")] = False,
    alpha: Annotated[float, typer.Option(help="Overlay opacity, 0-1.")] = 0.5,
    display: Annotated[bool, typer.Option(
        "--display/--no-display", help="Show a window (headless when there is no display).")
    ] = True,
    save: Annotated[Optional[Path], typer.Option(
        help="Save the overlay video (.mp4/.avi), finalized on Ctrl-C or SIGTERM.")] = None,
    stream: Annotated[Optional[int], typer.Option(
        help="Serve an MJPEG page, /stats (JSON) and /metrics (Prometheus) on this port.",
        metavar="PORT")] = None,
    host: Annotated[str, typer.Option(
        help="Interface for --stream (0.0.0.0 opens it to the network).")] = "127.0.0.1",
    max_frames: Annotated[Optional[int], typer.Option(help="Stop after N frames.")] = None,
    json_log: Annotated[Optional[Path], typer.Option(
        help="Write per-frame timings as JSON lines.")] = None,
    reconnect: Annotated[Optional[str], typer.Option(
        help="Reconnection attempts for a live source that stalls or drops (default 4), or "
             "'forever' (the service).", metavar="N|forever")] = None,
    stall: Annotated[float, typer.Option(
        help="Seconds without a frame before a live source counts as stalled.")] = 3.0,
    token: Annotated[Optional[str], typer.Option(
        envvar="EDGESEG_STREAM_TOKEN", show_envvar=False,
        help="Token the stream requires when --host opens it to the network "
             "(default: a random one, printed).")] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Serve the stream to the network without a token.")] = False,
    collect: Annotated[Optional[Path], typer.Option(
        help="Save low-confidence frames and their predicted masks here (images/, "
             "annotations/), to relabel and train on.", metavar="DIR")] = None,
    collect_max: Annotated[int, typer.Option(
        help="Most frames --collect keeps (the oldest go first).")] = 200,
    collect_max_mb: Annotated[float, typer.Option(
        help="Most megabytes --collect keeps.")] = 200.0,
    output_index: ro.OutputIndex = None,
    instances: Annotated[Optional[str], typer.Option(
        help="components: connected-component instances of a semantic model (touching objects "
             "merge); off: none. Default: an instance model's own, ids tracked across frames.")] = None,
) -> None:
    """Segment camera frames or a video with a .tflite model; overlay, save or stream."""
    from edgeseg.runtime.app import RunOptions
    from edgeseg.runtime.app import run as run_app

    if stream is not None and not 0 <= stream <= 65535:
        raise EdgesegError(f"--stream {stream}: a port must be 1-65535 (8080, say; 0 picks a "
                           "free one).")
    opts = RunOptions(
        model=str(model), camera=camera, source=source, threads=threads, delegate=delegate,
        fallback=fallback, alpha=alpha, display=display, save=str(save) if save else None,
        stream=stream, host=host, max_frames=max_frames,
        json_log=str(json_log) if json_log else None, reconnect=reconnect, stall_s=stall,
        token=token, no_auth=no_auth, collect=str(collect) if collect else None,
        collect_max=collect_max, collect_max_mb=collect_max_mb, output_index=output_index,
        instances=instances,
    )
    with _stop_on_sigterm():
        stats = run_app(opts, note=lambda msg: err_console.print(msg, markup=False,
                                                                  soft_wrap=True))
    st = {k: v.mean for k, v in stats.stages.items()}
    console.print(f"{_ENDINGS.get(stats.ended, stats.ended)}: {stats.frames} frames in "
                  f"{stats.seconds:.1f} s, {stats.fps:.1f} FPS, {stats.dropped} dropped",
                  soft_wrap=True)
    console.print(
        f"per frame (ms): preprocess {st['preprocess']:.2f}, invoke {st['invoke']:.2f}, "
        f"postprocess {st['postprocess']:.2f}, draw {st['draw']:.2f}, output {st['output']:.2f}, "
        f"capture wait {st['capture']:.2f}", soft_wrap=True,
    )
    if save and stats.frames:
        console.print(f"saved {save}", soft_wrap=True)
    if json_log:
        console.print(f"per-frame timings in {json_log}")


def register(app: typer.Typer) -> None:
    app.command("run", help="Segment a camera or video with a .tflite model (no TensorFlow).")(run)
