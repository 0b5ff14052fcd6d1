"""``edgeseg inspect``: what a .tflite holds and where it runs (TensorFlow-free, runs on a Pi)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg.cli._common import console, handle_errors


def _tensor_table(title: str, tensors: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    from edgeseg.sizes import hw
    from edgeseg.verify.inspect import quantization_text

    t = Table(title=title, title_justify="left")
    for col in ("name", "shape", "size", "dtype", "quantization"):
        t.add_column(col)
    for d in tensors:
        shape = list(d["shape"])
        # [1, H, W, C] and [1, H, W]: an image or a label map; other shapes have no size
        size = hw(shape[1], shape[2]) if len(shape) in (3, 4) and shape[0] == 1 else "-"
        t.add_row(d["name"], str(shape), size, d["dtype"], quantization_text(d))
    return t


def _metadata_table(meta: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title="metadata", title_justify="left", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    if meta.get("error"):
        from rich.markup import escape

        t.add_row("TFLite metadata", f"[red]error[/]: {escape(meta['error'])}")
        return t
    if not meta["has_metadata"] and not meta["associated_files"]:
        t.add_row("TFLite metadata", "none (MediaPipe needs it for float models)")
        return t
    t.add_row("TFLite metadata", f"yes, parser {meta.get('min_parser_version', '-')}"
              if meta["has_metadata"] else "no (packed files only)")
    for key in ("name", "description", "version"):
        if meta.get(key):
            t.add_row(key, str(meta[key]))
    t.add_row("labels", ", ".join(meta["labels"]) or "-")
    if meta["mean"] is not None:
        t.add_row("normalization", f"(pixel - {meta['mean']}) / {meta['std']}")
    if meta.get("input", {}).get("color_space"):
        t.add_row("input", f"{meta['input']['color_space']}: {meta['input'].get('description')}")
    if meta.get("output"):
        t.add_row("output", str(meta["output"].get("description")))
    tfl = (meta["edgeseg"] or {}).get("tflite", {})
    if tfl:
        t.add_row("edgeseg", f"mode {tfl.get('mode', '?')}, head {tfl.get('head', '?')}, "
                  f"target {tfl.get('target', '?')}")
    t.add_row("packed files", ", ".join(meta["associated_files"]) or "-")
    return t


def _targets_table(targets: dict[str, dict[str, Any]], edgetpu: dict[str, Any]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    from edgeseg.convert.targets import TARGET_TITLES

    t = Table(title="per-target compatibility", title_justify="left")
    for col in ("target", "ops supported", "runs", "not supported"):
        t.add_column(col)
    for name, r in targets.items():
        ok = r["supported"] == r["total"]
        style = "green" if ok else ("yellow" if r["supported"] else "red")
        missing = ", ".join(f"{k}×{v}" if v > 1 else k for k, v in r["unsupported_ops"].items())
        t.add_row(TARGET_TITLES[name], f"[{style}]{r['supported']}/{r['total']}[/]",
                  str(r["partitions"]), missing or "-")
    t.caption = ("runs: stretches of consecutive supported ops, one delegate kernel each "
                 "(the GPU delegate takes only the largest by default); the GPU row is the "
                 "TFLite GPU delegate's op list.\n"
                 f"Edge TPU pre-flight: {escape(edgetpu['summary'])}.")
    return t


@handle_errors
def inspect(
    model: Annotated[Path, typer.Argument(help="A .tflite model.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ops: Annotated[bool, typer.Option("--ops", help="List every op with per-target support.")]
    = False,
    gpu: Annotated[bool, typer.Option(
        help="Ask LiteRT's GPU accelerator whether it runs the model whole (compiles it: "
             "seconds).")] = True,
) -> None:
    """Show a .tflite's tensors, quantization, ops, metadata and per-target compatibility."""
    from rich.markup import escape
    from rich.table import Table

    from edgeseg.verify.inspect import human_size, inspect_tflite

    info = inspect_tflite(model, gpu=gpu)
    if as_json:
        typer.echo(json.dumps(info))
        _metadata_error(model, info)
        return
    m = info["model"]
    console.print(f"[bold]{model}[/]: {human_size(m['size'])}, {m['ops']} ops")
    console.print(_tensor_table("inputs", m["inputs"]))
    console.print(_tensor_table("outputs", m["outputs"]))
    hist = Table(title="op histogram", title_justify="left")
    hist.add_column("op")
    hist.add_column("count", justify="right")
    for name, n in m["op_histogram"].items():
        hist.add_row(name, str(n))
    console.print(hist)
    console.print(_metadata_table(info["metadata"]))
    rt = info["runtime"]
    norm = (f"(pixel - {rt['mean']}) / {rt['std']}" if rt["mean"] is not None
            else "derived from the input tensor")
    console.print(f"the runtime feeds it: {rt['color']}, {rt['interpolation']} resize, {norm}; "
                  + "; ".join(f"{k} from {v}" for k, v in rt["sources"].items()),
                  markup=False, soft_wrap=True)
    console.print(_targets_table(info["targets"], info["edgetpu"]))
    if "gpu_accelerator" in info:  # what the accelerator itself says, beyond the op list
        console.print(info["gpu_accelerator"]["line"], markup=False, soft_wrap=True)
    if ops:
        detail = Table(title="ops", title_justify="left")
        for col in ("#", "op", "XNNPACK", "GPU", "Edge TPU"):
            detail.add_column(col)
        rows = zip(*(info["targets"][t]["ops"] for t in ("xnnpack", "gpu", "edgetpu")))
        for x, g, e in rows:
            # reasons cite their sources as [ver], [ops]…: text, not Rich markup
            cells = [("yes" if s["supported"] else f"[red]no[/]: {escape(s['reason'])}")
                     for s in (x, g, e)]
            detail.add_row(str(x["index"]), x["op"], *cells)
        console.print(detail)
    _metadata_error(model, info)


def _metadata_error(model: Path, info: dict[str, Any]) -> None:
    """A file whose TFLite metadata cannot be read fails inspect, after showing the rest."""
    error = info["metadata"].get("error")
    if error:
        typer.echo(f"error: {model}: its TFLite metadata could not be read ({error}); the "
                   "runtime would run it on defaults. Re-export it with its metadata, or write a "
                   "sidecar <model>.json.", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("inspect", help="Show a .tflite: tensors, quantization, ops, metadata, targets.")(
        inspect)
