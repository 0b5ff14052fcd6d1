"""``edgeseg predict``: a model over a folder of images, written as a dataset (class masks, instances, overlays)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgeseg.data.instances import THING_OFFSET
from edgeseg.errors import EdgesegError


@dataclass(frozen=True)
class PredictReport:
    """What :func:`predict_folder` wrote.

    Attributes:
        out: The output folder.
        count: Images predicted.
        labels: The model's class names.
        instances: ``heads``, ``components`` or None (no instances/ written).
        overlays: Whether overlays/ was written.
        objects: Instances found per class name (over all images).
        seconds: Wall time.
    """

    out: Path
    count: int
    labels: tuple[str, ...]
    instances: Optional[str] = None
    overlays: bool = False
    objects: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _png(arr: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise EdgesegError("OpenCV could not encode a PNG; check the opencv installation.")
    return buf.tobytes()


def source_images(source: Path) -> list[Path]:
    """One image file, or the images of a folder (its images/ when it is a dataset).

    Raises:
        EdgesegError: Missing, not an image, no images, or two images with one stem.
    """
    from edgeseg.data.dataset import list_images
    from edgeseg.data.readers import IMAGE_SUFFIXES

    source = Path(source)
    if source.is_file():
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            raise EdgesegError(f"--source {source} is not an image ({', '.join(IMAGE_SUFFIXES)}).")
        return [source]
    if not source.exists():
        raise EdgesegError(f"--source {source}: no such file or folder; check the path.")
    files = list_images(source)
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise EdgesegError(f"{f} and {stems[f.stem].name} share the name {f.stem}: their "
                               "predictions would overwrite each other; rename one.")
        stems[f.stem] = f
    return files


def predict_folder(model: Path, source: Path, out: Path, output: Optional[int] = None,
                   overlay: bool = False, instances: Optional[str] = None,
                   threads: Optional[int] = None,
                   progress: Optional[Callable[[int, int], None]] = None) -> PredictReport:
    """Write ``out/annotations/NAME.png`` (class ids at the image's size) for every image,
    ``out/instances/NAME.png`` (16-bit, ``class * 1000 + k``) for an instance model or
    ``instances="components"``, ``out/overlays/NAME.jpg`` with ``overlay``, and
    ``out/labels.txt``: a folder ``edgeseg evaluate OUT --data DATASET`` scores.

    Args:
        model: A .keras or .tflite model (.tflite through the runtime's Segmenter).
        source: An image or a folder of images (a dataset's images/ is used).
        out: Output folder (created; files of the same names are replaced).
        output: Which output of a .tflite holds the segmentation (--output-index).
        overlay: Also write pictures of the prediction over the image.
        instances: None (the model's own instances, if any), ``components`` or ``off``.
        threads: CPU threads for a .tflite.
        progress: Called as ``progress(done, total)``.

    Raises:
        EdgesegError: Unreadable model or image, or a bad source.
    """
    import cv2

    from edgeseg.atomic import write_bytes, write_text
    from edgeseg.data.readers import read_image
    from edgeseg.preprocess import resize_mask
    from edgeseg.verify.predict import load_predictor

    t0 = time.perf_counter()
    files = source_images(source)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgesegError(f"-o {out} is a file; predict writes a folder (annotations/, labels.txt): "
                           "give a folder's path.")
    predictor = load_predictor(model, threads, output, instances)
    kind = predictor.instance_kind
    labels = tuple(predictor.labels)
    subs = ["annotations"] + (["instances"] if kind else []) + (["overlays"] if overlay else [])
    for sub in subs:
        try:
            (out / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EdgesegError(f"-o {out}: cannot make {out / sub} ({e.strerror}); give a folder "
                               "you can write to.") from e
    objects: dict[str, int] = {}
    for done, path in enumerate(files, start=1):
        rgb = read_image(path)
        h, w = rgb.shape[:2]
        if kind:
            ids, pan = predictor.panoptic(rgb)
        else:
            ids, pan = predictor.predict([rgb])[0][0], None
        ids = resize_mask(np.ascontiguousarray(ids), h, w)
        write_bytes(out / "annotations" / f"{path.stem}.png", _png(ids))
        if pan is not None:
            pan = resize_mask(pan.astype(np.int32), h, w)
            write_bytes(out / "instances" / f"{path.stem}.png", _png(pan.astype(np.uint16)))
            for v in np.unique(pan[pan >= THING_OFFSET]):
                name = labels[v // THING_OFFSET] if v // THING_OFFSET < len(labels) else str(v // THING_OFFSET)
                objects[name] = objects.get(name, 0) + 1
        if overlay:
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            write_bytes(out / "overlays" / f"{path.stem}.jpg", _overlay(bgr, ids, pan, labels, kind))
        if progress:
            progress(done, len(files))
    write_text(out / "labels.txt", "\n".join(labels) + "\n")
    return PredictReport(out, len(files), labels, kind, overlay, dict(sorted(objects.items())),
                         time.perf_counter() - t0)


def _overlay(bgr: np.ndarray, ids: np.ndarray, pan: Optional[np.ndarray], labels: tuple[str, ...],
             kind: Optional[str]) -> bytes:
    import cv2

    if pan is None:
        from edgeseg.runtime.overlay import Overlay

        img = Overlay(labels).draw(bgr, ids)
    else:
        from edgeseg.runtime.instance_draw import draw_instances
        from edgeseg.runtime.instances import describe

        inst = np.where(pan >= THING_OFFSET, pan % THING_OFFSET, 0).astype(np.int32)
        found, _ = describe(inst, ids, max(len(labels), int(ids.max()) + 1), np.zeros((0, 2), np.int64),
                            ids.shape)
        img = draw_instances(bgr, inst, found, labels, kind="components" if kind == "components"
                             else "instances")
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise EdgesegError("OpenCV could not encode a JPEG; check the opencv installation.")
    return buf.tobytes()
