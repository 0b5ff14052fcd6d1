"""``edgeseg data import``: PASCAL VOC folders and COCO JSON → images/ + annotations/ + labels.txt."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.data.dataset import ANNOTATIONS_DIR, IMAGES_DIR
from edgeseg.data.readers import (
    IGNORE_INDEX,
    IMAGE_SUFFIXES,
    LABELMAP,
    MaskEncoding,
    read_labelmap,
    read_mask,
)
from edgeseg.errors import EdgesegError

# PASCAL VOC 2007-2012 classes in id order (the VOC devkit's VOCopts.classes, plus background).
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote.

    Attributes:
        out: The dataset folder written.
        splits: Pairs written per split folder (``""`` for a flat dataset).
        labels: Class names written to labels.txt, in id order.
        left_out: ``(name, reason)`` of every image not written.
        notes: Other counted facts (images without annotations, crowd regions...).
    """

    out: Path
    splits: dict[str, int]
    labels: tuple[str, ...]
    left_out: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = field(default=())


@contextlib.contextmanager
def _new_folder(out: Path) -> Iterator[Path]:
    """A temp folder beside ``out``, renamed to ``out`` on success (nothing half-written is kept)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EdgesegError(f"-o {out} already exists; give a new folder name.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_mask(path: Path, ids: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(ids, np.uint8)):
        raise EdgesegError(f"could not write {path}; check the disk and permissions.")


def _copy_image(src: Path, dst_dir: Path, stem: str) -> None:
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst_dir / f"{stem}{src.suffix.lower()}")  # bytes as they are: no re-encoding


def _voc_root(folder: Path) -> Path:
    """The folder holding JPEGImages/ + SegmentationClass/ (also inside VOCdevkit/VOC20xx)."""
    folder = Path(folder)
    for cand in (folder, *sorted(folder.glob("*")), *sorted(folder.glob("*/*"))):
        if (cand / "JPEGImages").is_dir() and (cand / "SegmentationClass").is_dir():
            return cand
    raise EdgesegError(f"{folder} is not a PASCAL VOC folder: it needs JPEGImages/ and "
                       "SegmentationClass/ (and ImageSets/Segmentation/train.txt, val.txt).")


def import_voc(folder: Path, out: Path,
               progress: Optional[Callable[[int, int], None]] = None) -> ImportReport:
    """Convert a PASCAL VOC segmentation folder to edgeseg's layout.

    Reads ``ImageSets/Segmentation/{train,val}.txt`` (→ ``out/train``, ``out/val``;
    without them every mask goes to ``out``), the palette masks of
    ``SegmentationClass/`` as their palette indices (255 = void, kept as the ignore
    index), and copies the JPEGs unchanged. Class names come from a ``labelmap.txt``
    (CVAT's VOC export; its colours then decode RGB masks) or are VOC's 21.

    Raises:
        EdgesegError: Not a VOC folder, ``out`` exists, or a mask is unreadable or
            holds ids beyond the classes.
    """
    root = _voc_root(folder)
    enc, labels = MaskEncoding(), VOC_CLASSES
    if (root / LABELMAP).is_file():
        colors = read_labelmap(root / LABELMAP)
        enc = MaskEncoding(colors=colors, colors_source=str(root / LABELMAP))
        labels = enc.class_names
    sets = root / "ImageSets" / "Segmentation"
    splits = {s: (sets / f"{s}.txt") for s in ("train", "val") if (sets / f"{s}.txt").is_file()}
    if splits:
        stems = {s: [ln.split()[0] for ln in f.read_text().splitlines() if ln.strip()]
                 for s, f in splits.items()}
    else:
        stems = {"": sorted(p.stem for p in (root / "SegmentationClass").glob("*.png"))}
    images = {p.stem: p for p in sorted((root / "JPEGImages").iterdir())
              if p.suffix.lower() in IMAGE_SUFFIXES}
    total = sum(len(v) for v in stems.values())
    left: list[tuple[str, str]] = []
    written: dict[str, int] = {}
    done = 0
    with _new_folder(out) as tmp:
        for split, names in stems.items():
            dest = tmp / split if split else tmp
            written[split] = 0
            for stem in names:
                mask = root / "SegmentationClass" / f"{stem}.png"
                if stem not in images:
                    left.append((stem, f"no JPEGImages/{stem}.jpg"))
                elif not mask.is_file():
                    left.append((stem, f"no SegmentationClass/{stem}.png"))
                else:
                    ids = _read_voc_mask(mask, enc, len(labels), root)
                    _write_mask(dest / ANNOTATIONS_DIR / f"{stem}.png", ids)
                    _copy_image(images[stem], dest / IMAGES_DIR, stem)
                    written[split] += 1
                done += 1
                if progress:
                    progress(done, total)
        if not any(written.values()):
            raise EdgesegError(f"{folder}: no image/mask pairs to import ({_why_none(left)}); "
                               "nothing written.")
        (tmp / "labels.txt").write_text("\n".join(labels) + "\n")
    return ImportReport(Path(out), written, tuple(labels), tuple(left))


def _why_none(left: list[tuple[str, str]]) -> str:
    """``3 left out, e.g. a.jpg: not in imgs`` or ``no images listed``."""
    if not left:
        return "no images listed"
    return f"{len(left)} left out, e.g. {left[0][0]}: {left[0][1]}"


def _read_voc_mask(mask: Path, enc: MaskEncoding, n_classes: int, root: Path) -> np.ndarray:
    """A VOC mask's ids; a colour mask without a labelmap.txt gets the fix that fits the import."""
    try:
        return read_mask(mask, enc, n_classes)
    except EdgesegError as e:
        if enc.colors or "is a colour mask" not in str(e):
            raise
        shown = str(e).split("(colours ", 1)[1].split(")", 1)[0]
        raise EdgesegError(
            f"{mask} is a colour mask (colours {shown}), not palette indices; put a {LABELMAP} "
            f"(lines name:r,g,b, one per class id, as CVAT's VOC export writes it) in {root} "
            "and import again, or save the masks as palette PNGs.") from None


def _coco(annotations: Path) -> Any:
    try:
        from pycocotools.coco import COCO
    except ImportError:
        raise EdgesegError('edgeseg data import coco needs pycocotools: pip install "edgeseg[full]" '
                           "(or pip install pycocotools).") from None
    if not Path(annotations).is_file():
        raise EdgesegError(f"{annotations}: no such COCO annotation file; check the path.")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            return COCO(str(annotations))
    except (ValueError, KeyError, TypeError) as e:
        raise EdgesegError(f"{annotations} is not COCO instances JSON ({e!r}); export "
                           "'COCO 1.0' / instances_*.json.") from None


MAX_INSTANCE_CLASS = 64  # 64 * 1000 + 999 is the largest class*1000+k a 16-bit PNG holds


def import_coco(annotations: Path, images: Path, out: Path,
                progress: Optional[Callable[[int, int], None]] = None) -> ImportReport:
    """Convert COCO instance annotations (polygons or RLE) to class-id masks and instances.

    ``instances/NAME.png`` (up to 64 categories) holds ``class * 1000 + k`` per object in
    the Cityscapes encoding; crowd regions keep the ignore index there too.

    Class ids: 0 background, then the COCO categories in ascending id order.
    Polygons and RLE are rasterised by pycocotools (``annToMask``); larger objects
    are drawn first so small ones stay on top; ``iscrowd`` regions become the
    ignore index 255 where no object covers them. Images without annotations are
    kept as all-background (counted in the report); images missing from
    ``images`` are left out and listed.

    Raises:
        EdgesegError: Unreadable JSON, more than 254 categories, ``out`` exists, or
            two images share a file name.
    """
    coco = _coco(annotations)
    cat_ids = sorted(coco.getCatIds())
    if len(cat_ids) > 254:
        raise EdgesegError(f"{annotations} has {len(cat_ids)} categories; masks hold at most 254 "
                           "classes besides background.")
    index = {c: i + 1 for i, c in enumerate(cat_ids)}
    labels = ("background", *(coco.loadCats(c)[0]["name"] for c in cat_ids))
    # instances/ in the Cityscapes encoding (class * 1000 + k) fits 16 bits up to class 64.
    with_instances = len(cat_ids) <= MAX_INSTANCE_CLASS
    img_ids = sorted(coco.getImgIds())
    left: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    n_empty = n_crowd = 0
    with _new_folder(out) as tmp:
        for done, img_id in enumerate(img_ids, 1):
            info = coco.loadImgs(img_id)[0]
            src = Path(images) / info["file_name"]
            stem = Path(info["file_name"]).stem
            if stem in seen:
                raise EdgesegError(f"{info['file_name']} and {seen[stem]} in {annotations} share the "
                                   f"name {stem!r}; file names must be unique.")
            seen[stem] = info["file_name"]
            if not src.is_file():
                left.append((info["file_name"], f"not in {images}"))
                continue
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=None))
            ids = np.zeros((info["height"], info["width"]), np.uint8)
            objects = np.zeros(ids.shape, np.int32)
            per_class: dict[int, int] = {}
            crowd = np.zeros_like(ids, dtype=bool)
            for ann in sorted(anns, key=lambda a: -float(a.get("area", 0))):
                m = coco.annToMask(ann).astype(bool)
                if ann.get("iscrowd"):
                    crowd |= m
                elif ann["category_id"] not in index:
                    raise EdgesegError(f"{annotations}: annotation {ann.get('id')} of "
                                       f"{info['file_name']} has category_id {ann['category_id']}, "
                                       "which 'categories' does not list; add it or fix the id.")
                else:
                    c = index[ann["category_id"]]
                    ids[m] = c
                    per_class[c] = per_class.get(c, 0) + 1
                    objects[m] = per_class[c]
            crowd &= ids == 0
            ids[crowd] = IGNORE_INDEX
            if with_instances:
                from edgeseg.data.instances import INSTANCES_DIR, encode, png16

                (tmp / INSTANCES_DIR).mkdir(exist_ok=True)
                inst = encode(ids, np.where(ids == IGNORE_INDEX, 0, np.minimum(objects, 999)))
                (tmp / INSTANCES_DIR / f"{stem}.png").write_bytes(png16(inst))
            n_crowd += int(crowd.any())
            n_empty += not anns
            _write_mask(tmp / ANNOTATIONS_DIR / f"{stem}.png", ids)
            _copy_image(src, tmp / IMAGES_DIR, stem)
            if progress:
                progress(done, len(img_ids))
        if len(img_ids) == len(left):
            raise EdgesegError(f"{annotations}: no image/mask pairs to import ({_why_none(left)}); "
                               "check --images; nothing written.")
        (tmp / "labels.txt").write_text("\n".join(labels) + "\n")
    notes = []
    if not with_instances:
        notes.append(f"no instances/ written: {len(cat_ids)} categories, and class ids above "
                     f"{MAX_INSTANCE_CLASS} do not fit the 16-bit class*1000+k encoding (import fewer)")
    if n_empty:
        notes.append(f"{n_empty} image(s) without annotations written as all background")
    if n_crowd:
        notes.append(f"{n_crowd} image(s) with crowd regions, written as ignore index {IGNORE_INDEX}")
    return ImportReport(Path(out), {"": len(img_ids) - len(left)}, labels, tuple(left), tuple(notes))
