"""``edgeseg train``: train on a folder of images and masks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli import _data_options as do
from edgeseg.cli import _model_options as mo
from edgeseg.cli._common import batch_progress, console, handle_errors


@handle_errors
def train(
    data: Annotated[Path, typer.Option(help="Dataset folder (images/ + annotations/, or train/ + val/).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save the best .keras model.")],
    preset: mo.Preset = None,
    classes: Annotated[Optional[int], typer.Option(
        "--classes", "-c", help="Classes, background included [default: 2 with --binary, else the "
                                "lines of labels.txt or labelme's class_names.txt, else the classes "
                                "of the colour map, else 2].", show_default=False)] = None,
    height: mo.Height = None,
    width: mo.Width = None,
    alpha: mo.Alpha = None,
    encoder_level: mo.EncoderLevel = None,
    head: mo.Head = None,
    decoder: mo.Decoder = None,
    decoder_width: mo.DecoderWidth = None,
    stem: mo.Stem = None,
    labels: mo.Labels = None,
    val: Annotated[Optional[Path], typer.Option(help="Validation folder (default: split --data).")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of --data held out for validation.")] = 0.1,
    epochs: Annotated[Optional[int], typer.Option(
        min=1, help="Maximum epochs [default: 30, or as many as --time-limit allows].",
        show_default=False)] = None,
    batch_size: Annotated[int, typer.Option(
        min=1, help="Images per step (8 learns faster per minute on a CPU).")] = 8,
    lr: Annotated[Optional[float], typer.Option(
        help="Peak learning rate (warm-up, then cosine decay) [default: 2e-3; 5e-3 for "
             "--preset realtime_1core and --task instance].", show_default=False)] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Turn augmentation off.")] = False,
    no_balance: Annotated[bool, typer.Option(
        "--no-balance", help="Plain cross-entropy: no median-frequency class weights (which make "
        "rare classes over-predicted where they are easy to find).")] = False,
    backbone_weights: mo.BackboneWeights = "imagenet",
    resume: Annotated[Optional[Path], typer.Option(help="Continue from a .last.keras checkpoint.")] = None,
    time_limit: Annotated[Optional[float], typer.Option(
        help="Minutes; epochs are fitted to it and training stops after the epoch that crosses it.")] = None,
    strategy: Annotated[str, typer.Option(
        help="default, mirrored (the GPUs of this machine) or multi-worker (the machines of TF_CONFIG; "
             "see the README's 'Training on several machines').")] = "default",
    cluster_timeout: Annotated[float, typer.Option(
        min=1, help="Seconds a multi-worker task waits for the others to start, then names the missing one.")
    ] = 300.0,
    precision: Annotated[str, typer.Option(
        help="auto (bfloat16 for the seed decoder where the CPU has it), float32 or mixed_bfloat16.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    ignore_index: do.IgnoreIndex = 255,
    binary: do.Binary = False,
    mask_colors: do.MaskColors = None,
    skip_bad: do.SkipBad = False,
    clock: Annotated[str, typer.Option(
        help="What --time-limit counts: wall (clock time) or cpu (this process's CPU time, "
             "for budgets on a shared machine).")] = "wall",
    task: Annotated[str, typer.Option(
        help="semantic (class per pixel) or instance (also object-centre heatmap and offset "
             "heads; needs instances/NAME.png, thing classes from them).")] = "semantic",
) -> None:
    """Train a model; keeps the best checkpoint by val mIoU, with a CSV log and a PNG plot.

    Defaults: --preset realtime, the input size of the training images, ImageNet
    encoder weights where Keras has or can fetch them (else from scratch, said in one line).
    """
    from edgeseg.train import train as run_training
    from edgeseg.train.fit import TrainConfig, input_size_of

    notes = []  # said once the data has passed its check, so a data error stays one line
    classes = do.binary_classes(binary, classes)
    classes, names, note = _classes_and_names(data, classes, mo.parse_labels(labels),
                                              do.encoding(ignore_index, binary, mask_colors, data,
                                                          *([val] if val else [])))
    if note:
        notes.append(note)
    if height is None or width is None:
        h, w, note = input_size_of(data, val, height, width)
        height, width = h, w
        notes.append(note)
    cfg = mo.model_config(preset or "realtime", classes, height, width, names, alpha=alpha,
                          encoder_level=encoder_level, head=head, decoder=decoder,
                          decoder_width=decoder_width, stem=stem).with_(task=task)
    notes.append(f"model: {'--preset ' + (preset or 'realtime') + ('' if preset else ' (default)')}"
                 f" -> alpha {cfg.alpha}, {cfg.decoder} decoder at 1/{2 ** (cfg.encoder_level + 1)}, "
                 f"{cfg.head} head, {cfg.height}×{cfg.width} (H×W)")
    if lr is None:
        from edgeseg.config import TASK_LR, train_lr

        lr = train_lr(preset or "realtime", task)
        whose = f"--task {task}" if task in TASK_LR else f"--preset {preset or 'realtime'}"
        notes.append(f"learning rate {lr:g} ({whose}'s; --lr to change)")
    tcfg = TrainConfig(data=str(data), output=str(output), val=str(val) if val else None,
                       val_fraction=val_fraction, epochs=epochs, batch_size=batch_size, lr=lr,
                       augment=not no_augment, balance=not no_balance,
                       backbone_weights=backbone_weights,
                       resume=str(resume) if resume else None, time_limit=time_limit, clock=clock,
                       strategy=strategy, cluster_timeout=cluster_timeout, precision=precision, seed=seed,
                       ignore_index=ignore_index,
                       binary=binary, mask_colors=str(mask_colors) if mask_colors else None,
                       skip_bad=skip_bad)
    with batch_progress() as bar:
        result = run_training(cfg, tcfg, log=lambda s: console.print(s, markup=False,
                                                                      soft_wrap=True),
                              notes=notes, progress=bar)
    chosen = ("" if result.best_pq_things is None
              else f"best val PQ things {result.best_pq_things:.4f} (its val mIoU "
                   f"{result.best_miou:.4f}) at epoch {result.best_epoch} ")
    console.print((chosen or f"best val mIoU {result.best_miou:.4f} at epoch {result.best_epoch} ")
                  + f"({result.epochs_run} epochs, {result.seconds / 60:.1f} min) -> {result.model_path}"
                  + ("" if result.wrote else " (written by the chief)"))
    console.print(f"log: {result.history_csv}" + (f", plot: {result.history_png}"
                                                    if result.history_png else ""))


def _classes_and_names(data: Path, classes: Optional[int], given: tuple[str, ...],
                       enc: object) -> tuple[int, tuple[str, ...], Optional[str]]:
    """Classes and their names: --labels, else labels.txt (of the dataset or its train/
    split), else the colour map (--mask-colors or the dataset's labelmap.txt); the number of
    classes defaults to how many names those give (2 without any). Returns a note when
    ``--classes`` disagrees with the names found, which are then replaced by ``class0…``."""
    from edgeseg.labels import find_names_file, read_class_names

    if given:  # model_config says when they don't fit --classes
        return (classes if classes is not None else len(given)), given, None
    found, source = (), ""
    names_file = find_names_file(data, data / "train")
    if names_file is not None:
        found, source = read_class_names(names_file), str(names_file)
    colours = getattr(enc, "class_names", ()) if getattr(enc, "colors", None) else ()
    if not found and colours:
        found, source = tuple(colours), str(getattr(enc, "colors_source", None) or "the colour map")
    if classes is None:
        return (len(found) if len(found) >= 2 else 2), found if len(found) >= 2 else (), None
    if found and len(found) != classes:
        return classes, (), (f"note: --classes {classes} but {source} names {len(found)} classes; "
                             f"the model's classes are named class0..class{classes - 1}.")
    return classes, found, None


def register(app: typer.Typer) -> None:
    app.command("train", help="Train on images + masks; keeps the best model by val mIoU.")(train)
