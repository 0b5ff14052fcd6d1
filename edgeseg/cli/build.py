"""``edgeseg build``: make a fresh mobilenet_segnet and save it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeseg.cli._common import console, handle_errors


def parse_labels(labels: Optional[str]) -> tuple[str, ...]:
    return tuple(s.strip() for s in labels.split(",")) if labels else ()


@handle_errors
def build(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save the .keras model.")],
    classes: Annotated[int, typer.Option("--classes", "-c", help="Classes, background included.")] = 2,
    height: Annotated[int, typer.Option(help="Input height (multiple of 32).")] = 416,
    width: Annotated[int, typer.Option(help="Input width (multiple of 32).")] = 416,
    alpha: Annotated[float, typer.Option(help="MobileNet width: 0.25, 0.5, 0.75, 1.0.")] = 1.0,
    encoder_level: Annotated[int, typer.Option(help="Decoder tap: 1 (1/4) … 4 (1/32).")] = 3,
    head: Annotated[str, typer.Option(help="flat (seed: Reshape+Softmax) or spatial (4-D).")] = "flat",
    decoder: Annotated[str, typer.Option(help="seed (published) or lite (depthwise, ReLU6).")] = "seed",
    decoder_width: Annotated[float, typer.Option(help="Width multiplier of the lite decoder.")] = 0.5,
    labels: Annotated[Optional[str], typer.Option(help="Class names, comma-separated.")] = None,
    backbone_weights: Annotated[Optional[str], typer.Option(
        help="Encoder weights: a Keras MobileNet .h5 file, or 'imagenet' (downloads).")] = None,
    summary: Annotated[bool, typer.Option(help="Print the Keras summary.")] = False,
) -> None:
    """Build a MobileNet-SegNet model and save it as .keras (+ JSON config)."""
    from edgeseg.config import ModelConfig
    from edgeseg.model.io import build_and_save

    cfg = ModelConfig(
        n_classes=classes, height=height, width=width, alpha=alpha, encoder_level=encoder_level,
        head=head, decoder=decoder, decoder_width=decoder_width if decoder == "lite" else 1.0,
        labels=parse_labels(labels),
    )
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
