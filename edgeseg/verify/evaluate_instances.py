"""Panoptic scoring (PQ/SQ/RQ beside mIoU) of a model or of a folder of predictions."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.data.readers import MaskEncoding
from edgeseg.errors import EdgesegError
from edgeseg.sizes import hw
from edgeseg.verify.metrics import MetricAccumulator, SegMetrics
from edgeseg.verify.panoptic import PanopticAccumulator, PanopticScores


@dataclass(frozen=True)
class Evaluation:
    """Scores of a model, or of a predictions folder, on a dataset.

    Attributes:
        metrics: mIoU and friends (at the model's output size for a model, at the
            images' size for a predictions folder).
        panoptic: PQ/SQ/RQ at the images' size (None for ``task="semantic"``).
        labels: Class names.
        things: Thing class ids (from the dataset's instances/).
        instances: How the instances were made: ``heads``, ``components`` or ``folder``.
        predictor: The predictor (None for a folder).
    """

    metrics: SegMetrics
    panoptic: Optional[PanopticScores]
    labels: tuple[str, ...]
    things: tuple[int, ...]
    instances: Optional[str]
    predictor: Any = None

    def to_dict(self) -> dict[str, Any]:
        d = self.metrics.to_dict(self.labels)
        if self.panoptic is not None:
            d["panoptic"] = {**self.panoptic.to_dict(self.labels), "instances": self.instances,
                             "thing_classes": [self.labels[t] for t in self.things]}
        return d


def _prediction_folder(folder: Path) -> tuple[str, ...]:
    if not (folder / "annotations").is_dir():
        raise EdgesegError(f"{folder} is a folder without annotations/: pass a model, or the "
                           "output folder of edgeseg predict.")
    labels = folder / "labels.txt"
    return tuple(s.strip() for s in labels.read_text().splitlines() if s.strip()) if labels.is_file() else ()


def _say_unscored(folder: Path, pairs: list[tuple[Path, Path]]) -> None:
    """Warn, once, about predictions that have no mask among ``pairs`` (they are not scored)."""
    scored = {Path(m).stem for _, m in pairs}
    extra = sorted(p.name for p in (folder / "annotations").glob("*.png") if p.stem not in scored)
    if extra:
        warnings.warn(f"{folder / 'annotations'}: {len(extra)} prediction(s) have no mask in the scored "
                      f"data and are not scored (e.g. {extra[0]}); {len(pairs)} are.", stacklevel=2)


def evaluate_any(model: Path, data: Path, task: str = "semantic", limit: Optional[int] = None,
                 progress: Optional[Callable[[int, int], None]] = None, threads: Optional[int] = None,
                 output: Optional[int] = None, encoding: Optional[MaskEncoding] = None,
                 instances: Optional[str] = None) -> Evaluation:
    """Score a .keras/.tflite model or an ``edgeseg predict`` folder on ``data``.

    For ``task="instance"`` the panoptic quality of Kirillov et al. (CVPR 2019) is
    computed at the images' size against ``data``'s instances/ (thing classes are the
    classes holding objects there); a semantic model needs ``instances="components"``.

    Raises:
        EdgesegError: Unreadable model or data, missing predictions or instance masks, or
            a semantic model asked for instances without ``components``.
    """
    from edgeseg.data.instance_pipeline import read_panoptic, thing_classes
    from edgeseg.verify.evaluate import eval_pairs, iter_images, require_scored, truth_at

    if task not in ("semantic", "instance"):
        raise EdgesegError(f"--task {task!r} must be semantic or instance.")
    enc = encoding or MaskEncoding()
    pairs = eval_pairs(Path(data))[:limit]
    if not pairs:
        raise EdgesegError(f"{data} has no image/mask pairs to score.")
    model = Path(model)
    folder = model.is_dir()
    predictor = None
    if folder:
        labels = _prediction_folder(model)
        _say_unscored(model, pairs)
        kind: Optional[str] = "folder" if (model / "instances").is_dir() else None
    else:
        from edgeseg.verify.evaluate import n_classes_of
        from edgeseg.verify.predict import load_predictor

        predictor = load_predictor(model, threads, output,
                                   instances if task == "instance" else "off")
        labels = tuple(predictor.labels)
        n_classes_of(predictor)
        kind = predictor.instance_kind
    n = len(labels) if labels else _n_from(data)
    labels = labels or tuple(f"class{i}" for i in range(n))
    things: tuple[int, ...] = ()
    if task == "instance":
        if not kind:
            raise EdgesegError(f"{model} gives no instances: an instance model (train --task instance), "
                               "--instances components for a semantic model, or a predict folder "
                               "with instances/.")
        things = thing_classes([Path(data)], enc)
    acc = MetricAccumulator(n, enc.ignore_index)
    pq = PanopticAccumulator(n, things, enc.ignore_index) if task == "instance" else None
    done = 0
    for rgbs, masks in iter_images(pairs):
        for rgb, mask in zip(rgbs, masks):
            h, w = rgb.shape[:2]
            if folder:
                ids, pan = _read_prediction(model, Path(mask).stem, (h, w), pq is not None)
                acc.update(truth_at(mask, (h, w), enc, n, (h, w)), ids)
            else:
                ids, pan = predictor.panoptic(rgb) if pq is not None else (predictor.predict([rgb])[0][0], None)
                acc.update(truth_at(mask, ids.shape, enc, n, (h, w)), ids)
            if pq is not None:
                from edgeseg.preprocess import resize_mask

                pq.update(read_panoptic(mask, enc, n), resize_mask(pan.astype(np.int32), h, w))
            done += 1
        if progress:
            progress(done, len(pairs))
    require_scored(acc, Path(data))
    return Evaluation(acc.result(), pq.result() if pq else None, labels, things, kind, predictor)


def _n_from(data: Path) -> int:
    labels = Path(data) / "labels.txt"
    if not labels.is_file():
        raise EdgesegError(f"neither the predictions nor {data} have a labels.txt; add one.")
    return sum(1 for s in labels.read_text().splitlines() if s.strip())


def _read_prediction(folder: Path, stem: str, size: tuple[int, int],
                     instances: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    from edgeseg.data.instances import read_instances
    from edgeseg.data.readers import read_mask

    path = folder / "annotations" / f"{stem}.png"
    if not path.is_file():
        raise EdgesegError(f"{path}: no prediction for {stem}; run edgeseg predict on the same images.")
    ids = read_mask(path, MaskEncoding(ignore_index=None))
    if ids.shape != size:
        raise EdgesegError(f"{path}: size {hw(*ids.shape[:2])} differs from its image's "
                           f"{hw(*size[:2])}; predict writes masks at the image's size.")
    if not instances:
        return ids, None
    ipath = folder / "instances" / f"{stem}.png"
    if not ipath.is_file():
        raise EdgesegError(f"{ipath}: no instance prediction for {stem}.")
    inst = read_instances(ipath)
    return ids, np.where(inst >= 1000, inst, ids).astype(np.int32)
