"""Segmenter: frame in, class mask at the frame's size out, with per-stage timings."""

from __future__ import annotations

import os
import time
import warnings
from typing import Any, NamedTuple

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.runtime import adapters
from edgeseg.runtime.interpreter import backend, default_threads, delegate_name, make_interpreter
from edgeseg.runtime.metadata import read_metadata


class Timings(NamedTuple):
    """Milliseconds spent in each stage of one ``segment()`` call."""

    preprocess_ms: float
    invoke_ms: float
    postprocess_ms: float

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.invoke_ms + self.postprocess_ms


class Segmentation(NamedTuple):
    """The result for one frame.

    Attributes:
        mask: H×W class ids (uint8, uint16 past 255 classes) at the frame's size.
        confidence: H×W float32 score of the winning class, when asked for.
        timings: Where the time went.
    """

    mask: np.ndarray
    confidence: np.ndarray | None
    timings: Timings


def _labels(meta_labels: tuple[str, ...], layout: adapters.OutputLayout) -> tuple[str, ...]:
    n = {"scores": layout.channels, "binary": 2}.get(layout.kind, len(meta_labels))
    if meta_labels and len(meta_labels) == n:
        return meta_labels
    if meta_labels:
        warnings.warn(f"the model's metadata lists {len(meta_labels)} labels for {n} classes; "
                      "using class numbers instead.", RuntimeWarning, stacklevel=3)
    if layout.kind == "binary":
        return ("background", "foreground")
    return tuple(f"class{i}" for i in range(n))


