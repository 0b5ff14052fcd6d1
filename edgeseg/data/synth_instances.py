"""Synthetic instance scenes: groups of 2-3 same-class objects that touch, with Cityscapes-encoded instance masks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from edgeseg.atomic import write_bytes, write_text
from edgeseg.data.instances import INSTANCES_DIR, THING_OFFSET, png16
from edgeseg.data.synth import (
    Shape,
    SynthReport,
    _background,
    _check_classes,
    _check_dataset_args,
    _colour,
    _draw,
    _finish,
    _guard_folder,
    _png,
    _random_shape,
    class_names,
)
from edgeseg.errors import EdgesegError

SIZE_SCALE = 0.6  # objects smaller than the semantic scenes', so groups of 2-3 fit
MIN_VISIBLE = 12  # px at 128²: objects hidden below this are dropped (counted as background)


def _scaled(shape: Shape, k: float) -> Shape:
    cls, cx, cy, a, b, angle = shape
    # b is a size for ellipses, boxes, bars, crosses and rings; a ratio or jitter otherwise.
    return cls, cx, cy, a * k, b * k if cls in (1, 2, 3, 5, 7) else b, angle


def _object_mask(shape: Shape, h: int, w: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    _draw(img, mask, shape, (0, 0, 0))
    return mask > 0


def _touching(rng: np.random.Generator, first: Shape, first_mask: np.ndarray, h: int, w: int) -> Shape:
    """A shape of the same class placed against ``first``: moved out along a random
    direction until it overlaps less than 12 % of its area (so the two touch)."""
    cls, cx, cy, *_ = first
    other = _scaled(_random_shape(rng, cls), SIZE_SCALE)
    theta = rng.uniform(0, 2 * np.pi)
    s = min(h, w)
    cand = other
    for t in np.arange(0.04, 0.6, 0.02):
        cand = (cls, cx + np.cos(theta) * t * s / w, cy + np.sin(theta) * t * s / h, *other[3:])
        m = _object_mask(cand, h, w)
        area = int(m.sum())
        if area and (m & first_mask).sum() < 0.12 * area:
            break
    return cand


def _group_shapes(rng: np.random.Generator, n_classes: int, h: int, w: int) -> list[Shape]:
    """1-3 groups of 2-3 same-class objects touching one another."""
    shapes: list[Shape] = []
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(1, n_classes))
        first = _scaled(_random_shape(rng, cls), SIZE_SCALE)
        group = [first]
        mask = _object_mask(first, h, w)
        for _ in range(int(rng.integers(1, 3))):
            nxt = _touching(rng, group[-1], mask, h, w)
            group.append(nxt)
            mask = _object_mask(nxt, h, w)
        shapes += group
    return shapes


def _paint(img: np.ndarray, shapes: list[Shape], colours: list[tuple[int, int, int]],
           numbers: Optional[list[int]] = None) -> np.ndarray:
    """Draw the shapes in order (later ones occlude); returns the H×W uint16 instance map."""
    h, w = img.shape[:2]
    inst = np.zeros((h, w), np.int32)
    per_class: dict[int, int] = {}
    for i, (shape, colour) in enumerate(zip(shapes, colours)):
        m = _object_mask(shape, h, w)
        img[m] = colour
        cls = int(shape[0])
        if numbers is None:
            per_class[cls] = per_class.get(cls, 0) + 1
            k = per_class[cls]
        else:
            k = numbers[i]
        inst[m] = cls * THING_OFFSET + k
    # An object almost hidden is not one a person would label: background.
    values, counts = np.unique(inst, return_counts=True)
    for v, c in zip(values, counts):
        if v >= THING_OFFSET and c < MIN_VISIBLE * (h * w) / (128 * 128):
            inst[inst == v] = 0
    return inst.astype(np.uint16)


def render_instance_scene(rng: np.random.Generator, n_classes: int, height: int,
                          width: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene of touching same-class objects.

    Returns:
        ``(rgb, instances)``: H×W×3 uint8 RGB and H×W uint16 Cityscapes-encoded instances
        (every class but background is a thing class).
    """
    _check_classes(n_classes)
    img = _background(rng, height, width)
    ref = img.reshape(-1, 3).mean(0)
    shapes = _group_shapes(rng, n_classes, height, width)
    inst = _paint(img, shapes, [_colour(rng, ref) for _ in shapes])
    return _finish(rng, img), inst


