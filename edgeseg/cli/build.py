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
    preset: mo.Preset = None,
    classes: mo.Classes = 2,
    height: mo.Height = None,
    width: mo.Width = None,
    alpha: mo.Alpha = None,
    encoder_level: mo.EncoderLevel = None,
    head: mo.Head = None,
    decoder: mo.Decoder = None,
    decoder_width: mo.DecoderWidth = None,
    stem: mo.Stem = None,
    labels: mo.Labels = None,
    backbone_weights: mo.BackboneWeights = None,
    summary: Annotated[bool, typer.Option(help="Print the Keras summary.")] = False,
) -> None:
    """Build a MobileNet-SegNet model (default: --preset seed, 416x416) and save it as .keras (+ JSON)."""
    from edgeseg.model.io import build_and_save

    cfg = mo.model_config(preset or "seed", classes, 416 if height is None else height,
                          416 if width is None else width,
                          mo.parse_labels(labels), alpha=alpha, encoder_level=encoder_level,
                          head=head, decoder=decoder, decoder_width=decoder_width, stem=stem)
    model, report = build_and_save(cfg, output, None if backbone_weights == "none" else backbone_weights)
    if summary:
        model.summary(print_fn=lambda line, **_: console.print(line, markup=False))
    if report:
        console.print(report)
    from edgeseg.model.build import count_params

    total, trainable, frozen = count_params(model)
    console.print(
        f"Built mobilenet_segnet {cfg.height}×{cfg.width} (H×W), {classes} classes, alpha {cfg.alpha}, "
        f"{cfg.decoder} decoder at 1/{2 ** (cfg.encoder_level + 1)}: "
        f"{total:,} parameters ({trainable:,} trainable, {frozen:,} non-trainable) -> {output}"
    )


def register(app: typer.Typer) -> None:
    app.command("build", help="Build a MobileNet-SegNet model and save it (.keras + JSON).")(build)
