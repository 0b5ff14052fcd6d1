"""``edgeseg compare``: float vs quantized, as numbers and a gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli import _data_options as do
from edgeseg.cli import _run_options as ro
from edgeseg.cli._common import console, handle_errors


def report_compare(float_model: Path, quant_model: Path, data: Path, max_miou_drop: Optional[float],
                   layers: bool, as_json: bool, limit: Optional[int],
                   output: Optional[int] = None, encoding: object = None,
                   delegate: Optional[str] = None, fallback: bool = False) -> None:
    """Compare, print, and exit 1 when the mIoU drop exceeds the gate."""
    from rich.progress import Progress
    from rich.table import Table

    from edgeseg.verify.compare import compare

    with Progress(console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task("comparing", total=None)
        rep = compare(float_model, quant_model, data, limit, layers,
                      progress=lambda d, n: bar.update(task, completed=d, total=n), output=output,
                      encoding=encoding, delegate=delegate, fallback=fallback)
    failed = not rep.passes(max_miou_drop)
    if as_json:
        typer.echo(json.dumps({**rep.to_dict(), "max_miou_drop": max_miou_drop,
                               "passed": not failed}))
    else:
        t = Table(title=f"{quant_model.name} vs {float_model.name} on {rep.images} images")
        t.add_column("")
        t.add_column("value", justify="right")
        t.add_row("pixel agreement", f"{100 * rep.pixel_agreement:.2f} %")
        t.add_row("float mIoU", f"{rep.float_metrics.mean_iou:.4f}")
        t.add_row("quantized mIoU", f"{rep.quant_metrics.mean_iou:.4f}")
        t.add_row("mIoU drop", f"{rep.miou_drop:+.2f} points")
        if rep.prob_max_error is not None:
            t.add_row("prob. error max / mean", f"{rep.prob_max_error:.4f} / {rep.prob_mean_error:.5f}")
        for name, f in zip(rep.labels, rep.flip_rate):
            t.add_row(f"flip rate: {name}", f"{100 * f:.2f} %")
        console.print(t)
        if rep.accelerator:
            console.print(f"{quant_model.name}: {rep.accelerator}", markup=False, soft_wrap=True)
        if rep.layers:
            lt = Table(title="layers by quantization error (RMSE / scale; ~0.3 is rounding noise)")
            for col in ("layer", "op", "RMSE/scale", "max |err|"):
                lt.add_column(col)
            for r in rep.layers:
                lt.add_row(r["layer"], r["op"], f"{r['rmse_over_scale']:.3f}",
                           f"{r['max_abs_error']:.4f}")
            console.print(lt)
            console.print(rep.layers_calibration, markup=False, soft_wrap=True)
    if _is_instance(quant_model):
        _report_heads(float_model, quant_model, data, as_json, limit, encoding)
    if failed:
        worst = f"; worst layer {rep.layers[0]['layer']}" if rep.layers else ""
        console.print(
            f"[bold red]FAIL[/] mIoU drop {rep.miou_drop:.2f} points > {max_miou_drop}{worst}. "
            "Try more calibration images (--calib-count), or keep the worst layers in float: "
            "edgeseg convert ... --int8 --keep-float LAYER[,LAYER]", soft_wrap=True)
        raise typer.Exit(1)
    if max_miou_drop is not None and not as_json:
        console.print(f"[green]PASS[/] mIoU drop {rep.miou_drop:.2f} ≤ {max_miou_drop} points")


@handle_errors
def compare(
    float_model: Annotated[Path, typer.Argument(help="Float reference (.keras or .tflite).")],
    quant_model: Annotated[Path, typer.Argument(help="Quantized .tflite.")],
    data: Annotated[Path, typer.Option(help="Dataset with ground truth (val/ split when present).")],
    max_miou_drop: Annotated[Optional[float], typer.Option(
        help="Gate: exit 1 when mIoU drops more than this many points.")] = None,
    layers: Annotated[bool, typer.Option("--layers", help="Rank layers by quantization error.")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Compare only the first N images.")] = None,
    output_index: ro.OutputIndex = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    delegate: Annotated[Optional[str], typer.Option(
        help="Where QUANT_MODEL runs (cpu, edgetpu, gpu or a delegate .so); the reference "
             "stays on the CPU, so `compare m.tflite m.tflite --delegate gpu` checks the GPU.")]
    = None,
    fallback: Annotated[bool, typer.Option(help="Run on the CPU if the delegate fails.")] = False,
    ignore_index: do.IgnoreIndex = 255,
    binary: do.Binary = False,
    mask_colors: do.MaskColors = None,
    old_output: ro.OldOutput = None,
) -> None:
    """Compare a quantized model with its float source: agreement, mIoU drop, layer errors."""
    ro.refuse_old_output(old_output)
    report_compare(float_model, quant_model, data, max_miou_drop, layers, as_json, limit,
                   output_index,
                   do.encoding(ignore_index, binary, mask_colors, data), delegate, fallback)


def _is_instance(model: Path) -> bool:
    from edgeseg.config import read_sidecar

    side = read_sidecar(model) or {}
    return bool((side.get("tflite") or {}).get("instance"))


def _report_heads(float_model: Path, quant_model: Path, data: Path, as_json: bool,
                  limit: Optional[int], encoding: object) -> None:
    """The instance heads of both models compared, and the PQ drop."""
    from rich.table import Table

    from edgeseg.verify.compare_instances import compare_heads

    r = compare_heads(float_model, quant_model, data, limit, encoding)  # type: ignore[arg-type]
    if as_json:
        typer.echo(json.dumps({"instance_heads": r.to_dict()}))
        return
    t = Table(title=f"instance heads, {quant_model.name} vs {float_model.name} ({r.images} images)")
    t.add_column("")
    t.add_column("value", justify="right")
    t.add_row("class agreement", f"{100 * r.class_agreement:.2f} %")
    t.add_row("centre heat error mean / max", f"{r.center_mae:.4f} / {r.center_max_error:.4f}")
    t.add_row("centres kept (within 2 px)", f"{100 * r.center_recall:.1f} %")
    t.add_row("offset error mean / p95 (output px)", f"{r.offset_mae_px:.3f} / {r.offset_p95_px:.3f}")
    if r.offset_scale_px:
        t.add_row("offset quantization step (px)", f"{r.offset_scale_px:.3f}")
    t.add_row("PQ things float / quantized", f"{r.pq_float:.4f} / {r.pq_quant:.4f}")
    t.add_row("PQ drop", f"{r.pq_drop:+.2f} points")
    console.print(t)


def register(app: typer.Typer) -> None:
    app.command("compare", help="Float vs quantized: pixel agreement, mIoU drop, per-layer "
                                "error; a gate with --max-miou-drop.")(compare)
