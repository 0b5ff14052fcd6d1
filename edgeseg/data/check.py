"""Dataset checks: pairing, readability, sizes, class ids and the class balance."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from edgeseg.data.dataset import ANNOTATIONS_DIR, IMAGES_DIR, _files, _has_layout, _require_layout
from edgeseg.data.readers import (
    IMAGE_SUFFIXES,
    JPEG_SUFFIXES,
    MASK_SUFFIX,
    MaskEncoding,
    check_ignore_index,
    invalid_ids,
    invalid_ids_message,
    read_image_info,
    read_mask,
)
from edgeseg.errors import EdgesegError
from edgeseg.sizes import hw

if TYPE_CHECKING:
    from rich.table import Table

ERROR, WARNING = "error", "warning"
# How data check names what the image reader converted.
MODE_NAMES = {"L": "grey", "LA": "grey+alpha", "RGBA": "RGBA (alpha dropped)", "P": "palette",
              "PA": "palette+alpha", "CMYK": "CMYK", "I;16": "16-bit", "I;16B": "16-bit",
              "I;16L": "16-bit", "I": "16/32-bit", "1": "1-bit", "YCbCr": "YCbCr", "F": "float"}


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
        n_pairs: Image/mask pairs found (by file stem).
        issues: Findings, in folder then file order.
        pixels: Mask pixels per class id ``0..n_classes-1``.
        images_per_class: Masks in which each class appears.
        labels: Class names (labels.txt or the colour map when it fits, else ``class0…``).
        invalid_pixels: Mask pixels whose id is ``>= n_classes`` and not the ignore index.
        ignored_pixels: Mask pixels equal to the ignore index (left out of loss and metrics).
        encoding: How the masks were read.
        mask_classes: Class ids (ignore index excluded) present in each readable mask.
        bad_files: Every file an error is about.
        converted: Images the reader converted to RGB, counted by what they were
            (``grey``, ``CMYK``, ``EXIF-rotated``...).
        highest_ids: The highest id ``>= n_classes`` (not the ignore index) in each mask
            that has one.
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
    ignored_pixels: int = 0
    encoding: MaskEncoding = field(default_factory=MaskEncoding)
    mask_classes: Mapping[Path, frozenset[int]] = field(default_factory=dict)
    bad_files: frozenset[Path] = frozenset()
    converted: Mapping[str, int] = field(default_factory=dict)
    highest_ids: Mapping[Path, int] = field(default_factory=dict)

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
        """Share of the scored mask pixels per class (ignored pixels left out)."""
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


def read_labels(root: Path, n_classes: int, encoding: Optional[MaskEncoding] = None,
                issues: Optional[list[Issue]] = None) -> tuple[str, ...]:
    """Class names from the names file beside the data (``labels.txt``, or labelme's
    ``class_names.txt``; in ``root`` or ``root/train``), else the colour map, when either has
    one per class; else ``class0…``. A names file that does not fit ``n_classes`` is said
    in ``issues`` (a warning), not dropped without a word."""
    from edgeseg.labels import find_names_file, read_class_names

    root = Path(root)
    path = find_names_file(root, root / "train")
    if path is not None:
        names = read_class_names(path)
        if len(names) == n_classes:
            return names
        if issues is not None:
            issues.append(Issue(WARNING, path, f"names {len(names)} classes but the check is for "
                                               f"{n_classes} (--classes): the classes are shown "
                                               "by number."))
    if encoding is not None and len(encoding.class_names) == n_classes:
        return encoding.class_names
    return tuple(f"class{i}" for i in range(n_classes))


class _Tally:
    """Running counts over the masks and images of a dataset."""

    def __init__(self, n_classes: int, encoding: MaskEncoding) -> None:
        self.n, self.enc = n_classes, encoding
        self.issues: list[Issue] = []
        self.pixels = np.zeros(256, np.int64)
        self.present = np.zeros(n_classes, np.int64)
        self.mask_classes: dict[Path, frozenset[int]] = {}
        self.converted: dict[str, int] = {}
        self.binary: list[Path] = []
        self.highest: dict[Path, int] = {}  # the highest id >= n_classes in each mask

    def error(self, path: Path, message: str) -> None:
        self.issues.append(Issue(ERROR, path, message))

    def image(self, path: Path) -> Optional[tuple[int, int]]:
        try:
            rgb, info = read_image_info(path)
        except EdgesegError as e:
            self.error(path, _strip(str(e), path))
            return None
        for what in ([MODE_NAMES.get(info.mode, info.mode)] if info.mode != "RGB" else []) + (
                ["EXIF-rotated"] if info.rotated else []):
            self.converted[what] = self.converted.get(what, 0) + 1
        return rgb.shape[:2]

    def mask(self, path: Path) -> Optional[np.ndarray]:
        try:
            ids = read_mask(path, self.enc)
        except EdgesegError as e:
            self.error(path, _strip(str(e), path))
            return None
        counts = np.bincount(ids.ravel(), minlength=256)
        self.pixels += counts
        present = frozenset(int(c) for c in np.flatnonzero(counts[:self.n]))
        self.mask_classes[path] = present
        self.present[list(present)] += 1
        bad = invalid_ids(ids, self.n, self.enc)
        if bad:
            self.error(path, invalid_ids_message(bad, self.n, self.enc, suggest=False))
            self.highest[path] = max(bad)
        if (not self.enc.binary and self.enc.ignore_index == 255 and counts[255]
                and counts[0] + counts[255] == ids.size):
            self.binary.append(path)
        return ids


def _strip(message: str, path: Path) -> str:
    """The reader's message without the leading file name (the issue carries the path)."""
    for prefix in (f"{path}: ", f"{path} is ", f"{path} "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _renamed(stem: str, candidates: set[str]) -> Optional[str]:
    """The stem of ``candidates`` that ``stem`` extends with a separator (``x_mask`` → ``x``)."""
    hits = [c for c in candidates if len(stem) > len(c) and stem.startswith(c) and stem[len(c)] in "_-. "]
    return max(hits, key=len) if hits else None


def _check_folder(folder: Path, t: _Tally, progress: Optional[Callable[[int], None]],
                  done: int) -> tuple[int, int]:
    """Check one images/ + annotations/ folder; returns (pairs, pairs visited so far)."""
    images_dir, masks_dir = folder / IMAGES_DIR, folder / ANNOTATIONS_DIR
    images: dict[str, Path] = {}
    for p in _files(images_dir, IMAGE_SUFFIXES):
        if p.stem in images:
            t.error(p, f"has the same name as {images[p.stem].name}; keep one image per mask.")
        else:
            images[p.stem] = p
    masks = {p.stem: p for p in _files(masks_dir, (MASK_SUFFIX,))}
    jpeg_masks = {p.stem: p for p in _files(masks_dir, JPEG_SUFFIXES) if p.stem not in masks}
    for d, allowed, what in ((images_dir, IMAGE_SUFFIXES, "an image"),
                             (masks_dir, (MASK_SUFFIX, *JPEG_SUFFIXES), "a PNG mask")):
        for p in sorted(d.iterdir()):
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in allowed:
                t.issues.append(Issue(WARNING, p, f"ignored: not {what} ({', '.join(allowed)})."))
    for stem, p in sorted(jpeg_masks.items()):
        t.error(p, f"JPEG mask: masks must be PNG (JPEG compression changes class ids at every "
                   f"edge); save it as {ANNOTATIONS_DIR}/{stem}.png.")
    lonely_masks = masks.keys() - images.keys()
    for stem in sorted(images.keys() - masks.keys() - jpeg_masks.keys()):
        near = _renamed_mask(stem, lonely_masks)
        hint = f" ({near} is there: rename it to {stem}.png)" if near else ""
        t.error(images[stem], f"image without mask: no mask named {ANNOTATIONS_DIR}/{stem}.png{hint}.")
    for stem in sorted(lonely_masks):
        owner = _renamed(stem, set(images))
        hint = f" (named like the mask of {images[owner].name}: rename it to {owner}.png)" if owner else ""
        t.error(masks[stem], f"mask without image: no image named {IMAGES_DIR}/{stem}.jpg or .png{hint}.")
    stems = sorted(images.keys() & masks.keys())
    for stem in stems:
        size = t.image(images[stem])
        ids = t.mask(masks[stem])
        if ids is not None and size is not None and tuple(ids.shape) != tuple(size):
            t.error(masks[stem],
                    f"size {hw(*ids.shape[:2])} differs from its image's {hw(*size)} "
                    f"({images[stem].name}, EXIF orientation applied); masks must match pixel for pixel.")
        done += 1
        if progress is not None:
            progress(done)
    return len(stems) + len(jpeg_masks.keys() & images.keys()), done


def _renamed_mask(stem: str, lonely_masks: set[str]) -> Optional[str]:
    hits = sorted(m for m in lonely_masks if _renamed(m, {stem}) == stem)
    return f"{hits[0]}.png" if hits else None


def count_pairs(root: Path) -> int:
    """Rough number of pairs to check (for a progress bar)."""
    return sum(len(_files(f / ANNOTATIONS_DIR, (MASK_SUFFIX,))) for f in dataset_folders(root))


def check_dataset(root: Path, n_classes: int, progress: Optional[Callable[[int], None]] = None,
                  encoding: Optional[MaskEncoding] = None) -> CheckResult:
    """Check a dataset folder for everything that would break or silently spoil training.

    Reads every file with the readers training uses (:mod:`edgeseg.data.readers`).
    Errors: images without masks and masks without images, unreadable or empty
    files, JPEG or colour masks the encoding cannot read, mask/image size
    mismatches (after EXIF orientation), class ids ``>= n_classes`` other than the
    ignore index (with pixel counts), duplicate names, and masks that all hold
    only 0 and 255 (binary masks read with 255 as 'ignore'). Warnings: ignored
    files, classes never seen, some masks holding only 0 and 255.

    Args:
        root: ``images/`` + ``annotations/`` folder, or one with ``train/`` and ``val/``.
        n_classes: Number of classes, background included.
        progress: Called with the number of pairs checked so far.
        encoding: How masks are read (default: ``MaskEncoding()``, ignore index 255).

    Raises:
        EdgesegError: The folder does not have the dataset layout, ``n_classes < 2``
            or the ignore index is a class id.
    """
    if n_classes < 2:
        raise EdgesegError(f"--classes must be at least 2 (got {n_classes}); "
                           "background counts as a class.")
    enc = encoding or MaskEncoding()
    check_ignore_index(enc, n_classes)
    root = Path(root)
    folders = dataset_folders(root)
    t = _Tally(n_classes, enc)
    n_pairs = done = 0
    for folder in folders:
        n, done = _check_folder(folder, t, progress, done)
        n_pairs += n
    labels = read_labels(root, n_classes, enc, t.issues)
    if n_pairs == 0:
        t.error(root, "no image/mask pairs found.")
    elif t.mask_classes:
        _dataset_findings(root, t, labels)
    ignore = enc.ignore_index
    pixels = t.pixels.copy()
    ignored = int(pixels[ignore]) if ignore is not None else 0
    if ignore is not None:
        pixels[ignore] = 0
    return CheckResult(
        root=root, n_classes=n_classes, folders=folders, n_pairs=n_pairs, issues=tuple(t.issues),
        pixels=tuple(int(v) for v in pixels[:n_classes]), invalid_pixels=int(pixels[n_classes:].sum()),
        ignored_pixels=ignored, images_per_class=tuple(int(v) for v in t.present),
        labels=labels, encoding=enc, mask_classes=t.mask_classes,
        bad_files=frozenset(i.path for i in t.issues if i.level == ERROR), converted=t.converted,
        highest_ids=t.highest,
    )


def _dataset_findings(root: Path, t: _Tally, labels: tuple[str, ...]) -> None:
    """Findings about the whole set: only ignored pixels, binary 0/255 masks, classes never seen."""
    ignore = t.enc.ignore_index
    if ignore is not None and t.pixels.sum() and t.pixels[ignore] == t.pixels.sum():
        t.error(root, f"no labelled pixels to score or learn: every pixel of the {len(t.mask_classes)} "
                      f"masks is the ignore index {ignore}; check the masks (or --ignore-index).")
        return
    if t.binary and t.pixels[0]:  # masks all 255 hold nothing to score: not binary masks
        names = ", ".join(p.name for p in t.binary[:3]) + (", ..." if len(t.binary) > 3 else "")
        if len(t.binary) == len(t.mask_classes) and not t.present[1:].any():
            t.error(root, f"all {len(t.binary)} masks hold only 0 and 255 ({names}): binary masks, "
                          "and 255 is the ignore index, so no object pixel would be learned; pass "
                          "--binary to read 255 as class 1.")
        else:
            t.issues.append(Issue(WARNING, root, f"{len(t.binary)} masks hold only 0 and 255 ({names}): "
                                                 "their 255 pixels are ignored; pass --binary if 255 "
                                                 "marks the object."))
    named = labels != tuple(f"class{i}" for i in range(len(labels)))
    never = [f"{c} ({labels[c]})" if named else str(int(c)) for c in np.flatnonzero(t.present == 0)]
    if never:
        which = f"class {never[0]} never appears" if len(never) == 1 else \
            f"classes {', '.join(never)} never appear"
        t.issues.append(Issue(WARNING, root, f"{which} in any mask."))


def classes_hint(result: CheckResult) -> Optional[str]:
    """One ``--classes`` value for the whole dataset when masks hold ids ``>= n_classes``:
    the highest id seen + 1, with the masks that hold it (None when every id fits)."""
    if not result.highest_ids:
        return None
    top = max(result.highest_ids.values())
    where = sorted(p for p, v in result.highest_ids.items() if v == top)
    shown = ", ".join(_shown(p, result.root) for p in where[:3]) + (", ..." if len(where) > 3 else "")
    return (f"{len(result.highest_ids)} mask(s) hold ids >= --classes {result.n_classes}; if they "
            f"are classes, pass --classes {top + 1} for the whole dataset (the highest id, {top}, "
            f"+ 1; it is in {shown}).")


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


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
    if result.ignored_pixels:
        table.add_row(str(result.encoding.ignore_index), "ignored (--ignore-index)",
                      f"{result.ignored_pixels:,}", "—", "")
    return table


def conversion_note(result: CheckResult) -> Optional[str]:
    """``converted to RGB: 2 grey, 1 CMYK; 3 EXIF-rotated`` (None when nothing was converted)."""
    if not result.converted:
        return None
    parts = [f"{n} {what}" for what, n in sorted(result.converted.items()) if what != "EXIF-rotated"]
    rotated = result.converted.get("EXIF-rotated")
    text = f"converted to RGB: {', '.join(parts)}" if parts else ""
    if rotated:
        text += ("; " if text else "") + f"{rotated} turned upright by their EXIF orientation"
    return f"images {text}."
