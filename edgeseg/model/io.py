"""Save and load .keras models atomically, with their JSON config beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg.config import ModelConfig, load_config, save_config
from edgeseg.errors import EdgesegError


def save_model(model: Any, cfg: ModelConfig, path: str | Path, **more: Any) -> Path:
    """Save ``model`` to ``path`` (.keras) and its config to ``path.json``, both atomically."""
    from edgeseg.atomic import atomic_path

    path = Path(path)
    if path.suffix != ".keras":
        raise EdgesegError(f"{path}: models are saved as .keras files; name it {path.stem}.keras")
    with atomic_path(path) as tmp:
        model.save(tmp)
    if cfg.task == "instance":  # what each of the model's outputs is
        from edgeseg.model.instance_heads import head_layout

        more = {"instance": head_layout(cfg), **more}
    save_config(cfg, path, **more)
    return path


def load_model(path: str | Path) -> tuple[Any, ModelConfig]:
    """Load a .keras model (plain ``keras.models.load_model``, safe mode) and its config.

    When the JSON config is missing, it is recovered from the model's shapes.
    """
    from edgeseg.deps import keras

    path = Path(path)
    if not path.exists():
        raise EdgesegError(f"{path}: no such model file; check the path.")
    if path.suffix != ".keras":
        raise EdgesegError(f"{path} is not a .keras model (expected a file saved by edgeseg build/train).")
    k = keras()
    from edgeseg.model.fused_bn import fused_batch_norm_class

    fused_batch_norm_class()  # training checkpoints (.last.keras) hold this layer
    try:
        model = k.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a bad archive
        raise EdgesegError(f"{path} is not a readable Keras model ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:120]}); rebuild or retrain it.") from None
    cfg = load_config(path) or infer_config(model)
    return model, cfg


def infer_config(model: Any) -> ModelConfig:
    """Recover a model's ModelConfig from its layers (for a .keras file without its sidecar).

    The encoder tap is the level whose last MobileNet block is the deepest one built
    (blocks past the tap are not built); the decoder and its width come from the
    decoder's own layers. Labels, mean and std are not in the layers: defaults.
    """
    from edgeseg.model.decoder import decoder_filters
    from edgeseg.model.encoder import LEVEL_BLOCKS

    _, h, w, _ = model.input_shape
    n_classes = model.output_shape[-1]
    order = [layer.name for layer in model.layers]
    names = set(order)
    head = "flat" if "seg_reshape" in names else "spatial"
    if {"seg_softmax", "seg_upsample"} <= names and (
            order.index("seg_softmax") < order.index("seg_upsample")):
        head = "upsampled"
    deepest = max(int(n[len("conv_pw_"):]) for n in names
                  if n.startswith("conv_pw_") and n[len("conv_pw_"):].isdigit())
    if deepest not in LEVEL_BLOCKS[1:]:
        raise EdgesegError(f"{model.name}: its encoder ends at conv_pw_{deepest}, not at a tap of "
                           "mobilenet_segnet; keep the model's .json sidecar beside it.")
    level = LEVEL_BLOCKS.index(deepest)
    stem = "lean" if tuple(model.get_layer("conv_dw_1").strides) == (2, 2) else "mobilenet"
    alpha = model.get_layer("conv_pw_1").filters / 64
    if "seg_upsample" in names and "dec_pw_1" in names:
        decoder, width = "fast_dw", model.get_layer("dec_pw_1").filters / 128
    elif "seg_upsample" in names:
        decoder, width = "fast", model.get_layer("dec_conv_1").filters / 128
    elif "dec_dw_1" in names:
        decoder = "lite"
        width = model.get_layer("dec_pw_1").filters / decoder_filters(level)[0]
    else:
        decoder, width = "seed", 1.0
    return ModelConfig(n_classes=n_classes, height=h, width=w, alpha=alpha, encoder_level=level,
                       head=head, decoder=decoder, decoder_width=width, stem=stem)


def build_and_save(cfg: ModelConfig, output: str | Path,
                   backbone_weights: str | None = None) -> tuple[Any, str]:
    """Build a model for ``cfg``, optionally load encoder weights, and save it.

    Returns:
        The model and a one-line report of the weight loading ('' when none).
    """
    from edgeseg.deps import keras

    keras()
    from edgeseg.model.build import build_model

    model = build_model(cfg)
    report = ""
    if backbone_weights:
        from edgeseg.model.weights import load_backbone_weights

        report = load_backbone_weights(model, backbone_weights, cfg).summary()
    save_model(model, cfg, output)
    return model, report
