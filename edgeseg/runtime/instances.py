"""Instance grouping of Panoptic-DeepLab (Cheng et al., CVPR 2020) in vectorised numpy.

An instance model predicts, at its output resolution h×w, the class scores, a
class-agnostic object-centre heatmap and, per pixel, the offset (dy, dx) in output
pixels from the pixel to the centre of its object. Grouping keeps the heatmap's local
maxima (max-pooling "NMS") above a threshold as centres, moves every thing pixel by
its offset and gives it to the nearest centre; an instance's class is the majority of
its pixels' classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Optional

import numpy as np

from edgeseg.data.instances import THING_OFFSET  # Cityscapes encoding: class_id * 1000 + k


class Instance(NamedTuple):
    """One object in one frame.

    Attributes:
        id: Instance id (≥ 1; stable across frames when a tracker assigned it).
        class_id: Majority class of its pixels.
        area: Pixels at the frame's size (counted at the model's resolution, scaled).
        bbox: ``(x0, y0, x1, y1)`` in frame pixels, x1/y1 exclusive.
        centre: ``(x, y)`` of the predicted object centre in frame pixels.
        confidence: Mean class score of its pixels (0-1), or the centre's heat when
            the model gives no per-pixel score; NaN (None in ``to_dict``) when neither
            exists (components of an in-graph argmax).
    """

    id: int
    class_id: int
    area: int
    bbox: tuple[int, int, int, int]
    centre: tuple[float, float]
    confidence: float

    def to_dict(self, labels: Sequence[str] = ()) -> dict[str, object]:
        return {"id": self.id, "class": labels[self.class_id] if self.class_id < len(labels)
                else self.class_id, "class_id": self.class_id, "area": self.area,
                "bbox": list(self.bbox), "centre": [round(self.centre[0], 1), round(self.centre[1], 1)],
                "confidence": None if self.confidence != self.confidence else round(self.confidence, 4)}


# Panoptic-DeepLab's centre threshold, and a 7-pixel max-pooling window at the output size;
# ``train --task instance`` tunes both on its training scenes and records them in the model
# (``instance.grouping`` of its description), which the readers below then use.
THRESHOLD, KERNEL = 0.1, 7


def grouping_settings(layout: Optional[dict]) -> tuple[float, int]:
    """(centre threshold, max-pooling window) a model's description records, else the defaults."""
    g = (layout or {}).get("grouping") or {}
    return float(g.get("threshold", THRESHOLD)), int(g.get("kernel", KERNEL))


def max_pool(heat: np.ndarray, kernel: int) -> np.ndarray:
    """Max over a kernel×kernel window centred on each pixel (edges padded with -inf), separable."""
    r = kernel // 2
    padded = np.pad(heat, r, constant_values=-np.inf)
    h, w = heat.shape
    rows = padded[:, 0:w].copy()
    for i in range(1, kernel):
        np.maximum(rows, padded[:, i:i + w], out=rows)
    out = rows[0:h].copy()
    for i in range(1, kernel):
        np.maximum(out, rows[i:i + h], out=out)
    return out


def find_centres(heat: np.ndarray, threshold: float = THRESHOLD, kernel: int = KERNEL,
                 top_k: int = 64) -> np.ndarray:
    """Object centres: local maxima of the heatmap above ``threshold``, strongest first.

    Args:
        heat: h×w float32 centre heatmap (0-1).
        threshold: Minimum heat of a centre.
        kernel: Max-pooling window (odd), in output pixels: two centres closer than
            half of it cannot both survive.
        top_k: Keep at most this many.

    Returns:
        K×2 int array of (y, x), K ≤ top_k.
    """
    keep = (heat == max_pool(heat, kernel)) & (heat > threshold)
    ys, xs = np.nonzero(keep)
    order = np.argsort(-heat[ys, xs], kind="stable")
    ys, xs = ys[order], xs[order]
    if len(ys) > 1:
        # A plateau (an int8 heatmap's peak often spans several equal pixels) gives several
        # maxima of one object: drop any within the window of a stronger or earlier one.
        r = kernel // 2
        near = (np.abs(ys[:, None] - ys[None, :]) <= r) & (np.abs(xs[:, None] - xs[None, :]) <= r)
        first = np.argmax(near, axis=1)  # the first (strongest) candidate near each
        ys, xs = ys[first == np.arange(len(ys))], xs[first == np.arange(len(xs))]
    return np.stack([ys[:top_k], xs[:top_k]], 1).astype(np.int64)


