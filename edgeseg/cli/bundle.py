"""``edgeseg bundle``: the folder to copy to a Raspberry Pi."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli._common import console, err_console, handle_errors
from edgeseg.errors import EdgesegError


@handle_errors
def bundle(
    model: Annotated[Path, typer.Argument(help="The .tflite model (its .tflite.json beside it).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The folder to create.")],
    camera: Annotated[str, typer.Option(
        help="V4L2 index (0 = /dev/video0, USB webcam) or picam (Pi camera module).")] = "0",
    threads: Annotated[int, typer.Option(help="Interpreter threads (4 on a Pi 4/5).")] = 4,
    stream_port: Annotated[int, typer.Option(
        help="MJPEG stream port; 0 for no stream.")] = 8080,
    host: Annotated[str, typer.Option(
        help="Stream address: 127.0.0.1 (view via ssh -L) or 0.0.0.0 (whole network).")]
        = "127.0.0.1",
    save: Annotated[str, typer.Option(
        help="Save the overlay video there on the device (relative: /var/lib/edgeseg).")] = "",
    delegate: Annotated[Optional[str], typer.Option(
        help="edgetpu, gpu or a delegate .so; default: edgetpu for Edge TPU models, else CPU.")]
        = None,
    wheel: Annotated[Optional[Path], typer.Option(
        help="An edgeseg .whl to ship (default: a wheel of this edgeseg, built now).")] = None,
    no_wheel: Annotated[bool, typer.Option(
        "--no-wheel", help="Ship no edgeseg wheel: the device installs it from an index.")]
        = False,
    wheelhouse: Annotated[Optional[Path], typer.Option(
        help="Wheels of the runtime's dependencies for the device (pip download --platform "
             "manylinux2014_aarch64 --only-binary=:all:); the install then needs no internet.",
        metavar="DIR")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the folder if it exists.")]
        = False,
) -> None:
    """Make the folder to copy to the device: model, sidecar, labels, settings, service."""
    from edgeseg.device.bundle import BundleSettings, make_bundle

    settings = BundleSettings(camera=camera, threads=threads, stream_port=stream_port,
                              stream_host=host, save=save, delegate=delegate)
    if wheel is not None and no_wheel:
        raise EdgesegError("--wheel and --no-wheel contradict each other; give one.")
    result = make_bundle(model, output, settings, wheel=wheel, force=force,
                         include_wheel=not no_wheel, wheelhouse=wheelhouse)
    console.print(f"Bundled {result.model} -> {result.path}/ ({len(result.files)} files; "
                  f"description from {result.sidecar_source})", markup=False, soft_wrap=True)
    for name in result.files:
        console.print(f"  {name}", markup=False)
    for note in result.notes:
        err_console.print(f"note: {note}", markup=False, soft_wrap=True)
    if wheelhouse is None:
        err_console.print("note: no --wheelhouse: install-pi.sh downloads numpy, OpenCV and the "
                          "TFLite runtime from PyPI; for a device without internet bundle again "
                          "with --wheelhouse DIR (pip download --platform manylinux2014_aarch64 "
                          "--only-binary=:all: ...)", markup=False, soft_wrap=True)
    # One line however narrow the terminal: it is meant to be copied and pasted.
    where = shlex.quote(str(result.path))
    inner = shlex.quote(f"cd {shlex.quote(result.path.name)} && sudo ./install-pi.sh")
    print(f"Next: scp -r {where} pi@raspberrypi.local: && ssh pi@raspberrypi.local {inner}")


def register(app: typer.Typer) -> None:
    app.command("bundle", help="Make the folder to copy to a Raspberry Pi: model, settings, "
                "systemd service and installer.")(bundle)
