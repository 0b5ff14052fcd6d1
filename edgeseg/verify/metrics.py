"""Segmentation metrics from a confusion matrix (numpy only): IoU, mIoU, fwIoU, accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from edgeseg.data.readers import IGNORE_INDEX


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n_classes: int,
                     ignore_index: Optional[int] = IGNORE_INDEX) -> np.ndarray:
    """Confusion counts: rows are ground-truth classes, columns predicted classes.

    Args:
        truth: Ground-truth class ids, any shape.
        pred: Predicted class ids, the same number of elements.
        n_classes: Number of classes.
        ignore_index: Ground-truth id whose pixels are left out (None: none).

    Returns:
        ``n_classes × n_classes`` int64 counts.

    Raises:
        ValueError: Sizes differ, or the truth holds ids outside ``0..n_classes-1``
            other than ``ignore_index`` (masks are checked before scoring; such an
            id is never skipped silently).
    """
    t = np.asarray(truth).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in size: {t.shape} vs {p.shape}")
    keep = t != ignore_index if ignore_index is not None else np.ones(t.shape, bool)
    outside = keep & ((t < 0) | (t >= n_classes))
    if outside.any():
        ids = ", ".join(str(int(v)) for v in np.unique(t[outside])[:6])
        raise ValueError(f"ground truth holds ids {ids} outside 0..{n_classes - 1} "
                         f"(ignore index {ignore_index})")
    p = np.clip(p[keep], 0, n_classes - 1)
    return np.bincount(t[keep] * n_classes + p, minlength=n_classes**2).reshape(n_classes, n_classes)


@dataclass(frozen=True)
class SegMetrics:
    """Scores of one model on one dataset.

    Convention (the confusion-matrix one of PASCAL VOC and Cityscapes, accumulated
    over the whole dataset, not averaged per image): IoU_c = TP / (TP + FP + FN).
    Pixels of the ignore index are counted nowhere. A class absent from both the
    truth and the predictions has IoU NaN and is left out of the mean; a class
    present in the truth and never predicted scores 0; a class predicted but
    absent from the truth scores 0 as well (its pixels are all false positives).
    So a validation set without some class does not measure that class at all:
    ``edgeseg train`` warns about it.
    """

    per_class_iou: tuple[float, ...]
    mean_iou: float
    fw_iou: float
    pixel_accuracy: float
    confusion: np.ndarray

    @classmethod
    def from_confusion(cls, cm: np.ndarray) -> SegMetrics:
        cm = np.asarray(cm, dtype=np.float64)
        tp = np.diag(cm)
        gt = cm.sum(axis=1)
        union = gt + cm.sum(axis=0) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
        total = cm.sum()
        freq = gt / total if total else np.zeros_like(gt)
        valid = ~np.isnan(iou)
        return cls(
            per_class_iou=tuple(float(x) for x in iou),
            mean_iou=float(np.mean(iou[valid])) if valid.any() else float("nan"),
            fw_iou=float(np.sum(freq[valid] * iou[valid])),
            pixel_accuracy=float(tp.sum() / total) if total else float("nan"),
            confusion=cm.astype(np.int64),
        )

    def to_dict(self, labels: tuple[str, ...] | None = None) -> dict[str, Any]:
        def clean(x: float) -> float | None:
            return None if np.isnan(x) else round(x, 6)

        d: dict[str, Any] = {
            "mean_iou": clean(self.mean_iou),
            "per_class_iou": [clean(x) for x in self.per_class_iou],
            "fw_iou": clean(self.fw_iou),
            "pixel_accuracy": clean(self.pixel_accuracy),
            "confusion": self.confusion.tolist(),
        }
        if labels:
            d["labels"] = list(labels)
        return d


class MetricAccumulator:
    """Accumulates a confusion matrix over batches."""

    def __init__(self, n_classes: int, ignore_index: Optional[int] = IGNORE_INDEX) -> None:
        self.n_classes = n_classes
        self.ignore_index = ignore_index
        self.cm = np.zeros((n_classes, n_classes), np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> None:
        self.cm += confusion_matrix(truth, pred, self.n_classes, self.ignore_index)

    def result(self) -> SegMetrics:
        return SegMetrics.from_confusion(self.cm)
