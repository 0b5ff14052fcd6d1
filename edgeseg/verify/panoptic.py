"""Panoptic quality (PQ, SQ, RQ) of Kirillov et al., "Panoptic Segmentation", CVPR 2019 (numpy only).

Segments are read from Cityscapes-encoded maps (``class * 1000 + k`` for thing objects,
the class id for stuff): every thing object is a segment, and all pixels of a stuff
class in an image form one segment. A predicted and a ground-truth segment of the
same class match when their IoU is above 0.5 (unique by the paper's Theorem 1). Then,
per class, ``PQ = ΣIoU(TP) / (TP + ½FP + ½FN)``, ``SQ = ΣIoU(TP) / TP`` and
``RQ = TP / (TP + ½FP + ½FN)``, so ``PQ = SQ × RQ``; the dataset's PQ is the mean over
the classes that occur (in the truth or the prediction). As in the paper's reference
code, pixels of the ignore index are left out of every IoU, and an unmatched predicted
segment that lies more than half on ignored pixels is not a false positive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from edgeseg.data.instances import THING_OFFSET


@dataclass(frozen=True)
class PanopticScores:
    """PQ, SQ, RQ overall, over thing classes and over stuff classes, and per class.

    Attributes:
        pq, sq, rq: Means over the classes that occur (NaN when none does).
        pq_things, sq_things, rq_things: Means over the thing classes that occur.
        pq_stuff, sq_stuff, rq_stuff: Means over the stuff classes that occur.
        per_class: ``{class id: {"pq", "sq", "rq", "tp", "fp", "fn", "thing"}}``.
    """

    pq: float
    sq: float
    rq: float
    pq_things: float
    sq_things: float
    rq_things: float
    pq_stuff: float
    sq_stuff: float
    rq_stuff: float
    per_class: dict[int, dict[str, Any]]

    def to_dict(self, labels: Optional[tuple[str, ...]] = None) -> dict[str, Any]:
        def name(c: int) -> str:
            return labels[c] if labels and c < len(labels) else f"class{c}"

        return {"pq": self.pq, "sq": self.sq, "rq": self.rq,
                "things": {"pq": self.pq_things, "sq": self.sq_things, "rq": self.rq_things},
                "stuff": {"pq": self.pq_stuff, "sq": self.sq_stuff, "rq": self.rq_stuff},
                "per_class": {name(c): v for c, v in self.per_class.items()}}


def _segments(pan: np.ndarray, ignore: Optional[int]) -> np.ndarray:
    """Segment key per pixel: the encoded value for thing objects, the class for stuff, -1 ignored.

    Thing-class pixels without an object number form one segment of that class."""
    seg = pan.astype(np.int64)
    if ignore is not None:
        seg = np.where(seg == ignore, -1, seg)
    return seg


def _class_of(key: np.ndarray) -> np.ndarray:
    return np.where(key >= THING_OFFSET, key // THING_OFFSET, key)


class PanopticAccumulator:
    """Accumulates TP/FP/FN and the IoU sum per class over images.

    Args:
        n_classes: Class ids ``0..n_classes-1``.
        things: Thing class ids (the rest are stuff).
        ignore_index: Ground-truth value left out (None: none).
    """

    def __init__(self, n_classes: int, things: Iterable[int], ignore_index: Optional[int] = 255) -> None:
        self.n = n_classes
        self.things = frozenset(int(t) for t in things)
        self.ignore = ignore_index
        self.tp = np.zeros(n_classes, np.int64)
        self.fp = np.zeros(n_classes, np.int64)
        self.fn = np.zeros(n_classes, np.int64)
        self.iou = np.zeros(n_classes, np.float64)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> None:
        """Add one image: H×W Cityscapes-encoded ground truth and prediction.

        Raises:
            ValueError: Sizes differ.
        """
        if truth.shape != pred.shape:
            raise ValueError(f"truth and prediction differ in size: {truth.shape} vs {pred.shape}")
        gt = _segments(truth, self.ignore).ravel()
        pr = pred.astype(np.int64).ravel()
        void = gt < 0
        gt_keys, gt_area = np.unique(gt[~void], return_counts=True)
        pr_keys, pr_inv, pr_area = np.unique(pr, return_inverse=True, return_counts=True)
        pr_void = np.bincount(pr_inv[void], minlength=len(pr_keys)) if void.any() else \
            np.zeros(len(pr_keys), np.int64)
        # Intersections of every (truth, prediction) pair present, by one unique over pairs.
        keep = ~void
        pairs, inter = np.unique(np.stack([gt[keep], pr[keep]], 1), axis=0, return_counts=True)
        gt_index = {int(k): i for i, k in enumerate(gt_keys)}
        pr_index = {int(k): i for i, k in enumerate(pr_keys)}
        gt_matched = np.zeros(len(gt_keys), bool)
        pr_matched = np.zeros(len(pr_keys), bool)
        gt_cls, pr_cls = _class_of(gt_keys), _class_of(pr_keys)
        for (g, p), n in zip(pairs, inter):
            gi, pi = gt_index[int(g)], pr_index[int(p)]
            if gt_cls[gi] != pr_cls[pi]:
                continue
            # The prediction's ignored pixels are left out of its area (the reference code).
            union = gt_area[gi] + pr_area[pi] - pr_void[pi] - n
            iou = n / union
            if iou > 0.5:
                c = int(gt_cls[gi])
                self.tp[c] += 1
                self.iou[c] += iou
                gt_matched[gi] = pr_matched[pi] = True
        for gi in np.flatnonzero(~gt_matched):
            c = int(gt_cls[gi])
            if c < self.n:
                self.fn[c] += 1
        for pi in np.flatnonzero(~pr_matched):
            c = int(pr_cls[pi])
            if c < self.n and pr_void[pi] <= 0.5 * pr_area[pi]:
                self.fp[c] += 1

    def result(self) -> PanopticScores:
        """The scores so far (classes with no segment in truth or prediction are left out)."""
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        occurs = denom > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            pq = np.where(occurs, self.iou / np.maximum(denom, 1e-12), np.nan)
            sq = np.where(self.tp > 0, self.iou / np.maximum(self.tp, 1), np.where(occurs, 0.0, np.nan))
            rq = np.where(occurs, self.tp / np.maximum(denom, 1e-12), np.nan)
        thing = np.array([c in self.things for c in range(self.n)])

        def mean(v: np.ndarray, sel: np.ndarray) -> float:
            sel = sel & occurs
            return float(v[sel].mean()) if sel.any() else float("nan")

        every = np.ones(self.n, bool)
        per = {c: {"pq": float(pq[c]), "sq": float(sq[c]), "rq": float(rq[c]), "tp": int(self.tp[c]),
                   "fp": int(self.fp[c]), "fn": int(self.fn[c]), "thing": bool(thing[c])}
               for c in range(self.n) if occurs[c]}
        return PanopticScores(
            mean(pq, every), mean(sq, every), mean(rq, every),
            mean(pq, thing), mean(sq, thing), mean(rq, thing),
            mean(pq, ~thing), mean(sq, ~thing), mean(rq, ~thing), per)


def panoptic_quality(truths: Iterable[np.ndarray], preds: Iterable[np.ndarray], n_classes: int,
                     things: Iterable[int], ignore_index: Optional[int] = 255) -> PanopticScores:
    """PQ/SQ/RQ of predicted Cityscapes-encoded maps against the truth, over a dataset."""
    acc = PanopticAccumulator(n_classes, things, ignore_index)
    for t, p in zip(truths, preds):
        acc.update(t, p)
    return acc.result()

