"""``edgeseg export``: a .tflite as a C array for C/C++ and microcontroller builds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli._common import console, handle_errors


@handle_errors
def export(
    model: Annotated[Path, typer.Argument(help="A .tflite model.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the files.")],
    c_array: Annotated[bool, typer.Option("--c-array", help="Write <name>.h and <name>.cc.")]
    = False,
    name: Annotated[Optional[str], typer.Option(help="C identifier prefix (default: file stem).")]
    = None,
) -> None:
    """Export a .tflite as a .h/.cc pair: aligned model bytes, I/O quantization, labels."""
    from edgeseg.errors import EdgesegError

    if not c_array:
        raise EdgesegError("choose an export format: --c-array (the only one so far).")
    from edgeseg.device.export_c import export_c_array

    header, source = export_c_array(model, output, name)
    console.print(f"Wrote {header} and {source} ({model.stat().st_size:,} model bytes).")


def register(app: typer.Typer) -> None:
    app.command("export", help="Export a .tflite as a C/C++ array (.h/.cc).")(export)
