"""``edgeseg predict``: run a model over images and write class masks (and instances) as a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli import _run_options as ro
from edgeseg.cli._common import console, handle_errors


@handle_errors
def predict(
    model: Annotated[Path, typer.Argument(help="A .keras or .tflite model.")],
    source: Annotated[Path, typer.Option(help="An image, or a folder of images (a dataset's images/).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write annotations/ "
                                                                "(and instances/, overlays/) to.")],
    output_index: ro.OutputIndex = None,
    overlay: Annotated[bool, typer.Option("--overlay", help="Also write overlays/NAME.jpg.")] = False,
    instances: Annotated[Optional[str], typer.Option(
        help="components: connected-component instances of a semantic model; off: none "
             "(default: an instance model's own).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for a .tflite.")] = None,
) -> None:
    """Predict every image: OUT/annotations/NAME.png (class ids at the image's size),
    OUT/instances/NAME.png (16-bit class_id*1000+k) for instance models; evaluate reads OUT."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from edgeseg.verify.predict_folder import predict_folder

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("predicting", total=None)
        r = predict_folder(model, source, output, output_index, overlay, instances, threads,
                           progress=lambda d, n: bar.update(task, completed=d, total=n))
    what = ["annotations/"] + ([f"instances/ ({r.instances})"] if r.instances else []) + \
        (["overlays/"] if r.overlays else [])
    console.print(f"Wrote {r.count} predictions to {r.out}: {', '.join(what)} in {r.seconds:.1f} s.",
                  soft_wrap=True)
    if r.instances:
        counts = ", ".join(f"{n} {name}" for name, n in r.objects.items()) or "none"
        console.print(f"objects ({r.instances}): {counts}", soft_wrap=True)
    console.print(f"Next: edgeseg evaluate {r.out} --data DATASET"
                  + (" --task instance" if r.instances else ""), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("predict", help="Run a model over images; write class masks (and instances) as a dataset.")(predict)