def group(classes: np.ndarray, offsets: np.ndarray, centres: np.ndarray,
          things: np.ndarray) -> np.ndarray:
    """Give every thing pixel to the centre nearest to where its offset points.

    Args:
        classes: h×w class ids.
        offsets: h×w×2 float (dy, dx) in output pixels.
        centres: K×2 (y, x) from :func:`find_centres`.
        things: Boolean lookup over class ids (True for thing classes).

    Returns:
        h×w int32: 1..K (the centre's rank + 1) on thing pixels, 0 elsewhere.
    """
    h, w = classes.shape
    ids = np.zeros((h, w), np.int32)
    if not len(centres):
        return ids
    mask = things[classes]
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return ids
    off = offsets[ys, xs].astype(np.float32)
    py = ys.astype(np.float32) + off[:, 0]
    px = xs.astype(np.float32) + off[:, 1]
    cy = centres[:, 0].astype(np.float32)
    cx = centres[:, 1].astype(np.float32)
    d = (py[:, None] - cy[None, :]) ** 2 + (px[:, None] - cx[None, :]) ** 2
    ids[ys, xs] = np.argmin(d, axis=1).astype(np.int32) + 1
    return ids


def describe(ids: np.ndarray, classes: np.ndarray, n_classes: int, centres: np.ndarray,
             frame_size: tuple[int, int], confidence: Optional[np.ndarray] = None,
             heat: Optional[np.ndarray] = None) -> tuple[list[Instance], np.ndarray]:
    """The instance list of an id map, and each id's majority class.

    Args:
        ids: h×w int32 instance ids (0: none).
        classes: h×w class ids.
        n_classes: Classes of the model.
        centres: K×2 (y, x) centres at h×w, row i for id i+1 (None-like empty for components).
        frame_size: ``(height, width)`` of the frame the figures are scaled to.
        confidence: h×w per-pixel score, or None.
        heat: Centre heatmap, used for the confidence when ``confidence`` is None.

    Returns:
        (instances with area > 0, int array mapping id → class, index 0 unused).
    """
    h, w = ids.shape
    fh, fw = frame_size
    k = int(ids.max()) if ids.size else 0
    if k == 0:
        return [], np.zeros(1, np.int64)
    flat = ids.ravel().astype(np.int64)
    votes = np.bincount(flat * n_classes + classes.ravel().astype(np.int64),
                        minlength=(k + 1) * n_classes).reshape(k + 1, n_classes)
    cls = votes.argmax(1)
    area = np.bincount(flat, minlength=k + 1)
    yy, xx = np.nonzero(ids)
    sel = ids[yy, xx]
    x0 = np.full(k + 1, w, np.int64)
    y0 = np.full(k + 1, h, np.int64)
    x1 = np.zeros(k + 1, np.int64)
    y1 = np.zeros(k + 1, np.int64)
    np.minimum.at(x0, sel, xx)
    np.minimum.at(y0, sel, yy)
    np.maximum.at(x1, sel, xx + 1)
    np.maximum.at(y1, sel, yy + 1)
    if confidence is not None:
        conf = np.bincount(flat, weights=confidence.ravel(), minlength=k + 1) / np.maximum(area, 1)
    sy, sx = fh / h, fw / w
    out = []
    for i in np.flatnonzero(area[1:]) + 1:
        if len(centres) >= i:
            cy, cx = float(centres[i - 1][0]), float(centres[i - 1][1])
        else:  # components: the pixels' mean
            cy, cx = float(yy[sel == i].mean()), float(xx[sel == i].mean())
        if confidence is not None:
            c = float(conf[i])
        elif heat is not None and len(centres) >= i:
            c = float(heat[centres[i - 1][0], centres[i - 1][1]])
        else:
            c = float("nan")
        out.append(Instance(int(i), int(cls[i]), int(round(area[i] * sy * sx)),
                            (int(x0[i] * sx), int(y0[i] * sy), int(np.ceil(x1[i] * sx)),
                             int(np.ceil(y1[i] * sy))),
                            ((cx + 0.5) * sx, (cy + 0.5) * sy), c))
    return out, cls


def encode(classes: np.ndarray, ids: np.ndarray, id_class: np.ndarray) -> np.ndarray:
    """Cityscapes-encoded map (``class * 1000 + id``; class id elsewhere) as H×W int32."""
    out = classes.astype(np.int32)
    sel = ids > 0
    out[sel] = id_class[ids[sel]].astype(np.int32) * THING_OFFSET + ids[sel]
    return out


def vote_classes(classes: np.ndarray, ids: np.ndarray, id_class: np.ndarray) -> np.ndarray:
    """The class mask with every instance's pixels given the instance's majority class.

    Panoptic-DeepLab's semantic output of a panoptic prediction: where the class head
    mixes classes inside one grouped object, the object's vote decides (on 128² touching
    objects, +1 point of mIoU; benchmarks/instances.md). A new array; ``classes`` is kept.

    Args:
        classes: h×w class ids (uint8).
        ids: h×w int32 instance ids (0: none), as ``classes``.
        id_class: id → class (index 0 unused), from :func:`describe`.
    """
    out = classes.copy()
    sel = ids > 0
    out[sel] = id_class[ids[sel]].astype(out.dtype)
    return out


