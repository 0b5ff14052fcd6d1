"""The model options `build`, `train` and `demo` share, and the one place they become a ModelConfig.

Architecture options default to ``None`` so that a ``--preset`` fills what the user
did not pass; an explicit option always wins over the preset.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

Preset = Annotated[Optional[str], typer.Option(
    help="seed (keras_segmentation's mobilenet_segnet, exact), realtime (~5x faster int8, "
         "learns from scratch) or realtime_1core (realtime with a depthwise-separable decoder: "
         "~30 fps on one Pi 4 core); explicit options override it.", show_default=False)]
Classes = Annotated[int, typer.Option("--classes", "-c", help="Classes, background included.")]
Height = Annotated[Optional[int], typer.Option(
    help="Input height, a multiple of 32 (default: build 416, train the training images').",
    show_default=False)]
Width = Annotated[Optional[int], typer.Option(
    help="Input width, a multiple of 32 (default: build 416, train the training images').",
    show_default=False)]
Alpha = Annotated[Optional[float], typer.Option(
    help="MobileNet width: 0.25, 0.5, 0.75, 1.0 (default: the preset's).", show_default=False)]
EncoderLevel = Annotated[Optional[int], typer.Option(
    help="Decoder tap: 1 (1/4) … 4 (1/32) (default: the preset's).", show_default=False)]
Head = Annotated[Optional[str], typer.Option(
    help="flat (seed: Reshape+Softmax), spatial (4-D softmax) or upsampled (fast decoders: "
         "softmax at the tap, probabilities resized) (default: the preset's).",
    show_default=False)]
Decoder = Annotated[Optional[str], typer.Option(
    help="seed (published), lite (depthwise, ReLU6), fast (one conv at the tap, logits "
         "resized once) or fast_dw (fast with a depthwise-separable conv) (default: the "
         "preset's).", show_default=False)]
Stem = Annotated[Optional[str], typer.Option(
    help="mobilenet (Keras' MobileNet) or lean (half-width conv1, block 1 downsamples: "
         "fewer instructions at full resolution) (default: the preset's).", show_default=False)]
DecoderWidth = Annotated[Optional[float], typer.Option(
    help="Width multiplier of the lite/fast/fast_dw decoder (default: the preset's, or 0.5).",
    show_default=False)]
Labels = Annotated[Optional[str], typer.Option(help="Class names, comma-separated.")]
BackboneWeights = Annotated[Optional[str], typer.Option(
    help="Encoder weights: a Keras MobileNet .h5 file, 'imagenet' (Keras' cache or download) "
         "or 'none' (from scratch).")]


def parse_labels(labels: Optional[str]) -> tuple[str, ...]:
    return tuple(s.strip() for s in labels.split(",")) if labels else ()


def model_config(preset: str, classes: int, height: int, width: int, labels: tuple[str, ...] = (),
                 **explicit: Any) -> Any:
    """The ModelConfig of ``preset`` with the options the user passed (not ``None``) on top.

    Args:
        preset: A name of :data:`edgeseg.config.PRESETS`.
        classes: Number of classes, background included.
        height: Input height in pixels.
        width: Input width in pixels.
        labels: Class names, or ``()``.
        **explicit: ``alpha``, ``encoder_level``, ``head``, ``decoder``, ``decoder_width``, ``stem``;
            ``None`` means "the preset's".

    Raises:
        EdgesegError: For an unknown preset or an invalid combination.
    """
    from edgeseg.config import ModelConfig
    from edgeseg.config import preset as preset_fields

    fields = preset_fields(preset)
    given = {k: v for k, v in explicit.items() if v is not None}
    if given.get("decoder") not in (None, fields["decoder"]) and "decoder_width" not in given:
        # Another decoder than the preset's: its own width default, not the preset's.
        fields["decoder_width"] = 0.5
    fields.update(given)
    if fields["decoder"] == "seed":
        fields["decoder_width"] = 1.0  # the seed decoder has no width multiplier
    if fields["head"] == "upsampled" and fields["decoder"] not in ("fast", "fast_dw") \
            and "head" not in given:
        fields["head"] = "spatial"  # the preset's softmax-at-the-tap needs a fast decoder
    return ModelConfig(n_classes=classes, height=height, width=width, labels=labels, **fields)
