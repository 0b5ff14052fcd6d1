"""Synthetic scenes: shapes on cluttered backgrounds, a small but real segmentation task."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgeseg.atomic import atomic_path, write_bytes, write_text
from edgeseg.errors import EdgesegError

# Classes differ by shape only; colours are random for every object.
CLASS_NAMES = ("background", "ellipse", "box", "bar", "triangle", "cross", "star", "ring")
MIN_CLASSES, MAX_CLASSES = 2, len(CLASS_NAMES)
FPS = 12

# One object: (class id, centre x, centre y, size a, size b, angle in degrees).
# What a and b mean depends on the class; all are fractions of the image's smaller side.
Shape = tuple[int, float, float, float, float, float]


def class_names(n_classes: int) -> tuple[str, ...]:
    """Names of the synthetic classes, background first."""
    _check_classes(n_classes)
    return CLASS_NAMES[:n_classes]


def _check_classes(n_classes: int) -> None:
    if not MIN_CLASSES <= n_classes <= MAX_CLASSES:
        raise EdgesegError(
            f"synthetic data has {MIN_CLASSES} to {MAX_CLASSES} classes "
            f"({', '.join(CLASS_NAMES)}); got {n_classes}."
        )


def _check_dataset_args(n_classes: int, count: int, height: int, width: int) -> None:
    """The checks every synthetic dataset writer makes before it writes anything."""
    _check_classes(n_classes)
    if count < 1:
        raise EdgesegError(f"--count must be at least 1 (got {count}).")
    if min(height, width) < 32:
        raise EdgesegError(f"synthetic images must be at least 32×32 (got {height}×{width}, H×W).")


@dataclass(frozen=True)
class SynthReport:
    """What ``synthesize`` wrote.

    Attributes:
        out: Dataset folder (``images/``, ``annotations/``, ``labels.txt``).
        count: Number of image/mask pairs.
        n_classes: Classes, background included.
        height: Image height.
        width: Image width.
        seed: Seed the data was drawn from.
        labels: Class names, background first.
        class_share: Share of all mask pixels per class.
        video: The mp4 clip, when one was asked for.
        frames: Frames in the clip (0 without one).
        seconds: Wall time taken.
    """

    out: Path
    count: int
    n_classes: int
    height: int
    width: int
    seed: int
    labels: tuple[str, ...]
    class_share: tuple[float, ...] = field(default=())
    video: Path | None = None
    frames: int = 0
    seconds: float = 0.0


def _random_shape(rng: np.random.Generator, cls: int) -> Shape:
    """Size ranges keep every object at least ~1/6 of the image and bars/rings thick."""
    u = rng.uniform
    cx, cy, angle = u(0.12, 0.88), u(0.12, 0.88), u(0, 180)
    if cls == 1:    # ellipse: semi-axes
        a, b = u(0.10, 0.24), u(0.09, 0.22)
    elif cls == 2:  # box: side lengths, near square
        a = u(0.20, 0.40)
        b = a * u(0.65, 1.0)
    elif cls == 3:  # bar: length, thickness
        a, b = u(0.45, 0.80), u(0.09, 0.14)
    elif cls == 4:  # triangle: circumradius, vertex jitter
        a, b = u(0.14, 0.28), u(-0.25, 0.25)
    elif cls == 5:  # cross: half arm length, half thickness
        a, b = u(0.15, 0.26), u(0.045, 0.07)
    elif cls == 6:  # star: outer radius, inner/outer ratio
        a, b = u(0.15, 0.28), u(0.38, 0.5)
    else:           # ring: outer radius, thickness
        a, b = u(0.14, 0.26), u(0.085, 0.11)
    return cls, cx, cy, a, b, angle


def _polygon(shape: Shape, s: float) -> np.ndarray:
    """Vertices (N×2, pixels, relative to the centre) of a polygonal shape."""
    cls, _, _, a, b, angle = shape
    if cls == 4:
        t = np.deg2rad(angle) + np.array([0.0, 2.0944 + b, 4.1888 - b])
        pts = np.stack([np.cos(t), np.sin(t)], 1) * a
    elif cls == 5:
        lo, hi = b, a
        pts = np.array([(lo, hi), (lo, lo), (hi, lo), (hi, -lo), (lo, -lo), (lo, -hi),
                        (-lo, -hi), (-lo, -lo), (-hi, -lo), (-hi, lo), (-lo, lo), (-lo, hi)])
    elif cls == 6:
        t = np.deg2rad(angle) + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, a, a * b)
        pts = np.stack([np.cos(t) * r, np.sin(t) * r], 1)
    else:  # box (2) and bar (3): a rectangle a×b
        pts = np.array([(-a, -b), (a, -b), (a, b), (-a, b)]) / 2
    if cls in (2, 3, 5):
        c, si = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
        pts = pts @ np.array([[c, si], [-si, c]])
    return pts * s


def _draw(img: np.ndarray, mask: np.ndarray, shape: Shape, colour: tuple[int, ...]) -> None:
    """Draw one object into the image (colour) and the mask (class id), same pixels."""
    cls, cx, cy, a, b, angle = shape
    h, w = mask.shape
    s = min(h, w)
    centre = (int(round(cx * w)), int(round(cy * h)))
    for target, value in ((img, colour), (mask, int(cls))):
        if cls == 1:
            axes = (max(1, int(round(a * s))), max(1, int(round(b * s))))
            cv2.ellipse(target, centre, axes, angle, 0, 360, value, -1)
        elif cls == 7:
            thick = max(2, int(round(b * s)))
            r = max(thick, int(round(a * s - thick / 2)))
            cv2.circle(target, centre, r, value, thick)
        else:
            pts = np.round(_polygon(shape, s) + centre).astype(np.int32)
            cv2.fillPoly(target, [pts], value)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Gradient + clutter that is not an object: stripes, smooth noise, thin lines, small dots."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    t = (xx * np.cos(theta) + yy * np.sin(theta)) / max(h, w)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    bg = c0 + (c1 - c0) * t[..., None]
    if rng.random() < 0.5:  # periodic stripes
        phi = rng.uniform(0, np.pi)
        period = rng.uniform(0.04, 0.2) * max(h, w)
        wave = np.sin(2 * np.pi * (xx * np.cos(phi) + yy * np.sin(phi)) / period)
        bg += wave[..., None] * rng.uniform(-50, 50, 3)
    if rng.random() < 0.6:  # smooth colour blotches
        grid = rng.normal(0, 1, (rng.integers(3, 7), rng.integers(3, 7), 3)).astype(np.float32)
        bg += cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC) * rng.uniform(10, 40)
    out = np.clip(bg, 0, 255).astype(np.uint8)
    s = min(h, w)
    for _ in range(rng.integers(0, 6)):  # thin lines, far thinner than a bar
        p0 = tuple(int(v) for v in rng.integers(0, (w, h)))
        p1 = tuple(int(v) for v in rng.integers(0, (w, h)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.line(out, p0, p1, colour, int(rng.integers(1, max(2, s // 48) + 1)))
    for _ in range(rng.integers(0, 8)):  # dots, far smaller than an object
        p = tuple(int(v) for v in rng.integers(0, (w, h)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(out, p, int(rng.integers(1, max(2, s // 20) + 1)), colour, -1)
    return out


def _colour(rng: np.random.Generator, ref: np.ndarray) -> tuple[int, int, int]:
    """A random colour far enough from ``ref`` (the background's mean) to be seen."""
    best, best_d = None, -1.0
    for _ in range(8):
        c = rng.integers(0, 256, 3)
        d = float(np.linalg.norm(c - ref))
        if d > best_d:
            best, best_d = c, d
        if d >= 110:
            break
    return tuple(int(v) for v in best)  # type: ignore[return-value]


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Camera-like degradations on the image only: blur, contrast/brightness, noise."""
    if rng.random() < 0.3:
        k = int(rng.choice((3, 5)))
        img = cv2.GaussianBlur(img, (k, k), 0)
    x = img.astype(np.float32) * rng.uniform(0.75, 1.25) + rng.uniform(-30, 30)
    x += rng.normal(0, rng.uniform(2, 12), img.shape).astype(np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


def _scene_shapes(rng: np.random.Generator, n_classes: int, top: int) -> list[Shape]:
    n = int(rng.integers(2, 7))
    classes = [int(c) for c in rng.integers(1, n_classes, n - 1)] + [top]
    return [_random_shape(rng, c) for c in classes]


def render_scene(
    rng: np.random.Generator, n_classes: int, height: int, width: int, top: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic scene.

    Args:
        rng: Random generator (the scene is a function of its state).
        n_classes: Classes, background included (2..8).
        height: Image height.
        width: Image width.
        top: Class of the object drawn last (always visible); random when None.

    Returns:
        ``(rgb, mask)``: H×W×3 uint8 RGB and H×W uint8 class ids.
    """
    _check_classes(n_classes)
    if top is None:
        top = int(rng.integers(1, n_classes))
    img = _background(rng, height, width)
    mask = np.zeros((height, width), np.uint8)
    ref = img.reshape(-1, 3).mean(0)
    for shape in _scene_shapes(rng, n_classes, top):
        _draw(img, mask, shape, _colour(rng, ref))
    return _finish(rng, img), mask


def _png(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise EdgesegError("OpenCV could not encode a PNG; check the opencv installation.")
    return buf.tobytes()


def _guard_folder(out: Path, count: int) -> None:
    """Refuse to mix a new dataset with files a previous run (or the user) left there."""
    expected = {f"{i:05d}.png" for i in range(count)}
    for sub in ("images", "annotations"):
        folder = out / sub
        if folder.is_dir():
            stray = sorted(p.name for p in folder.iterdir() if p.name not in expected)
            if stray:
                raise EdgesegError(
                    f"{folder} already holds other files ({', '.join(stray[:3])}"
                    f"{', ...' if len(stray) > 3 else ''}); "
                    "pick an empty --out folder or delete it."
                )


def synthesize(
    out: Path,
    n_classes: int = 4,
    count: int = 200,
    height: int = 128,
    width: int = 128,
    seed: int = 0,
    video: Path | None = None,
    frames: int = 60,
    progress: Callable[[int], None] | None = None,
) -> SynthReport:
    """Write a synthetic dataset: ``out/images/NNNNN.png``, ``out/annotations/NNNNN.png``, labels.

    Image ``i`` depends only on ``(seed, i)``, so the same seed gives identical files
    and a larger ``count`` extends a smaller one.

    Args:
        out: Dataset folder to write (created; must not hold other images).
        n_classes: Classes, background included (2..8).
        count: Number of image/mask pairs.
        height: Image height in pixels.
        width: Image width in pixels.
        seed: Random seed.
        video: Also write an mp4 clip of moving objects here.
        frames: Frames in the clip.
        progress: Called with the number of pairs written so far.

    Returns:
        A SynthReport with the class pixel shares.
    """
    _check_dataset_args(n_classes, count, height, width)
    out = Path(out)
    _guard_folder(out, count)
    start = time.perf_counter()
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    pixels = np.zeros(n_classes, np.int64)
    for i in range(count):
        rng = np.random.default_rng((seed, i))
        rgb, mask = render_scene(rng, n_classes, height, width, top=1 + i % (n_classes - 1))
        pixels += np.bincount(mask.ravel(), minlength=n_classes)
        write_bytes(out / "images" / f"{i:05d}.png", _png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)))
        write_bytes(out / "annotations" / f"{i:05d}.png", _png(mask))
        if progress is not None:
            progress(i + 1)
    labels = class_names(n_classes)
    write_text(out / "labels.txt", "\n".join(labels) + "\n")
    n_frames = 0
    if video is not None:
        n_frames = write_video(Path(video), n_classes, frames, height, width, seed)
    return SynthReport(
        out=out, count=count, n_classes=n_classes, height=height, width=width, seed=seed,
        labels=labels, class_share=tuple(float(v) for v in pixels / pixels.sum()),
        video=Path(video) if video is not None else None, frames=n_frames,
        seconds=time.perf_counter() - start,
    )


