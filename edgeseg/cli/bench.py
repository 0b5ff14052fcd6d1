"""``edgeseg bench``: invoke latency like benchmark_model, optionally the whole frame pipeline."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgeseg.cli import _run_options as ro
from edgeseg.cli._common import console, err_console, handle_errors
from edgeseg.errors import EdgesegError


def _table(results: list[Any]) -> Any:
    """Metrics down, models across (fits a terminal), with a ratio row against the first."""
    from rich.table import Table

    first = results[0]
    table = Table(title=f"{first.runtime} {first.runtime_version}: invoke latency in ms")
    table.add_column("")
    for r in results:
        table.add_column(Path(r.model).name, justify="right")
    rows: list[tuple[str, Any]] = [
        ("delegate", lambda r: r.delegate), ("threads", lambda r: r.threads),
        ("delegated nodes", lambda r: f"{r.delegated_nodes}/{r.total_nodes}"
         if r.total_nodes else "?"),
        ("init ms", lambda r: f"{r.init_ms:.1f}"), ("runs", lambda r: r.runs),
        ("min", lambda r: f"{r.min_ms:.2f}"), ("mean", lambda r: f"{r.mean_ms:.2f}"),
        ("p50", lambda r: f"{r.p50_ms:.2f}"), ("p90", lambda r: f"{r.p90_ms:.2f}"),
        ("p99", lambda r: f"{r.p99_ms:.2f}"), ("std", lambda r: f"{r.std_ms:.2f}"),
        ("FPS", lambda r: f"{r.fps:.1f}"), ("peak RSS MiB", lambda r: f"{r.peak_rss_mb:.0f}"),
    ]
    if len(results) > 1:
        rows.append(("mean vs first", lambda r: f"{r.mean_ms / first.mean_ms:.2f}x"))
    rows[:0] = [("input", lambda r: r.input), ("output", lambda r: r.output)]
    if all(r.pipeline for r in results):
        # End to end: on a Pi the argmax/softmax post-processing is a larger share.
        rows += [("pipeline FPS", lambda r: f"{r.pipeline['fps']:.1f}"),
                 ("postprocess ms", lambda r: f"{r.pipeline['stage_ms']['postprocess']:.2f}")]
        if any("group_ms" in r.pipeline for r in results):  # instance models: part of postprocess
            rows.append(("  of it grouping ms", lambda r: f"{r.pipeline['group_ms']:.2f}"
                         if "group_ms" in r.pipeline else "—"))
        if len(results) > 1:
            rows.append(("pipeline FPS vs first",
                         lambda r: f"{r.pipeline['fps'] / first.pipeline['fps']:.2f}x"))
    for name, cell in rows:
        table.add_row(name, *(str(cell(r)) for r in results))
    return table


def _pipeline_lines(r: Any) -> str:
    p = r.pipeline
    stages = ", ".join(f"{k} {v:.2f}" for k, v in p["stage_ms"].items())
    if p.get("note"):
        return f"{Path(r.model).name} pipeline on {p['source']}: {p['note']}."
    return (f"{Path(r.model).name} pipeline on {p['source']}: {p['frames']} frames, "
            f"{p['fps']:.1f} FPS, efficiency {p['efficiency']:.0%} of raw invoke FPS "
            f"({p['efficiency_in_run']:.0%} of this run's invoke FPS); "
            f"per stage (ms): {stages}; {p['dropped']} dropped")


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def _plot(results: list[Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        from edgeseg.errors import EdgesegError

        raise EdgesegError("--plot needs matplotlib: pip install matplotlib") from e
    from edgeseg.atomic import atomic_path

    names = [Path(r.model).name for r in results]
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(results)), 3.5))
    ax.bar(names, [r.mean_ms for r in results], color="#4c72b0", label="mean")
    ax.errorbar(names, [r.mean_ms for r in results], fmt="none", ecolor="black",
                yerr=[[r.mean_ms - r.min_ms for r in results],
                      [max(0.0, r.p99_ms - r.mean_ms) for r in results]], capsize=4)
    ax.set_ylabel("invoke ms (mean; min to p99)")
    ax.set_title(f"{results[0].runtime} {results[0].runtime_version}, "
                 f"{results[0].threads} threads")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


@handle_errors
def bench(
    models: Annotated[list[Path], typer.Argument(help="One or more .tflite models.")],
    runs: Annotated[int, typer.Option(help="Timed invokes (at least).")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed invokes first.")] = 5,
    min_seconds: Annotated[float, typer.Option(help="Keep timing for at least this long.")] = 0.0,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all).")] = None,
    delegate: Annotated[Optional[str], typer.Option(
        help="cpu (XNNPACK), edgetpu, gpu, or a delegate library path.")] = None,
    fallback: Annotated[bool, typer.Option(help="Run on the CPU if the delegate fails.")] = False,
    pipeline: Annotated[Optional[str], typer.Option(
        help="Also time the frame pipeline on this video/folder/URL/camera.",
        metavar="SOURCE")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Save a bar chart (.png, .svg or .pdf).")] = None,
    output_index: ro.OutputIndex = None,
    estimate: Annotated[Optional[str], typer.Option(
        help="Instead of timing, ESTIMATE the latency on a pi4, pi5 (or x86, the Xeon the cost model was "
             "timed on) from the cost model (instant; edgeseg/device/estimate.py says how). --threads "
             "defaults to 4 then.")] = None,
) -> None:
    """Benchmark .tflite models: latency percentiles, FPS, init time, memory, delegate nodes."""
    import warnings

    if estimate is not None:
        _estimate(models, estimate, threads or 4, as_json)
        return

    from edgeseg.runtime.bench import bench_model, bench_pipeline

    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        raise EdgesegError(f"--plot {plot}: the chart is an image; end the name in "
                           f"{', '.join(PLOT_SUFFIXES)} (bench.png, say).")
    results = []
    for model in models:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = bench_model(model, threads, delegate, fallback, runs, warmup, min_seconds,
                            output_index)
            if pipeline:
                r = replace(r, pipeline=bench_pipeline(model, pipeline, r.mean_ms, threads,
                                                       delegate, fallback, runs, warmup,
                                                       output_index))
        for w in caught:
            err_console.print(f"warning: {w.message}", markup=False, soft_wrap=True)
        results.append(r)
    if plot:
        _plot(results, plot)
    if as_json:
        for r in results:  # the text output says it in the pipeline line
            if r.pipeline and r.pipeline.get("note"):
                err_console.print(f"warning: {Path(r.model).name} pipeline on "
                                  f"{r.pipeline['source']}: {r.pipeline['note']}",
                                  markup=False, soft_wrap=True)
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return
    console.print(_table(results))
    for r in results:
        if r.accelerator:
            console.print(f"{Path(r.model).name}: {r.accelerator}", markup=False, soft_wrap=True)
        if r.pipeline:
            console.print(_pipeline_lines(r), soft_wrap=True)
    if plot:
        console.print(f"chart saved to {plot}")


def _estimate(models: list[Path], device: str, threads: int, as_json: bool) -> None:
    from edgeseg.cli.plan import estimate_table
    from edgeseg.device.estimate import estimate, op_rows, per_op
    from edgeseg.tflite import read_tflite

    results = [(m, estimate(m, device, threads)) for m in models]
    if as_json:
        typer.echo(json.dumps([{"model": str(m), "device": e.device, "threads": e.threads,
                                "instructions": round(e.instructions), "ms": round(e.ms, 2),
                                "ms_low": round(e.ms_low, 2), "ms_high": round(e.ms_high, 2),
                                "by_kind": {k: round(v) for k, v in e.by_kind.items()}, "method": e.method}
                               for m, e in results], indent=2))
        return
    title = f"ESTIMATED invoke latency on a {device}, {threads} thread(s) (not measured)"
    console.print(estimate_table(title, [(m.name, e) for m, e in results]))
    console.print(f"How: {results[0][1].method}.", soft_wrap=True)
    for m, e in results:
        kinds = ", ".join(f"{k} {v / e.instructions:.0%}" for k, v in sorted(e.by_kind.items(), key=lambda kv: -kv[1])
                          if v / e.instructions >= 0.005)
        console.print(f"{m.name}: instructions by op kind (est.): {kinds}", soft_wrap=True)
        rows = op_rows(read_tflite(m))
        top = sorted(zip(per_op(rows, device), rows), key=lambda t: -t[0])[:5]
        console.print("  costliest ops (est.): " + "; ".join(
            f"{r.name} {r.cin}→{r.cout} taps {r.taps} at {r.pixels:,} px: {n / 1e6:.1f} M" if r.cout else
            f"{r.name} {r.elements:,} elements: {n / 1e6:.1f} M" for n, r in top), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("bench", help="Benchmark .tflite models (latency, FPS, memory, pipeline).")(bench)
