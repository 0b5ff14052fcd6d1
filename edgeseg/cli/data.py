"""``edgeseg data check|import|synth``: check, import or synthesize a dataset folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgeseg.cli import _data_options as do
from edgeseg.cli._common import console, handle_errors

data_app = typer.Typer(no_args_is_help=True)

MAX_SHOWN = 40


def _progress():  # -> rich.progress.Progress
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)


def _rel(path: Path, root: Path) -> str:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return str(path)
    return str(path) if rel == Path() else str(rel)


@data_app.command("check")
@handle_errors
def check(
    folder: Annotated[Path, typer.Argument(help="Dataset folder: images/ + annotations/, "
                                                "or train/ and val/ laid out like that.")],
    classes: Annotated[Optional[int], typer.Option(
        "--classes", "-c", help="Classes, background included (default: the lines of labels.txt "
                                "or labelme's class_names.txt; 2 with --binary).",
    )] = None,
    ignore_index: do.IgnoreIndex = 255,
    binary: do.Binary = False,
    mask_colors: do.MaskColors = None,
) -> None:
    """Check pairing, readability, sizes and class ids; print the class balance."""
    from edgeseg.data.check import (
        check_dataset,
        classes_hint,
        conversion_note,
        count_pairs,
        frequency_table,
    )
    from edgeseg.errors import EdgesegError
    from edgeseg.labels import find_names_file, read_class_names

    enc = do.encoding(ignore_index, binary, mask_colors, folder)
    classes = do.binary_classes(binary, classes)
    names_file = find_names_file(folder, folder / "train")
    if classes is None and enc.colors and names_file is None:
        classes = len(enc.class_names)
    if classes is None:
        if names_file is None:
            raise EdgesegError(f"{folder} has no labels.txt (or labelme's class_names.txt); pass "
                               "--classes K (the number of classes, background included).")
        classes = len(read_class_names(names_file))
    with _progress() as bar:
        task = bar.add_task("checking", total=count_pairs(folder))
        result = check_dataset(folder, classes, progress=lambda n: bar.update(task, completed=n),
                               encoding=enc)
    for issue in result.issues[:MAX_SHOWN]:
        style = "bold red" if issue.level == "error" else "yellow"
        console.print(f"[{style}]{issue.level}:[/] {_rel(issue.path, folder)}: {issue.message}",
                      soft_wrap=True)
    if len(result.issues) > MAX_SHOWN:
        console.print(f"... and {len(result.issues) - MAX_SHOWN} more.")
    hint = classes_hint(result)
    if hint:
        console.print(f"hint: {hint}", markup=False, soft_wrap=True)
    note = conversion_note(result)
    if note:
        console.print(note, soft_wrap=True)
    if result.n_pairs:
        console.print(frequency_table(result))
    n_err, n_warn = len(result.errors), len(result.warnings)
    n_err += _check_instances(folder, result, enc)
    summary = (f"{result.n_pairs} pairs in {', '.join(_rel(f, folder) for f in result.folders)}, "
               f"{classes} classes: {n_err} error(s), {n_warn} warning(s).")
    if n_err:
        console.print(f"[bold red]FAILED[/] {summary}", soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[bold green]OK[/] {summary}", soft_wrap=True)


def _check_instances(folder: Path, result, enc) -> int:  # result: CheckResult; returns errors
    """Print what ``instances/`` holds (objects per class, thing classes) and where it disagrees."""
    from rich.table import Table

    from edgeseg.data.instances import INSTANCES_DIR, check_instances
    from edgeseg.data.readers import read_mask

    found = check_instances(result.folders, lambda p: read_mask(p, enc), enc.ignore_index)
    if found is None:
        return 0
    for path, why in found.problems[:MAX_SHOWN]:
        console.print(f"[bold red]error:[/] {_rel(path, folder)}: {why}", soft_wrap=True)
    if found.missing:
        shown = ", ".join(found.missing[:5]) + (", ..." if len(found.missing) > 5 else "")
        console.print(f"[bold red]error:[/] {len(found.missing)} class mask(s) without "
                      f"{INSTANCES_DIR}/NAME.png ({shown}); write one per mask or remove "
                      f"{INSTANCES_DIR}/.", soft_wrap=True)
    table = Table(title=f"Instances ({found.n_files} masks in {INSTANCES_DIR}/)")
    table.add_column("id", justify="right")
    table.add_column("class")
    table.add_column("objects", justify="right")
    table.add_column("kind")
    for i, name in enumerate(result.labels):
        n = found.instances.get(i, 0)
        table.add_row(str(i), name, f"{n:,}", "thing" if i in found.things else "stuff")
    console.print(table)
    things = ", ".join(result.labels[t] if t < len(result.labels) else str(t) for t in found.things)
    console.print(f"thing classes (hold objects class_id*1000+k): {things or 'none'}", soft_wrap=True)
    return len(found.problems) + (1 if found.missing else 0)


@data_app.command("synth")
@handle_errors
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to write.")],
    classes: Annotated[int, typer.Option("--classes", "-c",
                                         help="Classes, background included (2..8).")] = 4,
    count: Annotated[int, typer.Option(help="Image/mask pairs to write.")] = 200,
    height: Annotated[int, typer.Option(help="Image height.")] = 128,
    width: Annotated[int, typer.Option(help="Image width.")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 0,
    video: Annotated[Optional[Path], typer.Option(
        help="Also write an mp4 clip of moving objects here.")] = None,
    frames: Annotated[int, typer.Option(help="Frames in the clip.")] = 60,
    instances: Annotated[bool, typer.Option(
        "--instances", help="Scenes of touching same-class objects, with instances/NAME.png "
                            "(16-bit, class_id*1000+k); the clip then moves touching groups.")] = False,
) -> None:
    """Write a synthetic shapes dataset (and optionally a video clip)."""
    from edgeseg.data.synth import synthesize
    from edgeseg.data.synth_instances import synthesize_instances

    with _progress() as bar:
        task = bar.add_task("synthesizing", total=count)
        step = lambda n: bar.update(task, completed=n)  # noqa: E731
        if instances:
            report = synthesize_instances(out, classes, count, height, width, seed, step, video, frames)
        else:
            report = synthesize(out, n_classes=classes, count=count, height=height, width=width,
                                seed=seed, video=video, frames=frames, progress=step)
    shares = ", ".join(f"{n} {s:.0%}" for n, s in zip(report.labels, report.class_share))
    console.print(
        f"Wrote {report.count} image/mask pairs ({height}×{width} (H×W), {classes} classes) to "
        f"{out}/images and {out}/annotations{' (instances in ' + str(out) + '/instances)' if instances else ''}, "
        f"labels to {out}/labels.txt "
        f"in {report.seconds:.1f} s. Pixel shares: {shares}.", soft_wrap=True,
    )
    if report.video is not None:
        console.print(f"Wrote a {report.frames}-frame clip to {report.video}.", soft_wrap=True)


import_app = typer.Typer(no_args_is_help=True)
data_app.add_typer(import_app, name="import",
                   help="Convert a PASCAL VOC folder or COCO JSON to images/ + annotations/ + labels.txt.")


def _print_import(report) -> None:  # report: edgeseg.data.importers.ImportReport
    where = ", ".join(f"{n} pairs in {report.out / s if s else report.out}" for s, n in report.splits.items())
    console.print(f"Wrote {where}; {len(report.labels)} classes in {report.out / 'labels.txt'}.",
                  soft_wrap=True)
    for note in report.notes:
        console.print(f"note: {note}.", soft_wrap=True)
    if report.left_out:
        shown = ", ".join(f"{n} ({why})" for n, why in report.left_out[:MAX_SHOWN])
        more = f", ... and {len(report.left_out) - MAX_SHOWN} more" if len(report.left_out) > MAX_SHOWN else ""
        console.print(f"[yellow]left out {len(report.left_out)} image(s):[/] {shown}{more}", soft_wrap=True)
    console.print(f"Next: edgeseg data check {report.out}", soft_wrap=True)


def _run_import(run: Callable[..., Any], *args: Path) -> None:
    """Run one importer with a progress bar, then print its report."""
    with _progress() as bar:
        task = bar.add_task("importing", total=None)
        report = run(*args, progress=lambda d, n: bar.update(task, completed=d, total=n))
    _print_import(report)


@import_app.command("voc")
@handle_errors
def import_voc(
    folder: Annotated[Path, typer.Argument(help="VOC folder: JPEGImages/, SegmentationClass/, "
                                                "ImageSets/Segmentation/ (or VOCdevkit/ above it).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New dataset folder to write.")],
) -> None:
    """PASCAL VOC segmentation → train/ and val/ (ImageSets lists), palette indices as class ids."""
    from edgeseg.data.importers import import_voc as run

    _run_import(run, folder, out)


@import_app.command("coco")
@handle_errors
def import_coco(
    annotations: Annotated[Path, typer.Argument(help="COCO instances JSON (polygons or RLE).")],
    images: Annotated[Path, typer.Option(help="Folder of the images the JSON names.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New dataset folder to write.")],
) -> None:
    """COCO JSON → class-id masks (0 background, categories in id order; crowd = 255 ignore)."""
    from edgeseg.data.importers import import_coco as run

    _run_import(run, annotations, images, out)


@import_app.command("cityscapes")
@handle_errors
def import_cityscapes(
    root: Annotated[Path, typer.Argument(help="Cityscapes folder holding leftImg8bit/ and gtFine/.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="New dataset folder to write.")],
) -> None:
    """Cityscapes gtFine → train/, val/ with class masks (19 train ids) and instances/."""
    from edgeseg.data.import_cityscapes import import_cityscapes as run

    _run_import(run, root, out)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data", help="Check, import or synthesize a dataset folder.")
