"""Uniform batch prediction for .keras and .tflite models (used by evaluate and compare)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.config import ModelConfig, sidecar_path
from edgeseg.errors import EdgesegError
from edgeseg.preprocess import normalize


@dataclass
class Prediction:
    """Model output at label resolution (half the input size)."""

    mask: np.ndarray  # N×h×w class ids
    scores: Optional[np.ndarray]  # N×h×w×C probabilities/logits (dequantized); None for argmax


class KerasPredictor:
    """Runs a .keras model; takes RGB uint8 batches at the model's input size."""

    def __init__(self, path: Path) -> None:
        from edgeseg.model.io import load_model

        self.model, self.cfg = load_model(path)
        self.kind = "keras"

    def __call__(self, rgb: np.ndarray) -> Prediction:
        x = normalize(rgb, self.cfg.mean, self.cfg.std)
        probs = np.asarray(self.model(x, training=False))
        oh, ow = self.cfg.output_size
        probs = probs.reshape(len(rgb), oh, ow, -1)
        return Prediction(np.argmax(probs, axis=-1).astype(np.uint8), probs)


class TFLitePredictor:
    """Runs a .tflite model one image at a time, through the runtime's adapters."""

    def __init__(self, path: Path, threads: Optional[int] = None) -> None:
        from edgeseg.runtime import adapters
        from edgeseg.runtime.interpreter import make_interpreter

        info = read_tflite_sidecar(path)
        self.cfg = ModelConfig.from_dict(info["edgeseg"])
        self.head = info.get("tflite", {}).get("head", "softmax")
        self.kind = info.get("tflite", {}).get("mode", "tflite")
        self.interp = make_interpreter(path, threads=threads)
        self.inp = self.interp.get_input_details()[0]
        self.layout = adapters.output_layout(self.interp, self.head)
        # normalization + quantization of the input as one per-channel lookup table
        self.lut = adapters.pixel_lut(self.inp, self.cfg.mean, self.cfg.std)

    def __call__(self, rgb: np.ndarray) -> Prediction:
        from edgeseg.runtime import adapters

        masks, scores = [], []
        lay = self.layout
        for img in rgb:
            self.interp.set_tensor(self.inp["index"], self.lut[img, np.arange(3)][None])
            self.interp.invoke()
            y = np.array(adapters.get_output(self.interp, lay))  # a copy, not tensor memory
            if lay.kind == "ids":
                masks.append(y)
                continue
            y = y.astype(np.float32)
            if lay.scale:
                y = (y - lay.zero_point) * lay.scale
            scores.append(y)
            masks.append(np.argmax(y, axis=-1))
        return Prediction(np.stack(masks).astype(np.uint8), np.stack(scores) if scores else None)


def read_tflite_sidecar(path: Path) -> dict[str, Any]:
    """The JSON description of a .tflite: beside it, else embedded in the file."""
    from edgeseg.runtime.metadata import _embedded

    path = Path(path)
    if not path.exists():
        raise EdgesegError(f"{path}: no such model file; check the path.")
    side = sidecar_path(path)
    if side.exists():
        return json.loads(side.read_text())
    data, _ = _embedded(path)
    if data is None or "edgeseg" not in data:
        raise EdgesegError(f"{path} has no edgeseg description ({side.name} beside it, or embedded "
                           "metadata); convert it with edgeseg convert.")
    return data


def load_predictor(path: str | Path, threads: Optional[int] = None) -> Any:
    """A predictor for a .keras or .tflite file."""
    path = Path(path)
    if not path.exists():
        raise EdgesegError(f"{path}: no such model file; check the path.")
    if path.suffix == ".keras":
        return KerasPredictor(path)
    if path.suffix == ".tflite":
        return TFLitePredictor(path, threads)
    raise EdgesegError(f"{path}: expected a .keras or .tflite model.")
