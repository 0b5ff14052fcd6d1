"""Segmentation metrics from a confusion matrix (numpy only): IoU, mIoU, fwIoU, accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion counts: rows are ground-truth classes, columns predicted classes.

    Pixels whose ground truth is outside ``0..n_classes-1`` (e.g. 255 'ignore') are skipped.
    """
    t = np.asarray(truth).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in size: {t.shape} vs {p.shape}")
    keep = (t >= 0) & (t < n_classes)
    p = np.clip(p[keep], 0, n_classes - 1)
    return np.bincount(t[keep] * n_classes + p, minlength=n_classes**2).reshape(n_classes, n_classes)


@dataclass(frozen=True)
class SegMetrics:
    """Scores of one model on one dataset.

    Per-class IoU is NaN for a class that appears neither in the truth nor in the
    predictions; the mean skips such classes.
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

    def __init__(self, n_classes: int) -> None:
        self.n_classes = n_classes
        self.cm = np.zeros((n_classes, n_classes), np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> None:
        self.cm += confusion_matrix(truth, pred, self.n_classes)

    def result(self) -> SegMetrics:
        return SegMetrics.from_confusion(self.cm)