class Segmenter:
    """Run a segmentation ``.tflite`` on camera frames.

    Preprocessing (input size, mean/std, colour order) and labels come from the
    model's sidecar JSON or embedded metadata, else from the input tensor's
    quantization. Work buffers are allocated once; each frame costs one resize, one
    colour conversion or table lookup into the input tensor, the invoke, an argmax
    at model resolution and one nearest-neighbour resize to the frame. Not thread-safe:
    use one Segmenter per thread.

    Args:
        model_path: The ``.tflite`` model.
        threads: CPU threads (default: all cores).
        delegate: ``None``/``"cpu"``, ``"edgetpu"``, ``"gpu"`` or a delegate library path.
        rgb: Frames are RGB (default: BGR, as OpenCV delivers them).
        fallback: Run on the CPU with a warning when the delegate can't be loaded.
        confidence: Also return the winning class's score per pixel (costs time).

    Raises:
        EdgesegError: Missing/corrupt model, input that isn't an image, unsupported output.
    """

    def __init__(self, model_path: str | os.PathLike, threads: int | None = None,
                 delegate: str | None = None, rgb: bool = False, fallback: bool = False,
                 confidence: bool = False) -> None:
        import cv2  # the resize and colour conversions; adapters stay numpy-only

        self._cv2 = cv2
        self.model_path = str(model_path)
        t0 = time.perf_counter()
        self.interpreter = make_interpreter(model_path, threads, delegate, fallback)
        self.init_ms = (time.perf_counter() - t0) * 1000
        self.threads = threads or default_threads()
        self.delegate = delegate_name(self.interpreter)
        self.metadata = read_metadata(model_path)
        self.input = adapters.input_details(self.interpreter)
        self.input_size = adapters.input_size(self.interpreter)  # (width, height)
        if self.metadata.size and self.metadata.size != self.input_size[::-1]:
            warnings.warn(f"the model's metadata ({self.metadata.source}) describes a "
                          f"{self.metadata.size[0]}x{self.metadata.size[1]} input but the model "
                          f"takes {self.input_size[1]}x{self.input_size[0]}; is it the right "
                          "sidecar? Using the model's size.", RuntimeWarning, stacklevel=2)
        self.layout = adapters.output_layout(self.interpreter, self.metadata.head)
        self.labels = _labels(self.metadata.labels, self.layout)
        self.want_confidence = confidence
        default_mean, default_std = adapters.default_normalization(self.input)
        mean = self.metadata.mean or default_mean
        std = self.metadata.std or default_std
        lut = adapters.pixel_lut(self.input, mean, std)
        self.feeds_pixels = adapters.is_identity(lut)
        self._lut = np.ascontiguousarray(lut.reshape(1, 256, 3))
        self._swap = rgb != (self.metadata.color == "RGB")
        self._interp = {"nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA}.get(
            self.metadata.interpolation, cv2.INTER_LINEAR)
        self._nearest = getattr(cv2, "INTER_NEAREST_EXACT", cv2.INTER_NEAREST)
        w, h = self.input_size
        self._resized = np.empty((h, w, 3), np.uint8)
        self._swapped = np.empty((h, w, 3), np.uint8)
        oh, ow = self.layout.height, self.layout.width
        self._key = np.empty((oh, ow), np.uint16)
        self._tmp = np.empty((oh, ow), np.uint16)
        self._input_view = self.interpreter.tensor(self.input["index"])
        self._output_view = self.interpreter.tensor(
            self.interpreter.get_output_details()[0]["index"])
        self._output_shape = (oh, ow) if self.layout.kind == "ids" else (oh, ow, -1)

    @property
    def n_classes(self) -> int:
        """Classes the model predicts (0 when an in-graph argmax model has no labels)."""
        return len(self.labels)

    def describe(self) -> dict[str, Any]:
        """What is running: for logs, ``edgeseg run`` and ``edgeseg bench``."""
        be = backend()
        return {
            "model": self.model_path, "runtime": be.name, "runtime_version": be.version,
            "threads": self.threads, "delegate": self.delegate,
            "input": [int(x) for x in self.input["shape"]],
            "input_dtype": np.dtype(self.input["dtype"]).name,
            "output": [self.layout.height, self.layout.width, self.layout.channels],
            "output_kind": self.layout.kind, "output_dtype": np.dtype(self.layout.dtype).name,
            "feeds_pixels": self.feeds_pixels, "metadata": self.metadata.source,
            "labels": list(self.labels),
        }

    def _preprocess(self, frame: np.ndarray) -> None:
        cv2 = self._cv2
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise EdgesegError(f"frames must be H×W×3 uint8 images, got shape {frame.shape} "
                               f"{frame.dtype}.")
        w, h = self.input_size
        src = frame
        if frame.shape[:2] != (h, w):
            # Same rule as edgeseg.preprocess.resize_rgb: area filter when shrinking 2x or more.
            shrink = frame.shape[0] >= 2 * h and frame.shape[1] >= 2 * w
            interp = cv2.INTER_AREA if shrink and self._interp == cv2.INTER_LINEAR else self._interp
            src = cv2.resize(frame, (w, h), dst=self._resized, interpolation=interp)
        view = self._input_view()[0]
        if self.feeds_pixels:
            if self._swap:
                cv2.cvtColor(src, cv2.COLOR_BGR2RGB, dst=view)
            else:
                np.copyto(view, src)
        else:
            if self._swap:
                src = cv2.cvtColor(src, cv2.COLOR_BGR2RGB, dst=self._swapped)
            out = cv2.LUT(src, self._lut, dst=view)
            if out is not view:  # OpenCV allocated instead of writing in place
                np.copyto(view, out)
        del view  # the interpreter refuses to invoke while a view of its memory is alive

    def _class_ids(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Class ids at model resolution (never a view of tensor memory) and the confidence."""
        lay = self.layout
        conf = None
        if lay.kind == "ids":
            ids = raw.astype(np.uint8 if self.n_classes <= 256 else np.uint16)
        elif lay.kind == "binary":
            ids = (raw[..., 0] > lay.threshold).view(np.uint8)
            if self.want_confidence:
                p = self._dequantize(raw[..., 0])
                if self.metadata.head == "logits":
                    p = 1.0 / (1.0 + np.exp(-p))
                conf = np.maximum(p, 1.0 - p)
        elif raw.dtype != np.float32 and lay.channels <= 256:
            ids = adapters.argmax_8bit(raw, self._key, self._tmp)
            if self.want_confidence:
                conf = self._score_confidence(raw)
        else:
            ids = np.argmax(raw, axis=-1).astype(np.uint8 if lay.channels <= 256 else np.uint16)
            if self.want_confidence:
                conf = self._score_confidence(raw)
        return ids, conf

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        if not self.layout.scale:
            return raw.astype(np.float32)
        return (raw.astype(np.float32) - self.layout.zero_point) * self.layout.scale

    def _score_confidence(self, raw: np.ndarray) -> np.ndarray:
        scores = self._dequantize(raw)
        top = scores.max(axis=-1)
        if self.metadata.head == "logits" or top.max() > 1.0 or scores.min() < 0.0:
            return 1.0 / np.exp(scores - top[..., None]).sum(axis=-1)  # softmax of the winner
        return top

    def segment(self, frame: np.ndarray) -> Segmentation:
        """Segment one H×W×3 uint8 frame (BGR unless the Segmenter was made with ``rgb=True``)."""
        t0 = time.perf_counter()
        self._preprocess(frame)
        t1 = time.perf_counter()
        self.interpreter.invoke()
        t2 = time.perf_counter()
        raw = self._output_view().reshape(self._output_shape)
        ids, conf = self._class_ids(raw)
        del raw
        size = (frame.shape[1], frame.shape[0])
        if ids.shape[::-1] != size:
            ids = self._cv2.resize(ids, size, interpolation=self._nearest)
            if conf is not None:
                conf = self._cv2.resize(conf, size, interpolation=self._nearest)
        t3 = time.perf_counter()
        return Segmentation(ids, conf, Timings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3))
