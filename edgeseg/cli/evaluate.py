"""``edgeseg evaluate``: mIoU and friends of a .keras or .tflite model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli import _data_options as do
from edgeseg.cli import _run_options as ro
from edgeseg.cli._common import console, handle_errors
from edgeseg.errors import EdgesegError


def metrics_table(metrics: object, labels: tuple[str, ...], title: str) -> object:
    """A Rich table of per-class IoU plus the summary scores."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column("class")
    t.add_column("IoU", justify="right")
    for name, iou in zip(labels, metrics.per_class_iou):  # type: ignore[attr-defined]
        t.add_row(name, "—" if iou != iou else f"{iou:.4f}")
    t.add_section()
    t.add_row("mean IoU", f"{metrics.mean_iou:.4f}")  # type: ignore[attr-defined]
    t.add_row("freq.-weighted IoU", f"{metrics.fw_iou:.4f}")  # type: ignore[attr-defined]
    t.add_row("pixel accuracy", f"{metrics.pixel_accuracy:.4f}")  # type: ignore[attr-defined]
    return t


@handle_errors
def evaluate(
    model: Annotated[Path, typer.Argument(help="A .keras or .tflite model, or the output folder of "
                                               "edgeseg predict.")],
    data: Annotated[Path, typer.Option(help="Dataset folder (uses its val/ split when present).")],
    limit: Annotated[Optional[int], typer.Option(help="Score only the first N images.")] = None,
    output_index: ro.OutputIndex = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    delegate: Annotated[Optional[str], typer.Option(
        help="Where a .tflite runs: cpu (XNNPACK), edgetpu, gpu, or a delegate library path.")]
    = None,
    fallback: Annotated[bool, typer.Option(help="Run on the CPU if the delegate fails.")] = False,
    ignore_index: do.IgnoreIndex = 255,
    binary: do.Binary = False,
    mask_colors: do.MaskColors = None,
    old_output: ro.OldOutput = None,
    task: Annotated[str, typer.Option(
        help="semantic, or instance: also PQ/SQ/RQ (things and stuff) against DATA/instances/.")] = "semantic",
    instances: Annotated[Optional[str], typer.Option(
        help="components: connected-component instances of a semantic model.")] = None,
) -> None:
    """Score a model: per-class IoU, mIoU, fwIoU, pixel accuracy, confusion matrix (and PQ)."""
    from rich.progress import Progress

    from edgeseg.verify.evaluate import evaluate as run_eval

    ro.refuse_old_output(old_output)
    enc = do.encoding(ignore_index, binary, mask_colors, data)
    if task != "semantic" or model.is_dir() or instances:
        from edgeseg.cli.evaluate_panoptic import evaluate_panoptic

        if delegate not in (None, "", "cpu", "xnnpack"):
            raise EdgesegError(f"--delegate {delegate} applies to semantic scoring of a .tflite; "
                               "drop it with --task instance, --instances or a folder.")
        return evaluate_panoptic(model, data, task, limit, output_index, enc, instances, as_json)
    with Progress(console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task("evaluating", total=None)
        metrics, pred = run_eval(model, data, limit,
                                 progress=lambda d, n: bar.update(task, completed=d, total=n),
                                 output=output_index, encoding=enc, delegate=delegate,
                                 fallback=fallback)
    labels = tuple(pred.labels)
    if as_json:
        typer.echo(json.dumps(metrics.to_dict(labels)))
        return
    if hasattr(pred, "segmenter"):  # say how the .tflite was fed and where that came from
        from edgeseg.runtime.app import describe

        console.print(describe(pred.segmenter), markup=False, soft_wrap=True)
        if pred.segmenter.describe()["accelerator"]:
            console.print(pred.segmenter.describe()["accelerator"], markup=False, soft_wrap=True)
    console.print(metrics_table(metrics, labels, f"{model.name} on {data}"))
    from rich.table import Table

    cm = Table(title="confusion (rows: truth, columns: predicted)")
    cm.add_column("")
    for name in labels:
        cm.add_column(name, justify="right")
    for name, row in zip(labels, metrics.confusion):
        cm.add_row(name, *(f"{v:,}" for v in row))
    console.print(cm)


def register(app: typer.Typer) -> None:
    app.command("evaluate", help="Score a .keras or .tflite model (mIoU, per-class IoU, ...).")(evaluate)
