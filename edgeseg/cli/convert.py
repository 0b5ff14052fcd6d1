"""``edgeseg convert``: .keras -> .tflite (float32, float16, dynamic-range, int8)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli._common import console, handle_errors


@handle_errors
def convert(
    model: Annotated[Path, typer.Argument(
        help="A .keras model from edgeseg build/train, or a keras_segmentation checkpoint "
             "(checkpoints/NAME, NAME.N or .h5; imported first).")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output",
                                                   help="The .tflite to write.")] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Full-integer int8 (calibrated).")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="float16 weights (GPU delegate).")] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic-range int8 weights.")] = False,
    io: Annotated[str, typer.Option(help="int8 I/O tensor type: uint8, int8 or float32.")] = "uint8",
    head: Annotated[Optional[str], typer.Option(
        help="softmax, logits or argmax (uint8 class mask); default softmax "
             "(logits for --target edgetpu).")] = None,
    target: Annotated[str, typer.Option(help="cpu, gpu (-> fp16) or edgetpu (-> int8).")] = "cpu",
    calib: Annotated[Optional[Path], typer.Option(
        help="Calibration images (default: the set shipped with edgeseg, calibration/).")] = None,
    calib_count: Annotated[int, typer.Option(help="Calibration images to sample.")] = 200,
    keep_float: Annotated[Optional[str], typer.Option(
        help="Layers to leave in float, comma-separated (selective quantization).")] = None,
    upsampling: Annotated[str, typer.Option(
        help="auto (the target's), concat_reshape (CONCATENATION + RESHAPE, run by XNNPACK), "
             "resize (RESIZE_NEAREST_NEIGHBOR) or tile (UpSampling2D).")] = "auto",
    verify: Annotated[Optional[Path], typer.Option(
        help="After an int8 conversion, compare against float on this dataset.")] = None,
    max_miou_drop: Annotated[float, typer.Option(
        help="With --verify: fail when mIoU drops more than this (points, 0-100).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the calibration sample.")] = 0,
) -> None:
    """Convert a .keras model to .tflite with a JSON sidecar and embedded TFLite metadata."""
    from rich.progress import Progress

    from edgeseg.convert.quantize import ConvertConfig
    from edgeseg.convert.quantize import convert as run_convert

    ccfg = ConvertConfig.from_options(
        int8, fp16, dynamic, upsampling, keep_float, verify is not None, io=io, head=head,
        target=target, calib=str(calib) if calib else None, calib_count=calib_count, seed=seed)
    out = output or model.with_name(f"{model.stem}_{ccfg.mode}.tflite")
    from edgeseg.model.keras_segmentation import import_keras_segmentation, is_keras_segmentation

    if is_keras_segmentation(model):
        # The float .keras is kept beside the output: `compare` and `evaluate` need it.
        imported = out.with_name(f"{model.stem}.keras")
        import_keras_segmentation(model, imported, log=lambda s: console.print(s, markup=False))
        console.print(f"converting the imported model {imported}", markup=False)
        model = imported
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("converting", total=None)
        result = run_convert(
            model, out, ccfg, log=lambda s: console.print(s, markup=False),
            progress=lambda stage, d, n: bar.update(task, description=stage, completed=d, total=n))
    io_info = result.info["tflite"]
    console.print(f"input {io_info['input']['shape']} {io_info['input']['dtype']}, "
                  f"output {io_info['output']['shape']} {io_info['output']['dtype']} "
                  f"[{result.seconds:.1f}s]")
    if verify is not None:
        from edgeseg.cli.compare import report_compare

        report_compare(model, out, verify, max_miou_drop=max_miou_drop, layers=False,
                       as_json=False, limit=None)


def register(app: typer.Typer) -> None:
    app.command("convert", help="Convert .keras to .tflite (float32/fp16/dynamic/int8) "
                                "with metadata.")(convert)