def synthesize_instances(out: Path, n_classes: int = 4, count: int = 200, height: int = 128,
                         width: int = 128, seed: int = 0,
                         progress: Optional[Callable[[int], None]] = None,
                         video: Optional[Path] = None, frames: int = 60) -> SynthReport:
    """Write ``images/``, ``annotations/`` (class ids) and ``instances/`` (16-bit, Cityscapes
    encoding) of touching-object scenes; image ``i`` depends only on ``(seed, i)``. With
    ``video``, also an mp4 of :func:`instance_video_frames` (its ground truth is that
    generator's, for the same seed and size).

    Raises:
        EdgesegError: Bad class count, count < 1, images under 32×32, or a folder holding other files.
    """
    _check_dataset_args(n_classes, count, height, width)
    out = Path(out)
    _guard_folder(out, count)
    start = time.perf_counter()
    for sub in ("images", "annotations", INSTANCES_DIR):
        (out / sub).mkdir(parents=True, exist_ok=True)
    pixels = np.zeros(n_classes, np.int64)
    for i in range(count):
        rng = np.random.default_rng((seed, i, 7))
        rgb, inst = render_instance_scene(rng, n_classes, height, width)
        classes = np.where(inst >= THING_OFFSET, inst // THING_OFFSET, inst).astype(np.uint8)
        pixels += np.bincount(classes.ravel(), minlength=n_classes)
        name = f"{i:05d}.png"
        write_bytes(out / "images" / name, _png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)))
        write_bytes(out / "annotations" / name, _png(classes))
        write_bytes(out / INSTANCES_DIR / name, png16(inst))
        if progress is not None:
            progress(i + 1)
    labels = class_names(n_classes)
    write_text(out / "labels.txt", "\n".join(labels) + "\n")
    if video is not None:
        write_instance_video(Path(video), n_classes, frames, height, width, seed)
    return SynthReport(out=out, count=count, n_classes=n_classes, height=height, width=width,
                       seed=seed, labels=labels,
                       class_share=tuple(float(v) for v in pixels / pixels.sum()),
                       video=Path(video) if video is not None else None,
                       frames=frames if video is not None else 0,
                       seconds=time.perf_counter() - start)


def write_instance_video(path: Path, n_classes: int, frames: int, height: int, width: int,
                         seed: int = 0) -> int:
    """Write :func:`instance_video_frames` as an mp4 (mp4v) clip at 12 fps; returns the frame count."""
    from edgeseg.atomic import atomic_path
    from edgeseg.data.synth import FPS

    if frames < 1:
        raise EdgesegError(f"--frames must be at least 1 (got {frames}).")
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
        if not writer.isOpened():
            raise EdgesegError(f"OpenCV cannot write {path.name}: no mp4v encoder; use a .mp4 name "
                               "and an opencv build with FFmpeg.")
        try:
            for rgb, _ in instance_video_frames(n_classes, frames, height, width, seed):
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    return frames


def instance_video_frames(n_classes: int, frames: int, height: int, width: int,
                          seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A clip of touching groups drifting across the frame, each object keeping its number.

    Groups move as one (so their objects stay in contact) and bounce off the borders;
    groups may pass over one another.

    Yields:
        ``frames`` pairs of (H×W×3 uint8 RGB, H×W uint16 instances whose ``k`` is the same
        object in every frame).
    """
    _check_classes(n_classes)
    rng = np.random.default_rng((seed, 1 << 30, 7))
    background = _background(rng, height, width)
    ref = background.reshape(-1, 3).mean(0)
    shapes = [list(s) for s in _group_shapes(rng, n_classes, height, width)]
    colours = [_colour(rng, ref) for _ in shapes]
    numbers = list(range(1, len(shapes) + 1))
    # Objects of one group were drawn one after another from the same first object:
    # a new group starts where the class changes or the distance jumps; give each its velocity.
    group = np.zeros(len(shapes), int)
    for i in range(1, len(shapes)):
        near = np.hypot(shapes[i][1] - shapes[i - 1][1], shapes[i][2] - shapes[i - 1][2]) < 0.45
        group[i] = group[i - 1] + (0 if shapes[i][0] == shapes[i - 1][0] and near else 1)
    speed = rng.uniform(0.004, 0.01, (group.max() + 1, 2)) * rng.choice((-1, 1), (group.max() + 1, 2))
    for _ in range(frames):
        img = background.copy()
        inst = _paint(img, [tuple(s) for s in shapes], colours, numbers)  # type: ignore[misc]
        yield _finish(rng, img), inst
        for g in range(group.max() + 1):
            members = [i for i in range(len(shapes)) if group[i] == g]
            for j in (0, 1):
                centre = np.mean([shapes[i][1 + j] for i in members])
                if not 0.1 < centre + speed[g, j] < 0.9:
                    speed[g, j] = -speed[g, j]
                for i in members:
                    shapes[i][1 + j] += speed[g, j]
