"""Fold a per-channel input normalization into the graph, so an int8 model takes raw pixels."""

from __future__ import annotations

from typing import Any

from edgeseg.config import ModelConfig

RAW_MEAN = (0.0, 0.0, 0.0)
RAW_STD = (1.0, 1.0, 1.0)


def needs_folding(cfg: ModelConfig, mode: str, io: str) -> bool:
    """Whether the int8 input quantization alone cannot make the uint8/int8 input the raw pixel.

    One scale and zero point per tensor map pixels to ``(pixel - mean) / std`` exactly only
    when mean and std are the same for all channels and the mean is a whole number (the
    edgeseg default 128/128). keras_segmentation's per-channel means are not.
    """
    if mode != "int8" or io == "float32":
        return False
    uniform = len(set(cfg.mean)) == 1 and len(set(cfg.std)) == 1
    return not (uniform and float(cfg.mean[0]).is_integer())


def fold_normalization(model: Any, cfg: ModelConfig) -> tuple[Any, ModelConfig]:
    """Prepend ``(x - mean) / std`` to ``model`` as a Normalization layer.

    Args:
        model: A batch-1 deployment copy taking normalized float input.
        cfg: Its config; ``cfg.mean``/``cfg.std`` are folded.

    Returns:
        The model taking RGB pixel values 0..255, and the config describing that input
        (mean 0, std 1), for calibration, the sidecar and the metadata.
    """
    import keras

    inputs = keras.Input(model.input_shape[1:], batch_size=1, name="image")
    norm = keras.layers.Normalization(axis=-1, mean=list(cfg.mean),
                                      variance=[s * s for s in cfg.std], name="input_normalization")
    folded = keras.Model(inputs, model(norm(inputs)), name=model.name)
    return folded, cfg.with_(mean=RAW_MEAN, std=RAW_STD)
