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
    cfg = load_config(path) or _infer_config(model)
    return model, cfg


def _infer_config(model: Any) -> ModelConfig:
    _, h, w, _ = model.input_shape
    n_classes = model.output_shape[-1]
    names = {layer.name for layer in model.layers}
    head = "flat" if "seg_reshape" in names else "spatial"
    decoder = "lite" if "dec_dw_1" in names else "seed"
    level = 1 + sum(1 for n in names if n.startswith("dec_up_"))
    alpha = model.get_layer("conv1").filters / 32
    return ModelConfig(n_classes=n_classes, height=h, width=w, alpha=alpha, encoder_level=level,
                       head=head, decoder=decoder)


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
