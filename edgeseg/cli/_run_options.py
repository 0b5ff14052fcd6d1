"""The options every command that runs a model shares: which output tensor is the mask."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgeseg.errors import EdgesegError

OutputIndex = Annotated[Optional[int], typer.Option(
    "--output-index", min=0, metavar="N",
    help="Which output tensor of a .tflite holds the segmentation (default: the first; "
         "e.g. 2 for MediaPipe's pose model).", show_default=False)]
# evaluate and compare once took the tensor as `--output N`; `-o/--output` is a path on every
# other command, so the old spelling is refused with the new one named, not silently read.
OldOutput = Annotated[Optional[str], typer.Option(
    "--output", hidden=True, show_default=False, metavar="N")]


def refuse_old_output(value: Optional[str]) -> None:
    """Raise the one-line error for the retired ``--output N`` tensor choice.

    Raises:
        EdgesegError: ``value`` was given (names ``--output-index``).
    """
    if value is None:
        return
    if value.isdigit():
        raise EdgesegError(f"--output {value}: the output tensor is chosen with --output-index "
                           f"{value} (-o/--output names a path, on the commands that write one).")
    raise EdgesegError(f"--output {value}: this command writes no file (--json prints its "
                       "result); the output tensor, if that was meant, is chosen with "
                       "--output-index N.")
