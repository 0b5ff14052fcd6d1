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

    def __init__(self, path: Path, instances: Optional[str] = None) -> None:
        from edgeseg.model.io import load_model

        self.path = Path(path)
        self.model, self.cfg = load_model(path)
        self.kind, self.head = "keras", "softmax"
        self.labels = self.cfg.class_names
        self.instance_kind = instance_kind(self.cfg.task == "instance", instances, self.path)
        self.things = self.cfg.things or tuple(range(1, self.cfg.n_classes))
        from edgeseg.config import read_sidecar
        from edgeseg.runtime.instances import grouping_settings

        self.grouping = grouping_settings((read_sidecar(path) or {}).get("instance"))

    def _outputs(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        from edgeseg.preprocess import preprocess

        x = np.stack([preprocess(rgb, self.cfg.preprocessing) for rgb in rgbs])
        out = self.model(x, training=False)
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        oh, ow = self.cfg.output_size
        return [np.asarray(out[0]).reshape(len(rgbs), oh, ow, -1)] + [np.asarray(o) for o in out[1:]]

    def heads(self, rgb: np.ndarray) -> list[np.ndarray]:
        """[h×w×C class scores, h×w×1 centre heatmap, h×w×2 offsets] (instance models)."""
        return [o[0] for o in self._outputs([rgb])]

    def panoptic(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(h×w class ids, h×w int32 Cityscapes-encoded instances) at the output size."""
        from edgeseg.runtime import instances as ri

        outs = self._outputs([rgb])
        if self.instance_kind != "components":
            return ri.panoptic_from_heads(outs[0][0], outs[1][0, ..., 0], outs[2][0], self.things,
                                          *self.grouping)
        from edgeseg.runtime.components import component_ids

        ids = np.argmax(outs[0][0], axis=-1).astype(np.uint8)
        inst = component_ids(ids, self.things)
        _, id_class = ri.describe(inst, ids, self.cfg.n_classes, np.zeros((0, 2), np.int64), ids.shape)
        return ids, ri.encode(ids, inst, id_class)

    def predict(self, rgbs: list[np.ndarray], scores: bool = False) -> list[Prediction]:
        """Class ids (and softmax probabilities) at the output size for RGB uint8 images."""
        probs = self._outputs(rgbs)[0]
        ids = np.argmax(probs, axis=-1).astype(np.uint8)
        return [(ids[i], probs[i] if scores else None) for i in range(len(rgbs))]


class TFLitePredictor:
    """A .tflite run by :class:`edgeseg.runtime.Segmenter`: the code path the device runs."""

    def __init__(self, path: Path, threads: Optional[int] = None,
                 output: Optional[int] = None, instances: Optional[str] = None,
                 delegate: Optional[str] = None, fallback: bool = False) -> None:
        from edgeseg.runtime import Segmenter

        self.path = Path(path)
        self.segmenter = Segmenter(path, threads=threads, rgb=True, output=output,
                                   instances=instances, delegate=delegate, fallback=fallback)
        self.instance_kind = instance_kind(self.segmenter.instance_layout is not None, instances,
                                           self.path)
        self.panoptic = self.segmenter.panoptic
        tfl = (self.segmenter.metadata.description or {}).get("tflite") or {}
        self.kind = str(tfl.get("mode", "tflite"))
        self.head = self.segmenter.metadata.head
        self.labels = self.segmenter.labels

    def heads(self, rgb: np.ndarray) -> list[np.ndarray]:
        """[h×w×C class scores, h×w×1 centre heatmap, h×w×2 offsets], dequantized (instance models)."""
        _, scores = self.segmenter.predict(rgb, scores=True)
        reader = self.segmenter.instance_reader
        return [scores, reader.head("center"), reader.head("offset")]

    def predict(self, rgbs: list[np.ndarray], scores: bool = False) -> list[Prediction]:
        """Class ids (and dequantized scores) at the model's output size, one image at a time."""
        return [self.segmenter.predict(rgb, scores) for rgb in rgbs]


def instance_kind(has_heads: bool, asked: Optional[str], path: Path) -> Optional[str]:
    """``heads`` (an instance model), ``components`` (asked for) or None (no instances).

    Raises:
        EdgesegError: ``asked`` is not components/off, or heads asked of a model without them.
    """
    if asked not in (None, "heads", "components", "off"):
        raise EdgesegError(f"--instances {asked!r} must be components or off.")
    if asked == "heads" and not has_heads:
        raise EdgesegError(f"{path} has no instance heads; use --instances components.")
    if asked == "off":
        return None
    return asked or ("heads" if has_heads else None)


def load_predictor(path: str | Path, threads: Optional[int] = None,
                   output: Optional[int] = None, instances: Optional[str] = None,
                   delegate: Optional[str] = None, fallback: bool = False) -> Any:
    """A predictor for a .keras or .tflite file (``delegate``/``fallback``: as Segmenter's).

    Raises:
        EdgesegError: Missing file, another format, or a delegate asked of a .keras model.
    """
    path = Path(path)
    if not path.exists():
        raise EdgesegError(f"{path}: no such model file; check the path.")
    if path.suffix == ".keras":
        if delegate not in (None, "", "cpu", "xnnpack"):
            raise EdgesegError(f"--delegate {delegate} runs .tflite models; {path} is a .keras "
                               "model (convert it, or drop --delegate).")
        return KerasPredictor(path, instances)
    if path.suffix == ".tflite":
        return TFLitePredictor(path, threads, output, instances, delegate, fallback)
    raise EdgesegError(f"{path}: expected a .keras or .tflite model.")