def video_frames(
    n_classes: int, frames: int, height: int, width: int, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Frames of a clip: the same kind of scene with objects drifting, turning and bouncing.

    Yields:
        ``frames`` pairs of (H×W×3 uint8 RGB, H×W uint8 class ids), one at a time.
    """
    _check_classes(n_classes)
    rng = np.random.default_rng((seed, 1 << 30))
    background = _background(rng, height, width)
    ref = background.reshape(-1, 3).mean(0)
    shapes = [list(s) for s in _scene_shapes(rng, n_classes, int(rng.integers(1, n_classes)))]
    colours = [_colour(rng, ref) for _ in shapes]
    speed = rng.uniform(0.004, 0.012, (len(shapes), 2)) * rng.choice((-1, 1), (len(shapes), 2))
    spin = rng.uniform(-3, 3, len(shapes))
    for _ in range(frames):
        img, mask = background.copy(), np.zeros((height, width), np.uint8)
        for shape, colour in zip(shapes, colours):
            _draw(img, mask, tuple(shape), colour)  # type: ignore[arg-type]
        yield _finish(rng, img), mask
        for k, shape in enumerate(shapes):
            for j in (0, 1):  # bounce off the borders, keeping the centre inside
                shape[1 + j] += speed[k, j]
                if not 0.08 < shape[1 + j] < 0.92:
                    speed[k, j] = -speed[k, j]
                    shape[1 + j] = min(0.92, max(0.08, shape[1 + j]))
            shape[5] = (shape[5] + spin[k]) % 360


def write_video(
    path: Path, n_classes: int, frames: int, height: int, width: int, seed: int = 0
) -> int:
    """Write ``video_frames`` as an mp4 (mp4v) clip at 12 fps; returns the frame count."""
    if frames < 1:
        raise EdgesegError(f"--frames must be at least 1 (got {frames}).")
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
        if not writer.isOpened():
            raise EdgesegError(
                f"OpenCV cannot write {path.name}: no mp4v encoder; use a .mp4 name "
                "and an opencv build with FFmpeg."
            )
        try:
            for rgb, _ in video_frames(n_classes, frames, height, width, seed):
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    return frames
