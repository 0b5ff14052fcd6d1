"""Segmenter: frame in, class mask at the frame's size out, with per-stage timings."""

from __future__ import annotations

import os
import time
import warnings
from typing import Any, NamedTuple

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.preprocess import DEFAULT_MEAN, DEFAULT_STD, Preprocessing, pixel_table, resize_rgb
from edgeseg.runtime import adapters
from edgeseg.runtime.instances import vote_classes
from edgeseg.runtime.interpreter import (
    accelerator_line,
    backend,
    default_threads,
    delegate_name,
    make_interpreter,
)
from edgeseg.sizes import hw
from edgeseg.tflite.description import ModelMetadata, read_description


class Timings(NamedTuple):
    """Milliseconds spent in each stage of one ``segment()`` call."""

    preprocess_ms: float
    invoke_ms: float
    postprocess_ms: float
    group_ms: float = 0.0  # instance grouping, part of postprocess_ms

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.invoke_ms + self.postprocess_ms


class Segmentation(NamedTuple):
    """The result for one frame.

    Attributes:
        mask: H×W class ids (uint8, uint16 past 255 classes) at the frame's size.
        confidence: H×W float32 score of the winning class, when asked for.
        timings: Where the time went.
        instance_ids: H×W int32 instance ids (0: none) for an instance model or
            ``instances="components"``; else None.
        instances: The frame's :class:`~edgeseg.runtime.instances.Instance` list, or None.
    """

    mask: np.ndarray
    confidence: np.ndarray | None
    timings: Timings
    instance_ids: np.ndarray | None = None
    instances: list | None = None


def _labels(meta: ModelMetadata, layout: adapters.OutputLayout,
            notes: list[str]) -> tuple[str, ...]:
    """Class names for the output, background first."""
    n = {"scores": layout.channels, "binary": 2}.get(layout.kind, len(meta.labels))
    labels = meta.labels
    if labels and len(labels) == n:
        return labels
    if labels and len(labels) == n - 1:
        # Label files of binary/foreground models (MediaPipe's selfie: "selfie") name
        # only the classes that are not background.
        notes.append(f"the label file names only the foreground ({', '.join(labels)}); "
                     "class 0 is background")
        return ("background", *labels)
    if labels:
        warnings.warn(f"the model's metadata lists {len(labels)} labels for {n} classes; "
                      "using class numbers instead.", RuntimeWarning, stacklevel=3)
    if layout.kind == "binary":
        return ("background", "foreground")
    return tuple(f"class{i}" for i in range(n))


def pick_output(interpreter: Any, head: str | None, confidence: bool) -> int:
    """The cheapest output that answers: a model offering both an in-graph argmax and
    the scores it came from is read through the argmax unless confidence is asked for."""
    layouts: dict[int, adapters.OutputLayout] = {}
    for i in range(len(interpreter.get_output_details())):
        try:
            layouts[i] = adapters.output_layout(interpreter, head if i == 0 else None, i)
        except EdgesegError:
            continue
    ids = [i for i, lay in layouts.items() if lay.kind == "ids"]
    scores = [i for i, lay in layouts.items() if lay.kind == "scores"]
    if len(ids) == 1 and len(scores) == 1 and (
            layouts[ids[0]][1:3] == layouts[scores[0]][1:3]):
        return scores[0] if confidence else ids[0]
    return 0


def _spec(meta: ModelMetadata, details: dict[str, Any], notes: list[str]) -> Preprocessing:
    """The Preprocessing the model states, with defaults derived from its input tensor."""
    _, h, w, _ = (int(x) for x in details["shape"])
    mean, std = meta.mean, meta.std
    if mean is None or std is None:
        scale, zero_point = adapters.quantization(details)
        if np.dtype(details["dtype"]) == np.float32 or not scale:
            mean, std = DEFAULT_MEAN, DEFAULT_STD  # edgeseg's own x / 128 - 1
        else:  # the pixel itself is the tensor value (shifted for int8)
            shift = 128 if np.dtype(details["dtype"]) == np.int8 else 0
            mean, std = (float(zero_point + shift),) * 3, (1.0 / scale,) * 3
        notes.append(f"no normalization stated; using mean {mean[0]:g}, std {std[0]:g}")
    return Preprocessing(h, w, tuple(mean), tuple(std), meta.color,  # type: ignore[arg-type]
                         meta.interpolation)


