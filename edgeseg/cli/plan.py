"""``edgeseg plan``: presets × sizes × alphas that reach a frame rate on a Pi, by the cost model."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from edgeseg.cli._common import console, handle_errors


def estimate_table(title: str, rows: list[tuple[str, Any]], notes: list[str] | None = None) -> Any:
    """A Rich table of (label, Estimate) rows: instructions, ms with its range, fps (and a notes column)."""
    from rich.table import Table

    table = Table(title=title)
    unit = "CPU µs" if rows and rows[0][1].device == "x86" else "instructions (M, one core)"
    for col in ("", unit, "est. ms", "est. range ms", "est. fps"):
        table.add_column(col, justify="right" if col else "left")
    if notes is not None:
        table.add_column("accuracy measured")
    for i, (label, e) in enumerate(rows):
        cells = [label, f"{e.instructions / 1e6 if unit != 'CPU µs' else e.instructions / 1e3:.1f}", f"{e.ms:.1f}",
                 f"{e.ms_low:.1f}–{e.ms_high:.1f}", f"{e.fps:.1f}"]
        table.add_row(*cells, *([notes[i]] if notes is not None else []))
    return table


@handle_errors
def plan_command(
    device: Annotated[str, typer.Option(
        help="pi4 (Cortex-A72), pi5 (Cortex-A76) or x86 (the Xeon the x86 model was timed on).")],
    fps: Annotated[float, typer.Option(help="Frames per second the model must reach (estimated).")],
    threads: Annotated[int, typer.Option(help="Interpreter threads on the device.")] = 4,
    classes: Annotated[int, typer.Option("--classes", "-c", help="Classes, background included.")] = 2,
    sizes: Annotated[Optional[str], typer.Option(
        help="Input sizes to consider (H = W), comma-separated multiples of 32.")] = None,
) -> None:
    """List the presets × input sizes × alphas whose estimated fps on the device reaches --fps."""
    from edgeseg.device.plan import SIZES, plan

    sizes_t = tuple(int(s) for s in sizes.split(",")) if sizes else SIZES
    reach, best = plan(device, fps, threads, classes, sizes_t)
    if not reach:
        console.print(f"Nothing reaches {fps:g} fps on {device} with {threads} thread(s) by the estimate; "
                      "try fewer classes, more threads, or a lower --fps.")
        raise typer.Exit(1)
    title = (f"{device}, {threads} thread(s), {classes} classes: configurations estimated at ≥ {fps:g} fps "
             "(ESTIMATES, not measurements)")
    table = estimate_table(title, [(f"{c.preset} α{c.alpha:g} {c.size}×{c.size}", c.estimate) for c in reach],
                           [c.measured for c in reach])
    console.print(table)
    console.print(f"How: {reach[0].estimate.method}.", soft_wrap=True)
    console.print(f"Best: {best.preset} alpha {best.alpha:g} at {best.size}×{best.size} "
                  f"(est. {best.estimate.ms:.1f} ms, {best.estimate.fps:.0f} fps).", soft_wrap=True)
    console.print("Accuracy: measured only where the column says (benchmarks/RESULTS.md §6b/§6c, README); "
                  "wider alpha and larger input are expected to be more accurate, at the cost shown.", soft_wrap=True)
    console.print(f"Make it:\n  {best.build_command}\n  {best.train_command}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("plan", help="Presets × sizes × alphas that reach an fps on a Pi (estimated).")(plan_command)
