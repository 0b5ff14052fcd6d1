"""``edgeseg build``: make a fresh mobilenet_segnet and save it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli import _model_options as mo
from edgeseg.cli._common import console, handle_errors


@handle_errors
def build(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save the .keras model.")],
    classes: mo.Classes = 2,
    height: mo.Height = 416,
    width: mo.Width = 416,
    alpha: mo.Alpha = 1.0,
    encoder_level: mo.EncoderLevel = 3,
    head: mo.Head = "flat",
    decoder: mo.Decoder = "seed",
    decoder_width: mo.DecoderWidth = 0.5,
    labels: mo.Labels = None,
    backbone_weights: mo.BackboneWeights = None,
    summary: Annotated[bool, typer.Option(help="Print the Keras summary.")] = False,
) -> None:
    """Build a MobileNet-SegNet model and save it as .keras (+ JSON config)."""
    from edgeseg.model.io import build_and_save

    cfg = mo.model_config(classes, height, width, alpha, encoder_level, head, decoder, decoder_width,
                          mo.parse_labels(labels))
    model, report = build_and_save(cfg, output, backbone_weights)
    if summary:
        model.summary(print_fn=lambda line, **_: console.print(line, markup=False))
    if report:
        console.print(report)
    from edgeseg.model.build import count_params

    total, trainable, frozen = count_params(model)
    console.print(
        f"Built mobilenet_segnet {height}x{width}, {classes} classes, alpha {alpha}: "
        f"{total:,} parameters ({trainable:,} trainable, {frozen:,} non-trainable) -> {output}"
    )


def register(app: typer.Typer) -> None:
    app.command("build", help="Build a MobileNet-SegNet model and save it (.keras + JSON).")(build)
