"""The model options `build` and `train` share, and the one place they become a ModelConfig."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

Classes = Annotated[int, typer.Option("--classes", "-c", help="Classes, background included.")]
Height = Annotated[int, typer.Option(help="Input height (multiple of 32).")]
Width = Annotated[int, typer.Option(help="Input width (multiple of 32).")]
Alpha = Annotated[float, typer.Option(help="MobileNet width: 0.25, 0.5, 0.75, 1.0.")]
EncoderLevel = Annotated[int, typer.Option(help="Decoder tap: 1 (1/4) … 4 (1/32).")]
Head = Annotated[str, typer.Option(help="flat (seed: Reshape+Softmax) or spatial (4-D).")]
Decoder = Annotated[str, typer.Option(help="seed (published) or lite (depthwise, ReLU6).")]
DecoderWidth = Annotated[float, typer.Option(help="Width multiplier of the lite decoder.")]
Labels = Annotated[Optional[str], typer.Option(help="Class names, comma-separated.")]
BackboneWeights = Annotated[Optional[str], typer.Option(
    help="Encoder weights: a Keras MobileNet .h5 file, or 'imagenet' (downloads).")]


def parse_labels(labels: Optional[str]) -> tuple[str, ...]:
    return tuple(s.strip() for s in labels.split(",")) if labels else ()


def model_config(classes: int, height: int, width: int, alpha: float, encoder_level: int, head: str,
                 decoder: str, decoder_width: float, labels: tuple[str, ...]) -> Any:
    """The ModelConfig of the options (the seed decoder has no width multiplier)."""
    from edgeseg.config import ModelConfig

    return ModelConfig(n_classes=classes, height=height, width=width, alpha=alpha,
                       encoder_level=encoder_level, head=head, decoder=decoder,
                       decoder_width=decoder_width if decoder == "lite" else 1.0, labels=labels)