def panoptic_from_heads(scores: np.ndarray, heat: np.ndarray, offsets: np.ndarray,
                        things: Sequence[int], threshold: float = THRESHOLD,
                        kernel: int = KERNEL) -> tuple[np.ndarray, np.ndarray]:
    """One frame's class ids and Cityscapes-encoded panoptic map from float head outputs.

    What evaluation (``KerasPredictor``) and training's validation do with a model's
    heads, without a tracker: centres, grouping, each instance's majority class.

    Args:
        scores: h×w×C class scores (any monotone score: softmax or logits).
        heat: h×w centre heatmap (0-1).
        offsets: h×w×2 (dy, dx) in output pixels.
        things: Thing class ids.
        threshold: Least centre heat.
        kernel: Centre max-pooling window, output pixels.

    Returns:
        (h×w uint8 class ids (instances' pixels: their majority class, :func:`vote_classes`),
        h×w int32 ``class * 1000 + id`` on instances, the class id elsewhere).
    """
    n_classes = scores.shape[-1]
    ids = np.argmax(scores, axis=-1).astype(np.uint8)
    centres = find_centres(heat, threshold, kernel)
    inst = group(ids, offsets, centres, thing_lookup(things, n_classes))
    _, id_class = describe(inst, ids, n_classes, centres, ids.shape, None, heat)
    return vote_classes(ids, inst, id_class), encode(ids, inst, id_class)


def thing_lookup(things: Sequence[int], n_classes: int) -> np.ndarray:
    """Boolean lookup over class ids 0..max(n_classes, 256)-1, True for the thing classes."""
    lut = np.zeros(max(n_classes, 256), bool)
    lut[[t for t in things if 0 <= t < len(lut)]] = True
    return lut


def _dequantized(view: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if view.dtype == np.float32 or not scale:
        return view.astype(np.float32)
    return (view.astype(np.float32) - zero_point) * np.float32(scale)


class InstanceReader:
    """Reads the instances of one frame after the interpreter ran.

    ``kind="heads"``: an instance model's centre heatmap and offsets (see the module
    docstring). ``kind="components"``: connected components of the thing classes of
    any model's class mask (touching objects of a class merge); ``components`` is the
    labelling function (the runtime's OpenCV module supplies it).

    Args:
        interpreter: The interpreter (for ``heads``).
        layout: The description's ``instance`` block (``heads`` positions), for ``heads``.
        n_classes: Classes of the model.
        things: Thing class ids.
        kind: ``heads`` or ``components``.
        components: ``(classes, things) -> ids`` for ``components``.
        threshold: Least centre heat (0-1); None: the model's recorded value (``layout``'s
            ``grouping``), else ``THRESHOLD``.
        kernel: Centre max-pooling window, output pixels; None: as ``threshold``.
        top_k: Most instances per frame.
        tracker: Renumbers ids to be stable across frames (None: per-frame ids).
    """

    def __init__(self, interpreter: object, layout: dict | None, n_classes: int,
                 things: Sequence[int], kind: str = "heads", components: object = None,
                 threshold: Optional[float] = None, kernel: Optional[int] = None, top_k: int = 64,
                 tracker: object = None) -> None:
        self.kind, self.n_classes, self.things = kind, n_classes, tuple(things)
        t, k = grouping_settings(layout)
        self.threshold = t if threshold is None else threshold
        self.kernel, self.top_k = k if kernel is None else kernel, top_k
        self._lut = thing_lookup(self.things, n_classes)
        self._components = components
        self.tracker = tracker
        self._views: dict[str, object] = {}
        if kind == "heads":
            details = interpreter.get_output_details()  # type: ignore[attr-defined]
            for head in ("center", "offset"):
                d = details[layout["heads"][head]]  # type: ignore[index]
                scale, zp = d["quantization"]
                self._views[head] = (interpreter.tensor(d["index"]), float(scale), int(zp))  # type: ignore[attr-defined]

    def head(self, name: str) -> np.ndarray:
        """The dequantized ``center`` (h×w×1) or ``offset`` (h×w×2) output of the last invoke."""
        view, scale, zp = self._views[name]  # type: ignore[misc]
        return _dequantized(view()[0], scale, zp)  # a copy: never a view of tensor memory

    def read(self, classes: np.ndarray, frame_size: tuple[int, int],
             confidence: Optional[np.ndarray] = None) -> tuple[np.ndarray, list[Instance], np.ndarray]:
        """(h×w int32 ids, instances, id → class) for the frame just invoked."""
        heat = None
        if self.kind == "heads":
            heat = self.head("center")[..., 0]
            centres = find_centres(heat, self.threshold, self.kernel, self.top_k)
            ids = group(classes, self.head("offset"), centres, self._lut)
        else:
            ids = self._components(classes, self.things)  # type: ignore[operator]
            centres = np.zeros((0, 2), np.int64)
        instances, id_class = describe(ids, classes, self.n_classes, centres, frame_size,
                                       confidence, heat)
        if self.tracker is not None:
            ids, instances = self.tracker.update(ids, instances)  # type: ignore[attr-defined]
            id_class = np.zeros(int(ids.max()) + 1 if ids.size else 1, np.int64)
            for i in instances:
                id_class[i.id] = i.class_id
        return ids, instances, id_class
