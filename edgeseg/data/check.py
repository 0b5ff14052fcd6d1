"""Dataset checks: pairing, readability, sizes, class ids and the class balance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edgeseg.data.dataset import (
    ANNOTATIONS_DIR,
    IMAGE_SUFFIXES,
    IMAGES_DIR,
    MASK_SUFFIX,
    _files,
    _has_layout,
    _require_layout,
)
from edgeseg.errors import EdgesegError

if TYPE_CHECKING:
    from rich.table import Table

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Issue:
    """One finding about one file.

    Attributes:
        level: ``"error"`` (training would fail or learn wrong labels) or ``"warning"``.
        path: The file concerned.
        message: What is wrong and what to do.
    """

    level: str
    path: Path
    message: str


@dataclass(frozen=True)
class CheckResult:
    """What ``check_dataset`` found.

    Attributes:
        root: The dataset folder.
        n_classes: Number of classes checked against.
        folders: The image/annotation folders checked (``root`` or ``root/train``, ``root/val``).
        n_pairs: Image/mask pairs found.
        issues: Findings, in folder then file order.
        pixels: Mask pixels per class id ``0..n_classes-1``.
        images_per_class: Masks in which each class appears.
        labels: Class names (from ``labels.txt`` when it fits, else ``class0…``).
        invalid_pixels: Mask pixels whose id is ``>= n_classes``.
    """

    root: Path
    n_classes: int
    folders: tuple[Path, ...]
    n_pairs: int
    issues: tuple[Issue, ...] = ()
    pixels: tuple[int, ...] = ()
    images_per_class: tuple[int, ...] = ()
    labels: tuple[str, ...] = field(default=())
    invalid_pixels: int = 0

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == WARNING]

    @property
    def ok(self) -> bool:
        """True when nothing would stop training or corrupt its labels."""
        return not self.errors

    @property
    def class_share(self) -> tuple[float, ...]:
        """Share of mask pixels per class (zeros when no mask was readable)."""
        total = sum(self.pixels) + self.invalid_pixels
        return tuple(p / total if total else 0.0 for p in self.pixels)


def dataset_folders(root: Path) -> tuple[Path, ...]:
    """The folders holding ``images/`` + ``annotations/``: ``root`` itself or its splits.

    Raises:
        EdgesegError: Neither layout is there.
    """
    root = Path(root)
    if not _has_layout(root):
        splits = tuple(root / s for s in ("train", "val", "test") if _has_layout(root / s))
        if splits:
            return splits
    _require_layout(root)
    return (root,)


def read_labels(root: Path, n_classes: int) -> tuple[str, ...]:
    """Class names from ``root/labels.txt`` when it has one per class, else ``class0…``."""
    path = Path(root) / "labels.txt"
    if path.is_file():
        names = [s.strip() for s in path.read_text(errors="replace").splitlines() if s.strip()]
        if len(names) == n_classes:
            return tuple(names)
    return tuple(f"class{i}" for i in range(n_classes))


def _decode(path: Path, issues: list[Issue], what: str) -> np.ndarray | None:
    """Decode a file as stored (no conversion), or record why it cannot be."""
    try:
        size = path.stat().st_size
        raw = np.fromfile(path, dtype=np.uint8) if size else None
    except OSError as e:
        issues.append(Issue(ERROR, path, f"cannot read the {what}: {e.strerror or e}."))
        return None
    if raw is None:
        issues.append(Issue(ERROR, path, f"empty {what} file (0 bytes); replace or delete it."))
        return None
    arr = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if arr is None:
        issues.append(Issue(ERROR, path, f"unreadable {what}: not a valid image file."))
    return arr


def _check_image(path: Path, issues: list[Issue]) -> tuple[int, int] | None:
    arr = _decode(path, issues, "image")
    if arr is None:
        return None
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if channels == 1:
        issues.append(Issue(WARNING, path, "grey image; it is converted to RGB."))
    elif channels == 4:
        issues.append(Issue(WARNING, path, "RGBA image; the alpha channel is dropped."))
    return arr.shape[:2]


def _check_mask(path: Path, n_classes: int, issues: list[Issue]) -> np.ndarray | None:
    arr = _decode(path, issues, "mask")
    if arr is None:
        return None
    if arr.ndim == 3:
        if arr.shape[2] >= 3 and not (
            np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])
        ):
            issues.append(Issue(
                WARNING, path,
                "colour mask: only its first channel (blue, as OpenCV reads it) is used as "
                "class ids; save masks as single-channel PNGs of class ids.",
            ))
        arr = arr[..., 0]
    bad = np.unique(arr[arr >= n_classes]) if arr.size else np.array([])
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:6]) + (", ..." if bad.size > 6 else "")
        hint = " (255 is often an 'ignore' label; map it to a class)" if 255 in bad else ""
        issues.append(Issue(
            ERROR, path, f"class ids {shown} are >= --classes {n_classes}{hint}.",
        ))
    return arr


def _check_folder(
    folder: Path, n_classes: int, issues: list[Issue], pixels: np.ndarray, present: np.ndarray,
    progress: Callable[[int], None] | None, done: int,
) -> tuple[int, int]:
    """Check one images/ + annotations/ folder; returns (pairs, files visited so far)."""
    images_dir, masks_dir = folder / IMAGES_DIR, folder / ANNOTATIONS_DIR
    images: dict[str, Path] = {}
    for p in _files(images_dir, IMAGE_SUFFIXES):
        if p.stem in images:
            issues.append(Issue(ERROR, p, f"has the same name as {images[p.stem].name}; "
                                          "keep one image per mask."))
        else:
            images[p.stem] = p
    masks = {p.stem: p for p in _files(masks_dir, (MASK_SUFFIX,))}
    for d, what in ((images_dir, "an image"), (masks_dir, "a PNG mask")):
        allowed = IMAGE_SUFFIXES if d is images_dir else (MASK_SUFFIX,)
        for p in sorted(d.iterdir()):
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in allowed:
                issues.append(Issue(WARNING, p, f"ignored: not {what} "
                                                f"({', '.join(allowed)})."))
    for stem in sorted(images.keys() - masks.keys()):
        issues.append(Issue(ERROR, images[stem],
                            f"image without mask: expected {ANNOTATIONS_DIR}/{stem}.png."))
    for stem in sorted(masks.keys() - images.keys()):
        issues.append(Issue(ERROR, masks[stem],
                            f"mask without image: expected {IMAGES_DIR}/{stem}.jpg or .png."))
    stems = sorted(images.keys() & masks.keys())
    for stem in stems:
        size = _check_image(images[stem], issues)
        mask = _check_mask(masks[stem], n_classes, issues)
        if mask is not None:
            counts = np.bincount(mask.ravel(), minlength=n_classes + 1)
            pixels[:n_classes] += counts[:n_classes]
            pixels[n_classes] += counts[n_classes:].sum()
            counts = counts[:n_classes]
            present += counts > 0
            if size is not None and tuple(mask.shape) != tuple(size):
                issues.append(Issue(
                    ERROR, masks[stem],
                    f"size {mask.shape[1]}x{mask.shape[0]} differs from its image's "
                    f"{size[1]}x{size[0]} ({images[stem].name}); masks must match pixel for pixel.",
                ))
        done += 1
        if progress is not None:
            progress(done)
    return len(stems), done


def count_pairs(root: Path) -> int:
    """Rough number of pairs to check (for a progress bar)."""
    return sum(len(_files(f / ANNOTATIONS_DIR, (MASK_SUFFIX,))) for f in dataset_folders(root))


def check_dataset(
    root: Path, n_classes: int, progress: Callable[[int], None] | None = None
) -> CheckResult:
    """Check a dataset folder for everything that would break or silently spoil training.

    Errors: images without masks and masks without images, unreadable or empty
    files, mask/image size mismatches, class ids >= ``n_classes``, duplicate names.
    Warnings: grey or RGBA images, colour masks, ignored files, classes never seen.

    Args:
        root: ``images/`` + ``annotations/`` folder, or one with ``train/`` and ``val/``.
        n_classes: Number of classes, background included.
        progress: Called with the number of pairs checked so far.

    Raises:
        EdgesegError: The folder does not have the dataset layout.
    """
    if n_classes < 2:
        raise EdgesegError(f"--classes must be at least 2 (got {n_classes}); "
                           "background counts as a class.")
    root = Path(root)
    folders = dataset_folders(root)
    issues: list[Issue] = []
    pixels = np.zeros(n_classes + 1, np.int64)  # the last slot counts ids >= n_classes
    present = np.zeros(n_classes, np.int64)
    n_pairs = done = 0
    for folder in folders:
        n, done = _check_folder(folder, n_classes, issues, pixels, present, progress, done)
        n_pairs += n
    if n_pairs == 0:
        issues.append(Issue(ERROR, root, "no image/mask pairs found."))
    else:
        for c in np.flatnonzero(present == 0):
            issues.append(Issue(WARNING, root, f"class {int(c)} never appears in any mask."))
    return CheckResult(
        root=root, n_classes=n_classes, folders=folders, n_pairs=n_pairs, issues=tuple(issues),
        pixels=tuple(int(v) for v in pixels[:n_classes]), invalid_pixels=int(pixels[-1]),
        images_per_class=tuple(int(v) for v in present),
        labels=read_labels(root, n_classes),
    )


def frequency_table(result: CheckResult) -> Table:
    """A Rich table of the class balance: pixel share and masks containing each class."""
    from rich.table import Table

    table = Table(title=f"Class frequency ({result.n_pairs} masks)")
    table.add_column("id", justify="right")
    table.add_column("class")
    table.add_column("pixels", justify="right")
    table.add_column("share", justify="right")
    table.add_column("masks", justify="right")
    for i, (name, px, share, n) in enumerate(zip(
        result.labels, result.pixels, result.class_share, result.images_per_class
    )):
        table.add_row(str(i), name, f"{px:,}", f"{share:.1%}", f"{n:,}")
    if result.invalid_pixels:
        total = sum(result.pixels) + result.invalid_pixels
        table.add_row(f">={result.n_classes}", "[red]invalid ids[/]", f"{result.invalid_pixels:,}",
                      f"{result.invalid_pixels / total:.1%}", "")
    return table