class Segmenter:
    """Run a segmentation ``.tflite`` on camera frames.

    Preprocessing (mean/std, colour order, resize) and labels come from the model's
    own description (see :mod:`edgeseg.tflite.description`: sidecar or embedded
    edgeseg.json, else the standard TFLite metadata), else from the input tensor.
    Each frame costs one resize, one colour conversion or table lookup into the
    input tensor (:func:`edgeseg.preprocess.pixel_table`: the same numbers as
    :func:`edgeseg.preprocess.model_input`), the invoke, the cheapest reading of the
    output the model offers (its in-graph argmax; else an argmax on the raw 8-bit
    scores, never dequantized unless confidence is asked for) and one
    nearest-neighbour resize to the frame. Not thread-safe: one Segmenter per thread.

    Args:
        model_path: The ``.tflite`` model.
        threads: CPU threads (default: all cores).
        delegate: ``None``/``"cpu"``, ``"edgetpu"``, ``"gpu"`` (LiteRT's GPU accelerator,
            see :func:`edgeseg.runtime.interpreter.make_interpreter`) or a delegate library path.
        rgb: Frames are RGB (default: BGR, as OpenCV delivers them).
        fallback: Run on the CPU with a warning when the delegate can't be loaded.
        confidence: Also return the winning class's score per pixel (costs time).
        output: Which output holds the segmentation. Default: output 0, or for a model
            that offers an in-graph argmax beside its scores, the argmax (the scores
            when ``confidence`` is asked for).
        instances: ``None``: an instance model's instances (its centre and offset heads),
            none for other models; ``"components"``: connected components of the thing
            classes (every class but 0 unless the model names things); ``"off"``: none.
        track: Keep instance ids stable across frames (greedy mask-IoU matching).

    Raises:
        EdgesegError: Missing/corrupt model, input that isn't an image, unsupported output.
    """

    def __init__(self, model_path: str | os.PathLike, threads: int | None = None,
                 delegate: str | None = None, rgb: bool = False, fallback: bool = False,
                 confidence: bool = False, output: int | None = None,
                 instances: str | None = None, track: bool = False) -> None:
        import cv2  # the resize and colour conversions; adapters stay numpy-only

        self._cv2 = cv2
        self.model_path = str(model_path)
        t0 = time.perf_counter()
        self.interpreter = make_interpreter(model_path, threads, delegate, fallback)
        self.init_ms = (time.perf_counter() - t0) * 1000
        self.threads = threads or default_threads()
        self.delegate = delegate_name(self.interpreter)
        self.metadata = read_description(model_path)
        self.notes: list[str] = list(self.metadata.notes)
        self.input = adapters.input_details(self.interpreter)
        self.input_size = adapters.input_size(self.interpreter)  # (width, height)
        if self.metadata.size and self.metadata.size != self.input_size[::-1]:
            warnings.warn(f"the model's metadata ({self.metadata.source}) describes a "
                          f"{hw(*self.metadata.size)} input but the model "
                          f"takes {hw(*self.input_size[::-1])}; is it the right "
                          "sidecar? Using the model's size.", RuntimeWarning, stacklevel=2)
        self.instance_layout = ((self.metadata.description or {}).get("tflite") or {}).get("instance")
        if output is None and self.instance_layout:
            output = int(self.instance_layout["heads"]["semantic"])
        if output is None:
            output = pick_output(self.interpreter, self.metadata.head, confidence)
        self.output_index = output
        head = self.metadata.head if len(self.interpreter.get_output_details()) == 1 else None
        self.layout = adapters.output_layout(self.interpreter, head, output)
        self.labels = _labels(self.metadata, self.layout, self.notes)
        self.want_confidence = confidence
        self.spec = _spec(self.metadata, self.input, self.notes)
        scale, zero_point = adapters.quantization(self.input)
        lut = pixel_table(self.spec, self.input["dtype"], scale, zero_point)
        if self.spec.color == "BGR":  # the table is per RGB channel; the tensor is BGR
            lut = lut[:, ::-1]
        self.feeds_pixels = adapters.is_identity(lut)
        self._lut = np.ascontiguousarray(lut.reshape(1, 256, 3))
        self._swap = rgb != (self.spec.color == "RGB")
        self._nearest = getattr(cv2, "INTER_NEAREST_EXACT", cv2.INTER_NEAREST)
        w, h = self.input_size
        self._resized = np.empty((h, w, 3), np.uint8)
        self._swapped = np.empty((h, w, 3), np.uint8)
        oh, ow = self.layout.height, self.layout.width
        self._key = np.empty((oh, ow), np.uint16)
        self._tmp = np.empty((oh, ow), np.uint16)
        self._input_view = self.interpreter.tensor(self.input["index"])
        self._output_view = self.interpreter.tensor(
            adapters.output_details(self.interpreter, output)["index"])
        self._output_shape = (oh, ow) if self.layout.kind == "ids" else (oh, ow, -1)
        self.instance_reader = self._instance_reader(instances, track)

    def _instance_reader(self, mode: str | None, track: bool) -> Any:
        from edgeseg.runtime.instances import InstanceReader
        from edgeseg.runtime.tracking import IoUTracker

        if mode not in (None, "heads", "components", "off"):
            raise EdgesegError(f"--instances {mode!r} must be components or off.")
        if mode == "off" or (mode is None and not self.instance_layout):
            return None
        if mode == "heads" and not self.instance_layout:
            raise EdgesegError(f"{self.model_path} has no instance heads; use --instances components.")
        tracker = IoUTracker() if track else None
        if mode == "components":
            from edgeseg.runtime.components import component_ids

            things = (self.instance_layout or {}).get("things") or range(1, max(2, self.n_classes))
            return InstanceReader(None, None, max(self.n_classes, 2), tuple(things), "components",
                                  component_ids, tracker=tracker)
        return InstanceReader(self.interpreter, self.instance_layout, self.n_classes,
                              self.instance_layout.get("things", ()), tracker=tracker)

    @property
    def n_classes(self) -> int:
        """Classes the model predicts (0 when an in-graph argmax model has no labels)."""
        return len(self.labels)

    def describe(self) -> dict[str, Any]:
        """What is running, and where each setting came from: for logs, ``run`` and ``bench``."""
        be = backend()
        sources = {k: v for k, v in self.metadata.sources.items()}
        if any(n.startswith("no normalization stated") for n in self.notes):
            sources["mean/std"] = "default (from the input tensor)"
        if self.labels and self.labels[0] == "background" and "foreground" in " ".join(self.notes):
            sources["labels"] = sources.get("labels", "none") + " + background"
        return {
            "model": self.model_path, "runtime": be.name, "runtime_version": be.version,
            "threads": self.threads, "delegate": self.delegate,
            "accelerator": accelerator_line(self.interpreter),
            "input": [int(x) for x in self.input["shape"]],
            "input_dtype": np.dtype(self.input["dtype"]).name,
            "output": [self.layout.height, self.layout.width, self.layout.channels],
            "output_index": self.output_index,
            "output_kind": self.layout.kind, "output_dtype": np.dtype(self.layout.dtype).name,
            "feeds_pixels": self.feeds_pixels, "metadata": self.metadata.source,
            "preprocessing": self.spec.to_dict(), "sources": sources,
            "notes": list(self.notes), "labels": list(self.labels),
        }

    def _preprocess(self, frame: np.ndarray) -> None:
        cv2 = self._cv2
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise EdgesegError(f"frames must be H×W×3 uint8 images, got shape {frame.shape} "
                               f"{frame.dtype}.")
        w, h = self.input_size
        # The one resize definition (edgeseg.preprocess), into a buffer allocated once.
        src = resize_rgb(frame, h, w, self.spec.interpolation, dst=self._resized)
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

    def input_tensor(self, frame: np.ndarray) -> np.ndarray:
        """A copy of the input tensor this Segmenter feeds for ``frame`` (H×W×3)."""
        self._preprocess(frame)
        return np.array(self._input_view()[0])

    def _class_ids(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Class ids at model resolution (never a view of tensor memory) and the confidence."""
        lay = self.layout
        conf = None
        if lay.kind == "ids":
            ids = raw.astype(np.uint8 if self.n_classes <= 256 else np.uint16)
        elif lay.kind == "binary":
            ids = (raw[..., 0] > lay.threshold).view(np.uint8)
            if self.want_confidence:
                p = self._probability(raw[..., 0])
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

    def _probability(self, raw: np.ndarray) -> np.ndarray:
        p = adapters.dequantize(raw, self.layout.scale, self.layout.zero_point)
        return 1.0 / (1.0 + np.exp(-p)) if self.metadata.head == "logits" else p

    def _score_confidence(self, raw: np.ndarray) -> np.ndarray:
        scores = adapters.dequantize(raw, self.layout.scale, self.layout.zero_point)
        top = scores.max(axis=-1)
        if self.metadata.head == "logits" or top.max() > 1.0 or scores.min() < 0.0:
            return 1.0 / np.exp(scores - top[..., None]).sum(axis=-1)  # softmax of the winner
        return top

    def predict(self, frame: np.ndarray,
                scores: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Class ids at the model's output resolution, for evaluation and comparison.

        Args:
            frame: H×W×3 uint8 (BGR unless made with ``rgb=True``), any size.
            scores: Also return the dequantized per-class scores (h×w×C float32;
                for a 1-channel output, the stacked probabilities of classes 0 and 1).

        Returns:
            (h×w class ids, scores or None; None for an in-graph argmax).
        """
        self._preprocess(frame)
        self.interpreter.invoke()
        raw = self._output_view().reshape(self._output_shape)
        ids, _ = self._class_ids(raw)
        out = None
        if scores and self.layout.kind == "scores":
            out = adapters.dequantize(raw, self.layout.scale, self.layout.zero_point)
        elif scores and self.layout.kind == "binary":
            p = self._probability(raw[..., 0])
            out = np.stack([1.0 - p, p], axis=-1)
        del raw
        return ids, out

    def segment(self, frame: np.ndarray) -> Segmentation:
        """Segment one H×W×3 uint8 frame (BGR unless the Segmenter was made with ``rgb=True``)."""
        t0 = time.perf_counter()
        self._preprocess(frame)
        t1 = time.perf_counter()
        self.interpreter.invoke()
        t2 = time.perf_counter()
        raw = self._output_view().reshape(self._output_shape)
        ids, conf = self._class_ids(raw)
        inst_conf = conf
        if self.instance_reader is not None and conf is None and self.layout.kind == "scores":
            inst_conf = self._score_confidence(raw)
        del raw
        size = (frame.shape[1], frame.shape[0])
        tg = time.perf_counter()
        inst_ids = instances = None
        if self.instance_reader is not None:
            inst_ids, instances, id_class = self.instance_reader.read(ids, frame.shape[:2], inst_conf)
            if self.instance_reader.kind == "heads":  # the class mask agrees with the instances
                ids = vote_classes(ids, inst_ids, id_class)
            if inst_ids.shape[::-1] != size:
                inst_ids = self._cv2.resize(inst_ids, size, interpolation=self._nearest)
        group_ms = (time.perf_counter() - tg) * 1e3
        if ids.shape[::-1] != size:
            ids = self._cv2.resize(ids, size, interpolation=self._nearest)
            if conf is not None:
                conf = self._cv2.resize(conf, size, interpolation=self._nearest)
        t3 = time.perf_counter()
        return Segmentation(ids, conf, Timings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3,
                                               group_ms), inst_ids, instances)

    def panoptic(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and the Cityscapes-encoded instance map (``class * 1000 + id``) at the
        model's output resolution, for evaluation and ``predict``.

        Raises:
            EdgesegError: The Segmenter reads no instances (a semantic model without
                ``instances="components"``).
        """
        from edgeseg.runtime.instances import encode

        if self.instance_reader is None:
            raise EdgesegError(f"{self.model_path} gives no instances; pass instances='components'.")
        self._preprocess(frame)
        self.interpreter.invoke()
        raw = self._output_view().reshape(self._output_shape)
        ids, conf = self._class_ids(raw)
        if conf is None and self.layout.kind == "scores":
            conf = self._score_confidence(raw)
        del raw
        inst_ids, _, id_class = self.instance_reader.read(ids, ids.shape, conf)
        if self.instance_reader.kind == "heads":
            ids = vote_classes(ids, inst_ids, id_class)
        return ids, encode(ids, inst_ids, id_class)
