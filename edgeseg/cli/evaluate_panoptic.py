"""``edgeseg evaluate --task instance`` and ``evaluate PREDICTIONS_DIR``: mIoU beside PQ/SQ/RQ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from edgeseg.cli._common import console


def panoptic_table(ev: Any, title: str) -> Any:
    """A Rich table of PQ/SQ/RQ per class, then things, stuff and all."""
    from rich.table import Table

    t = Table(title=title)
    for col in ("class", "kind", "PQ", "SQ", "RQ", "TP", "FP", "FN"):
        t.add_column(col, justify="left" if col in ("class", "kind") else "right")
    for c, v in ev.panoptic.per_class.items():
        t.add_row(ev.labels[c], "thing" if v["thing"] else "stuff", f"{v['pq']:.4f}",
                  f"{v['sq']:.4f}", f"{v['rq']:.4f}", str(v["tp"]), str(v["fp"]), str(v["fn"]))
    t.add_section()
    p = ev.panoptic
    for name, q in (("things", (p.pq_things, p.sq_things, p.rq_things)),
                    ("stuff", (p.pq_stuff, p.sq_stuff, p.rq_stuff)), ("all", (p.pq, p.sq, p.rq))):
        t.add_row(name, "", *("—" if v != v else f"{v:.4f}" for v in q), "", "", "")
    return t


def evaluate_panoptic(model: Path, data: Path, task: str, limit: Optional[int],
                      output_index: Optional[int], enc: Any, instances: Optional[str],
                      as_json: bool) -> None:
    from rich.progress import Progress

    from edgeseg.cli.evaluate import metrics_table
    from edgeseg.verify.evaluate_instances import evaluate_any

    with Progress(console=console, transient=True, disable=as_json) as bar:
        task_id = bar.add_task("evaluating", total=None)
        ev = evaluate_any(model, data, task, limit,
                          progress=lambda d, n: bar.update(task_id, completed=d, total=n),
                          output=output_index, encoding=enc, instances=instances)
    if as_json:
        typer.echo(json.dumps(ev.to_dict()))
        return
    if ev.predictor is not None and hasattr(ev.predictor, "segmenter"):
        from edgeseg.runtime.app import describe

        console.print(describe(ev.predictor.segmenter), markup=False, soft_wrap=True)
    console.print(metrics_table(ev.metrics, ev.labels, f"{model.name} on {data}"))
    if ev.panoptic is not None:
        console.print(panoptic_table(ev, f"panoptic quality (instances: {ev.instances}; "
                                         "Kirillov et al. 2019, match at IoU > 0.5)"))
        if ev.instances == "components":
            console.print("instances are connected components of the class mask: touching objects "
                          "of one class count as one.", soft_wrap=True)
