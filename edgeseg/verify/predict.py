"""Batch prediction for evaluate and compare: .keras through Keras, .tflite through Segmenter."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np

from edgeseg.errors import EdgesegError

Prediction = tuple[np.ndarray, Optional[np.ndarray]]  # (h×w class ids, h×w×C scores or None)


class Predictor(Protocol):
    """What evaluate and compare need from a model."""

    path: Path
    kind: str  # "keras" or the .tflite's mode ("int8", "float32", ... or "tflite")
    head: Optional[str]
    labels: tuple[str, ...]

    def predict(self, rgbs: list[np.ndarray], scores: bool = False) -> list[Prediction]: ...


class KerasPredictor:
    """A .keras model fed through :func:`edgeseg.preprocess.preprocess` (training's definition)."""

    def __init__(self, path: Path) -> None:
        from edgeseg.model.io import load_model

        self.path = Path(path)
        self.model, self.cfg = load_model(path)
        self.kind, self.head = "keras", "softmax"
        self.labels = self.cfg.class_names

    def predict(self, rgbs: list[np.ndarray], scores: bool = False) -> list[Prediction]:
        """Class ids (and softmax probabilities) at the output size for RGB uint8 images."""
        from edgeseg.preprocess import preprocess

        x = np.stack([preprocess(rgb, self.cfg.preprocessing) for rgb in rgbs])
        probs = np.asarray(self.model(x, training=False))
        oh, ow = self.cfg.output_size
        probs = probs.reshape(len(rgbs), oh, ow, -1)
        ids = np.argmax(probs, axis=-1).astype(np.uint8)
        return [(ids[i], probs[i] if scores else None) for i in range(len(rgbs))]


class TFLitePredictor:
    """A .tflite run by :class:`edgeseg.runtime.Segmenter`: the code path the device runs."""

    def __init__(self, path: Path, threads: Optional[int] = None,
                 output: Optional[int] = None) -> None:
        from edgeseg.runtime import Segmenter

        self.path = Path(path)
        self.segmenter = Segmenter(path, threads=threads, rgb=True, output=output)
        tfl = (self.segmenter.metadata.description or {}).get("tflite") or {}
        self.kind = str(tfl.get("mode", "tflite"))
        self.head = self.segmenter.metadata.head
        self.labels = self.segmenter.labels

    def predict(self, rgbs: list[np.ndarray], scores: bool = False) -> list[Prediction]:
        """Class ids (and dequantized scores) at the model's output size, one image at a time."""
        return [self.segmenter.predict(rgb, scores) for rgb in rgbs]


def load_predictor(path: str | Path, threads: Optional[int] = None,
                   output: Optional[int] = None) -> Any:
    """A predictor for a .keras or .tflite file.

    Raises:
        EdgesegError: Missing file or another format.
    """
    path = Path(path)
    if not path.exists():
        raise EdgesegError(f"{path}: no such model file; check the path.")
    if path.suffix == ".keras":
        return KerasPredictor(path)
    if path.suffix == ".tflite":
        return TFLitePredictor(path, threads, output)
    raise EdgesegError(f"{path}: expected a .keras or .tflite model.")
