"""Image/mask pairs on disk in the keras_segmentation layout, read as RGB and class ids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edgeseg.errors import EdgesegError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_SUFFIX = ".png"
IMAGES_DIR = "images"
ANNOTATIONS_DIR = "annotations"

Pair = tuple[Path, Path]


def _files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Plain files in ``folder`` whose suffix (any case) is one of ``suffixes``, sorted."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
    )


def _require_layout(root: Path) -> tuple[Path, Path]:
    root = Path(root)
    if not root.is_dir():
        raise EdgesegError(f"dataset folder {root} does not exist; check the path.")
    images, annotations = root / IMAGES_DIR, root / ANNOTATIONS_DIR
    for sub in (images, annotations):
        if not sub.is_dir():
            raise EdgesegError(
                f"{root} has no {sub.name}/ folder; a dataset needs {root}/{IMAGES_DIR}/*.jpg|png "
                f"and {root}/{ANNOTATIONS_DIR}/*.png with the same file names "
                "(or train/ and val/ folders laid out like that)."
            )
    return images, annotations


def scan(root: Path) -> tuple[list[Pair], list[Path], list[Path]]:
    """Match images to masks by file stem.

    Args:
        root: Folder with ``images/`` and ``annotations/``.

    Returns:
        ``(pairs, images_without_mask, masks_without_image)``, each sorted by stem.

    Raises:
        EdgesegError: The folder or one of its sub-folders is missing, or two images
            share a stem (``a.jpg`` and ``a.png``), which makes the pairing ambiguous.
    """
    images_dir, masks_dir = _require_layout(root)
    images: dict[str, Path] = {}
    for p in _files(images_dir, IMAGE_SUFFIXES):
        if p.stem in images:
            raise EdgesegError(
                f"{images[p.stem].name} and {p.name} in {images_dir} share the name {p.stem!r}; "
                "keep one image per mask."
            )
        images[p.stem] = p
    masks = {p.stem: p for p in _files(masks_dir, (MASK_SUFFIX,))}
    pairs = [(images[s], masks[s]) for s in sorted(images.keys() & masks.keys())]
    lonely_images = [images[s] for s in sorted(images.keys() - masks.keys())]
    lonely_masks = [masks[s] for s in sorted(masks.keys() - images.keys())]
    return pairs, lonely_images, lonely_masks


def list_pairs(root: Path) -> list[Pair]:
    """All ``(image, mask)`` pairs of a dataset folder, sorted by file stem.

    Images without a mask and masks without an image are left out
    (``edgeseg data check`` lists them).

    Args:
        root: Folder with ``images/*.{jpg,jpeg,png}`` and ``annotations/*.png``.

    Raises:
        EdgesegError: A folder is missing or no image has a mask.
    """
    pairs, _, _ = scan(root)
    if not pairs:
        raise EdgesegError(
            f"no image/mask pairs in {root}: {root}/{IMAGES_DIR}/NAME.jpg|png needs "
            f"{root}/{ANNOTATIONS_DIR}/NAME.png; run `edgeseg data check {root}`."
        )
    return pairs


def _has_layout(root: Path) -> bool:
    return (root / IMAGES_DIR).is_dir() and (root / ANNOTATIONS_DIR).is_dir()


def resolve_split(
    data: Path, val: Path | None = None, val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Pair], list[Pair]]:
    """Find the training and validation pairs for a dataset folder.

    In order: an explicit ``val`` folder; ``data/train`` + ``data/val``; otherwise a
    seeded random split of ``data`` (at least one validation pair when there are two
    or more pairs, none when ``val_fraction`` is 0).

    Args:
        data: Dataset folder (``images/`` + ``annotations/``, or ``train/`` + ``val/``).
        val: Separate validation dataset folder.
        val_fraction: Share of ``data`` held out when no validation folder exists.
        seed: Seed of the random split (same seed, same split).

    Returns:
        ``(train_pairs, val_pairs)``, each sorted by stem.
    """
    data = Path(data)
    split = (data / "train").is_dir() and (data / "val").is_dir() and not _has_layout(data)
    if val is not None:
        return list_pairs(data / "train" if split else data), list_pairs(Path(val))
    if split:
        return list_pairs(data / "train"), list_pairs(data / "val")
    if not 0 <= val_fraction < 1:
        raise EdgesegError(f"validation fraction {val_fraction} must be in [0, 1).")
    pairs = list_pairs(data)
    n_val = 0
    if val_fraction > 0 and len(pairs) > 1:
        n_val = min(len(pairs) - 1, max(1, round(len(pairs) * val_fraction)))
    order = np.random.default_rng(seed).permutation(len(pairs))
    held = set(order[:n_val].tolist())
    train = [p for i, p in enumerate(pairs) if i not in held]
    val_pairs = [p for i, p in enumerate(pairs) if i in held]
    return train, val_pairs


def _decode(path: Path, flags: int) -> np.ndarray:
    """cv2-decode a file (from bytes, so any path works), or raise naming the file."""
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise EdgesegError(f"cannot read {path}: {e.strerror or e}; check the file.") from e
    if raw.size == 0:
        raise EdgesegError(f"{path} is empty (0 bytes); replace or delete it.")
    arr = cv2.imdecode(raw, flags)
    if arr is None:
        raise EdgesegError(f"{path} is not a readable image; replace or delete it.")
    return arr


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr // 257).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def read_image(path: Path) -> np.ndarray:
    """Read an image as H×W×3 uint8 RGB (grey and RGBA are converted, 16-bit scaled).

    Raises:
        EdgesegError: The file is missing, empty or not an image.
    """
    arr = _to_uint8(_decode(path, cv2.IMREAD_UNCHANGED))
    if arr.ndim == 2 or arr.shape[2] == 1:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    if arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def read_mask(path: Path) -> np.ndarray:
    """Read a mask as H×W uint8 class ids.

    A 3- or 4-channel mask gives its first channel as cv2 decodes it (blue), as
    keras_segmentation does; a 16-bit mask keeps its values when they fit in uint8.

    Raises:
        EdgesegError: The file is missing, empty or not an image, or holds ids > 255.
    """
    arr = _decode(path, cv2.IMREAD_UNCHANGED)
    if arr.ndim == 3:
        arr = arr[:, :, 0]
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise EdgesegError(f"{path} holds class ids above 255; masks are 8-bit class ids.")
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def list_images(root: Path) -> list[Path]:
    """Image files of a folder, sorted: a flat folder, a dataset's ``images/`` or ``train/images/``.

    Raises:
        EdgesegError: The folder is missing or holds no .jpg/.jpeg/.png file.
    """
    root = Path(root)
    if not root.is_dir():
        raise EdgesegError(f"image folder {root} does not exist; check the path.")
    folder = root
    for sub in (root / IMAGES_DIR, root / "train" / IMAGES_DIR):
        if sub.is_dir():
            folder = sub
            break
    files = _files(folder, IMAGE_SUFFIXES)
    if not files:
        raise EdgesegError(f"no .jpg/.jpeg/.png images in {folder}; point at a folder of images.")
    return files
