"""``edgeseg data import cityscapes``: gtFine label and instance ids → annotations/ + instances/ (train ids)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np

from edgeseg.data.importers import ImportReport, _copy_image, _new_folder, _write_mask
from edgeseg.errors import EdgesegError

IGNORE = 255
# Cityscapes' 19 evaluated classes: labelId -> trainId (cityscapesScripts helpers/labels.py);
# every other labelId is ignored. trainIds 11-18 (person ... bicycle) are the thing classes.
TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
             25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
NAMES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
         "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
         "motorcycle", "bicycle")


def _lut() -> np.ndarray:
    lut = np.full(256, IGNORE, np.uint8)
    for label_id, train_id in TRAIN_IDS.items():
        lut[label_id] = train_id
    return lut


def convert_pair(label_ids: np.ndarray, instance_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class ids, Cityscapes-encoded instances), both in train ids.

    Args:
        label_ids: H×W ``*_gtFine_labelIds.png`` values.
        instance_ids: H×W ``*_gtFine_instanceIds.png`` values (``labelId * 1000 + k`` on
            objects, counted from 0 as Cityscapes does; the labelId elsewhere).

    Returns:
        (H×W uint8 train ids, 255 ignored; H×W uint16 ``trainId * 1000 + k + 1`` on objects).
    """
    lut = _lut()
    classes = lut[np.clip(label_ids, 0, 255).astype(np.uint8)]
    obj = instance_ids >= 1000
    train = lut[np.clip(instance_ids // 1000, 0, 255).astype(np.uint8)]
    inst = classes.astype(np.int64)
    keep = obj & (train != IGNORE)
    inst[keep] = train[keep].astype(np.int64) * 1000 + instance_ids[keep] % 1000 + 1
    return classes, inst.astype(np.uint16)


def import_cityscapes(root: Path, out: Path,
                      progress: Optional[Callable[[int, int], None]] = None) -> ImportReport:
    """Cityscapes ``leftImg8bit/`` + ``gtFine/`` → ``train/``, ``val/`` with annotations and instances.

    Raises:
        EdgesegError: No ``gtFine/*/*/*_gtFine_labelIds.png`` under ``root``, or ``out`` exists.
    """
    from edgeseg.data.instances import INSTANCES_DIR, png16, read_instances
    from edgeseg.data.readers import MaskEncoding, read_mask

    root = Path(root)
    labels = sorted(root.glob("gtFine/*/*/*_gtFine_labelIds.png"))
    if not labels:
        raise EdgesegError(f"{root}: no gtFine/SPLIT/CITY/*_gtFine_labelIds.png; point at the folder "
                           "holding leftImg8bit/ and gtFine/.")
    splits: dict[str, int] = {}
    left: list[tuple[str, str]] = []
    with _new_folder(out) as tmp:
        for done, lab in enumerate(labels, 1):
            split, city = lab.parent.parent.name, lab.parent.name
            stem = lab.name[: -len("_gtFine_labelIds.png")]
            img = root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
            inst_path = lab.with_name(f"{stem}_gtFine_instanceIds.png")
            if not img.is_file():
                left.append((lab.name, "no leftImg8bit image"))
                continue
            if not inst_path.is_file():
                left.append((lab.name, "no instanceIds file"))
                continue
            label_ids = read_mask(lab, MaskEncoding(ignore_index=None))
            classes, inst = convert_pair(label_ids, read_instances(inst_path))
            folder = tmp / split
            _write_mask(folder / "annotations" / f"{stem}.png", classes)
            (folder / INSTANCES_DIR).mkdir(parents=True, exist_ok=True)
            (folder / INSTANCES_DIR / f"{stem}.png").write_bytes(png16(inst))
            _copy_image(img, folder / "images", stem)
            splits[split] = splits.get(split, 0) + 1
            if progress:
                progress(done, len(labels))
        if not splits:
            raise EdgesegError(f"{root}: no pair could be imported ({left[0][1]} for {left[0][0]}); "
                               "nothing written.")
        (tmp / "labels.txt").write_text("\n".join(NAMES) + "\n")
    notes = ("label ids mapped to the 19 train ids; the others (and instances of them) are "
             f"ignore index {IGNORE}",)
    return ImportReport(Path(out), splits, NAMES, tuple(left), notes)
