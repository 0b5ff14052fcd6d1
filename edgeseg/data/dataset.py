"""Image/mask pairs on disk in the keras_segmentation layout, and splits (reading: data.readers)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from edgeseg.data.readers import IMAGE_SUFFIXES, MASK_SUFFIX
from edgeseg.errors import EdgesegError

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
    if root.is_file():
        raise EdgesegError(f"{root} is a file; give the dataset folder (holding images/ and annotations/).")
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
    data: Path, val: Path | None = None, val_fraction: float = 0.1, seed: int = 0,
    classes: Mapping[Path, Iterable[int]] | None = None, exclude: Collection[Path] = (),
) -> tuple[list[Pair], list[Pair]]:
    """Find the training and validation pairs for a dataset folder.

    In order: an explicit ``val`` folder; ``data/train`` + ``data/val``; otherwise a
    seeded split of ``data`` (at least one validation pair when there are two or
    more pairs, none when ``val_fraction`` is 0). Given the classes of each mask,
    the split holds out, where the data allows, an example of every class while
    keeping one in training (rarest classes first), then fills up at random.

    Args:
        data: Dataset folder (``images/`` + ``annotations/``, or ``train/`` + ``val/``).
        val: Separate validation dataset folder.
        val_fraction: Share of ``data`` held out when no validation folder exists.
        seed: Seed of the random split (same seed, same split).
        classes: Class ids present in each mask (by mask path), e.g. from ``check_dataset``.
        exclude: Files whose pairs are left out (``--skip-bad``: those with errors).

    Returns:
        ``(train_pairs, val_pairs)``, each sorted by stem.
    """
    data = Path(data)
    split = (data / "train").is_dir() and (data / "val").is_dir() and not _has_layout(data)
    bad = set(exclude)

    def pairs_of(root: Path) -> list[Pair]:
        return [p for p in list_pairs(root) if not bad & set(p)]

    if val is not None:
        return pairs_of(data / "train" if split else data), pairs_of(Path(val))
    if split:
        return pairs_of(data / "train"), pairs_of(data / "val")
    if not 0 <= val_fraction < 1:
        raise EdgesegError(f"validation fraction {val_fraction} must be in [0, 1).")
    pairs = pairs_of(data)
    n_val = 0
    if val_fraction > 0 and len(pairs) > 1:
        n_val = min(len(pairs) - 1, max(1, round(len(pairs) * val_fraction)))
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(pairs))]
    held = _covering(pairs, order, n_val, classes) if classes is not None else []
    if classes is not None:
        # Fill up with pairs whose classes all stay in training, before any other.
        sets = [frozenset(classes.get(m, ())) for _, m in pairs]
        count = Counter(c for i in order if i not in held for c in sets[i])
        for i in order:
            if len(held) < n_val and i not in held and all(count[c] > 1 for c in sets[i]):
                held.append(i)
                count.subtract(sets[i])
    for i in order:
        if len(held) >= n_val:
            break
        if i not in held:
            held.append(i)
    train = [p for i, p in enumerate(pairs) if i not in held]
    val_pairs = [p for i, p in enumerate(pairs) if i in held]
    return train, val_pairs


def _covering(pairs: Sequence[Pair], order: list[int], n_val: int,
              classes: Mapping[Path, Iterable[int]]) -> list[int]:
    """Greedy pick (in ``order``) of up to ``n_val`` pairs showing every class, rarest first,
    never taking the last training example of a class."""
    sets = [frozenset(classes.get(m, ())) for _, m in pairs]
    in_train: dict[int, int] = {}
    for s in sets:
        for c in s:
            in_train[c] = in_train.get(c, 0) + 1
    held: list[int] = []
    shown: set[int] = set()
    for c in sorted(in_train, key=lambda c: (in_train[c], c)):
        if len(held) >= n_val or c in shown:
            continue
        for i in order:
            if i not in held and c in sets[i] and all(in_train[d] > 1 for d in sets[i]):
                held.append(i)
                shown |= sets[i]
                for d in sets[i]:
                    in_train[d] -= 1
                break
    return held


def list_images(root: Path) -> list[Path]:
    """Image files of a folder, sorted: a flat folder, a dataset's ``images/`` or ``train/images/``.

    Raises:
        EdgesegError: The folder is missing or holds no image (``IMAGE_SUFFIXES``).
    """
    root = Path(root)
    if root.is_file():
        raise EdgesegError(f"{root} is a file; give a folder of images.")
    if not root.is_dir():
        raise EdgesegError(f"image folder {root} does not exist; check the path.")
    folder = root
    for sub in (root / IMAGES_DIR, root / "train" / IMAGES_DIR):
        if sub.is_dir():
            folder = sub
            break
    files = _files(folder, IMAGE_SUFFIXES)
    if not files:
        raise EdgesegError(f"no images ({'/'.join(IMAGE_SUFFIXES)}) in {folder}; "
                           "point at a folder of images.")
    return files
