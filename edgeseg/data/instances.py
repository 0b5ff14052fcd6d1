"""Instance masks in the Cityscapes encoding: read, write, decode, and check against the class masks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.sizes import hw

INSTANCES_DIR = "instances"
# Cityscapes' instanceIds encoding: class_id * 1000 + k for the k-th object (k >= 1) of a
# "thing" class; stuff, background and ignored pixels hold their class id (< 1000).
THING_OFFSET = 1000


def encode(classes: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Cityscapes-encoded instance map from class ids and per-class object numbers.

    Args:
        classes: H×W class ids (uint8; the ignore index is kept as it is).
        objects: H×W object numbers k ≥ 1 on thing pixels, 0 elsewhere.

    Returns:
        H×W uint16: ``class * 1000 + k`` where ``k > 0``, else the class id.

    Raises:
        ValueError: Shapes differ, or a value would not fit 16 bits (class ≥ 65 or k ≥ 1000).
    """
    classes, objects = np.asarray(classes), np.asarray(objects)
    if classes.shape != objects.shape:
        raise ValueError(f"class and object maps differ in size: {classes.shape} vs {objects.shape}")
    if objects.size and int(objects.max()) >= THING_OFFSET:
        raise ValueError(f"object numbers must be below {THING_OFFSET} (got {int(objects.max())})")
    out = np.where(objects > 0, classes.astype(np.int64) * THING_OFFSET + objects, classes)
    if out.size and int(out.max()) > 65535:
        raise ValueError("instance values above 65535 do not fit a 16-bit PNG (class ids >= 65)")
    return out.astype(np.uint16)


def decode(inst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and a per-image instance number from a Cityscapes-encoded map.

    Returns:
        ``(classes, ids)``: H×W uint8 class ids, and H×W int32 holding the encoded value
        on thing pixels (unique per object in the image) and 0 on stuff/background.
    """
    inst = np.asarray(inst).astype(np.int64)
    thing = inst >= THING_OFFSET
    classes = np.where(thing, inst // THING_OFFSET, inst).astype(np.uint8)
    return classes, np.where(thing, inst, 0).astype(np.int32)


def read_instances(path: Path) -> np.ndarray:
    """Read ``instances/NAME.png`` (16-bit PNG, Cityscapes encoding) as H×W int32.

    Raises:
        EdgesegError: Missing, empty, unreadable or not a single-channel PNG.
    """
    from edgeseg.data.readers import _open

    path = Path(path)
    img = _open(path, "instance mask")
    if img.format != "PNG":
        raise EdgesegError(f"{path}: instance masks must be PNG (16-bit, class_id * 1000 + k); "
                           f"re-save it as {path.with_suffix('.png').name}.")
    if img.mode not in ("I;16", "I;16B", "I;16L", "I", "L", "P"):
        raise EdgesegError(f"{path} is a {img.mode} image; instance masks are single-channel "
                           "16-bit PNGs (class_id * 1000 + k).")
    return np.asarray(img).astype(np.int32)


def png16(inst: np.ndarray) -> bytes:
    """A 16-bit grey PNG of an instance map (values 0..65535)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(inst, dtype=np.uint16))
    if not ok:
        raise EdgesegError("OpenCV could not encode a 16-bit PNG; check the opencv installation.")
    return buf.tobytes()


def write_instances(path: Path, inst: np.ndarray) -> Path:
    """Write an instance map as a 16-bit PNG, atomically."""
    from edgeseg.atomic import write_bytes

    return write_bytes(path, png16(inst))


@dataclass(frozen=True)
class InstanceCheck:
    """What :func:`check_instances` found in a dataset's ``instances/`` folders.

    Attributes:
        n_files: Instance masks read.
        problems: ``(path, message)`` per file that disagrees with its class mask or is unreadable.
        instances: Objects per class id (thing classes only hold non-zero counts).
        things: Class ids that hold objects (``class * 1000 + k`` values) in any file.
        missing: Class masks without an instance mask (stems).
    """

    n_files: int
    problems: tuple[tuple[Path, str], ...] = ()
    instances: Mapping[int, int] = field(default_factory=dict)
    things: tuple[int, ...] = ()
    missing: tuple[str, ...] = ()


def agreement(inst: np.ndarray, classes: np.ndarray, ignore_index: Optional[int] = 255) -> Optional[str]:
    """Why an instance map disagrees with its class mask (None when they agree).

    Pixels where the class mask holds the ignore index may hold anything in the
    instance map (crowd regions are ignore in the class mask).
    """
    if inst.shape != classes.shape:
        return (f"size {hw(*inst.shape[:2])} differs from its class mask's "
                f"{hw(*classes.shape[:2])}")
    derived, _ = decode(inst)
    differ = derived != classes
    if ignore_index is not None:
        differ &= classes != ignore_index
    n = int(differ.sum())
    if not n:
        return None
    ys, xs = np.nonzero(differ)
    y, x = int(ys[0]), int(xs[0])
    return (f"{n:,} pixels disagree with the class mask (first at x={x}, y={y}: instance value "
            f"{int(inst[y, x])} is class {int(derived[y, x])}, the class mask says "
            f"{int(classes[y, x])}); re-export both from the same source")


def check_instances(folders: tuple[Path, ...], read_classes: object,
                    ignore_index: Optional[int] = 255) -> Optional[InstanceCheck]:
    """Check ``instances/NAME.png`` against ``annotations/NAME.png`` in each folder.

    Args:
        folders: Dataset folders (``images/`` + ``annotations/`` [+ ``instances/``]).
        read_classes: ``path -> H×W uint8 class ids`` (the dataset's mask reader).
        ignore_index: Class-mask id whose pixels are not compared.

    Returns:
        None when no folder has ``instances/``; else the findings.
    """
    dirs = [(f / "annotations", f / INSTANCES_DIR) for f in folders if (f / INSTANCES_DIR).is_dir()]
    if not dirs:
        return None
    problems: list[tuple[Path, str]] = []
    counts: dict[int, int] = {}
    missing: list[str] = []
    n = 0
    for ann_dir, inst_dir in dirs:
        for mask_path in sorted(ann_dir.glob("*.png")):
            path = inst_dir / mask_path.name
            if not path.is_file():
                missing.append(mask_path.stem)
                continue
            try:
                inst = read_instances(path)
                classes = read_classes(mask_path)  # type: ignore[operator]
            except EdgesegError as e:
                problems.append((path, str(e)))
                continue
            n += 1
            why = agreement(inst, classes, ignore_index)
            if why:
                problems.append((path, why))
            values = np.unique(inst[inst >= THING_OFFSET])
            for c in values // THING_OFFSET:
                counts[int(c)] = counts.get(int(c), 0) + 1
    return InstanceCheck(n_files=n, problems=tuple(problems), instances=dict(sorted(counts.items())),
                         things=tuple(sorted(counts)), missing=tuple(missing))
