"""``edgeseg demo``: the main job in one command."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli._common import batch_progress, console, handle_errors


@handle_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for data, models, video and report.")] = Path("edgeseg-demo"),
    train_minutes: Annotated[float, typer.Option(help="Training time budget in minutes.")] = 9.0,
    train_images: Annotated[int, typer.Option(help="Synthetic training images.")] = 1600,
    preset: Annotated[str, typer.Option(help="Model preset: realtime or seed.")] = "realtime",
    alpha: Annotated[Optional[float], typer.Option(
        help="MobileNet width, overriding the preset's.", show_default=False)] = None,
    backbone_weights: Annotated[str, typer.Option(
        help="'imagenet' (Keras' cache or download; from scratch when offline), 'none' or a .h5.")
    ] = "imagenet",
) -> None:
    """Synthesize data, train, convert (float32/fp16/int8), compare, bench, run on video, report."""
    from rich.table import Table

    from edgeseg.config import preset as check_preset
    from edgeseg.demo import DemoConfig, run_demo
    from edgeseg.demo.report import FLOAT_NOTE, HEADER, summary_rows

    check_preset(preset)  # an unknown name fails before any step runs
    cfg = DemoConfig(out=str(out), train_minutes=train_minutes, train_images=train_images,
                     preset=preset, alpha=alpha, backbone_weights=backbone_weights)
    s = run_demo(cfg, log=lambda m: console.print(m, markup=False), progress=batch_progress)
    t = Table(title="edgeseg demo: one model, three formats")
    for h in HEADER:
        t.add_column(h, justify="right")
    rows = summary_rows(s)
    for r in rows:
        t.add_row(*r)
    console.print(t)
    if any(cell.endswith("*") for r in rows for cell in r):
        console.print(FLOAT_NOTE, markup=False, soft_wrap=True)
    from edgeseg.demo.confidence import explain

    clip = explain(s["run"].get("confidence"))
    if clip:
        console.print(f"about the clip: {clip}", markup=False, soft_wrap=True)
    console.print(f"report: {s['report'][1]} (and {Path(s['report'][0]).name}); "
                  f"overlay video: {s['run']['video']}", markup=False, soft_wrap=True)
    int8 = s["tflite"]["int8"]
    console.print("next:", markup=False)
    q = shlex.quote
    keras, tpu = q(str(out / "model.keras")), q(str(out / "model_edgetpu.tflite"))
    for cmd in (f"edgeseg run {q(str(int8))} --camera 0", f"edgeseg inspect {q(str(int8))}",
                f"edgeseg convert {keras} --target edgetpu -o {tpu}",
                f"edgeseg bundle {q(str(int8))} -o {q(str(out / 'pi-bundle'))}"):
        # Plain print: Rich would wrap a long path at the terminal width, and these lines
        # are meant to be copied and pasted.
        print(f"  {cmd}")


def register(app: typer.Typer) -> None:
    app.command("demo", help="The whole toolkit on synthetic scenes: train, convert, "
                             "compare, bench, run, report.")(demo)
