"""``edgeseg data check|synth``: check a dataset folder or synthesize one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

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
        "--classes", "-c", help="Classes, background included (default: lines of labels.txt).",
    )] = None,
    ignore_index: do.IgnoreIndex = 255,
    binary: do.Binary = False,
    mask_colors: do.MaskColors = None,
) -> None:
    """Check pairing, readability, sizes and class ids; print the class balance."""
    from edgeseg.data.check import check_dataset, conversion_note, count_pairs, frequency_table
    from edgeseg.errors import EdgesegError

    enc = do.encoding(ignore_index, binary, mask_colors, folder)
    if classes is None and enc.colors and not (folder / "labels.txt").is_file():
        classes = len(enc.class_names)
    if classes is None:
        labels = folder / "labels.txt"
        if not labels.is_file():
            raise EdgesegError(f"{folder} has no labels.txt; pass --classes K "
                               "(the number of classes, background included).")
        classes = sum(1 for s in labels.read_text(errors="replace").splitlines() if s.strip())
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
    note = conversion_note(result)
    if note:
        console.print(note, soft_wrap=True)
    if result.n_pairs:
        console.print(frequency_table(result))
    n_err, n_warn = len(result.errors), len(result.warnings)
    summary = (f"{result.n_pairs} pairs in {', '.join(_rel(f, folder) for f in result.folders)}, "
               f"{classes} classes: {n_err} error(s), {n_warn} warning(s).")
    if n_err:
        console.print(f"[bold red]FAILED[/] {summary}", soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[bold green]OK[/] {summary}", soft_wrap=True)


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
) -> None:
    """Write a synthetic shapes dataset (and optionally a video clip)."""
    from edgeseg.data.synth import synthesize

    with _progress() as bar:
        task = bar.add_task("synthesizing", total=count)
        report = synthesize(out, n_classes=classes, count=count, height=height, width=width,
                            seed=seed, video=video, frames=frames,
                            progress=lambda n: bar.update(task, completed=n))
    shares = ", ".join(f"{n} {s:.0%}" for n, s in zip(report.labels, report.class_share))
    console.print(
        f"Wrote {report.count} image/mask pairs ({height}x{width}, {classes} classes) to "
        f"{out}/images and {out}/annotations, labels to {out}/labels.txt "
        f"in {report.seconds:.1f} s. Pixel shares: {shares}.", soft_wrap=True,
    )
    if report.video is not None:
        console.print(f"Wrote a {report.frames}-frame clip to {report.video}.", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data", help="Check a dataset folder or synthesize one.")
