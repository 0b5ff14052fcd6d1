"""Verify a quantized model against its float source: agreement, mIoU drop, layer errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.data.readers import MaskEncoding
from edgeseg.errors import EdgesegError
from edgeseg.sizes import hw
from edgeseg.verify.metrics import MetricAccumulator, SegMetrics


@dataclass(frozen=True)
class CompareReport:
    """Float vs quantized on the same images.

    Attributes:
        images: How many images were compared.
        pixel_agreement: Share of pixels whose argmax class is the same.
        flip_rate: Per class, the share of pixels the float model gives that class
            that the quantized model labels otherwise.
        float_metrics: Float model against ground truth.
        quant_metrics: Quantized model against ground truth.
        prob_max_error: Max |p_float - p_quant| of the dequantized probabilities.
        prob_mean_error: Mean of the same (None when either model outputs class ids).
        layers: Per-layer quantization error, worst first (None unless asked).
        accelerator: The GPU accelerator line of the second model (``delegate="gpu"``).
        layers_calibration: Which calibration set the per-layer errors were made with.
    """

    images: int
    pixel_agreement: float
    flip_rate: tuple[float, ...]
    float_metrics: SegMetrics
    quant_metrics: SegMetrics
    prob_max_error: Optional[float]
    prob_mean_error: Optional[float]
    labels: tuple[str, ...]
    layers: Optional[list[dict[str, Any]]] = None
    accelerator: Optional[str] = None
    layers_calibration: Optional[str] = None

    @property
    def miou_drop(self) -> float:
        """mIoU drop in points (0-100 scale); negative when quantization helped."""
        return 100.0 * (self.float_metrics.mean_iou - self.quant_metrics.mean_iou)

    def passes(self, max_drop: Optional[float]) -> bool:
        """The gate: True when the mIoU drop is at most ``max_drop`` points (None: no gate)."""
        return max_drop is None or self.miou_drop <= max_drop

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images, "pixel_agreement": round(self.pixel_agreement, 6),
            "flip_rate": {n: round(f, 6) for n, f in zip(self.labels, self.flip_rate)},
            "float_miou": round(self.float_metrics.mean_iou, 6),
            "quant_miou": round(self.quant_metrics.mean_iou, 6),
            "miou_drop_points": round(self.miou_drop, 4),
            "prob_max_error": self.prob_max_error, "prob_mean_error": self.prob_mean_error,
            "float": self.float_metrics.to_dict(self.labels),
            "quant": self.quant_metrics.to_dict(self.labels),
            "layers": self.layers, "layers_calibration": self.layers_calibration,
            "accelerator": self.accelerator,
        }


def compare(float_model: str | Path, quant_model: str | Path, data: str | Path,
            limit: Optional[int] = None, layers: bool = False,
            progress: Optional[Callable[[int, int], None]] = None,
            output: Optional[int] = None,
            encoding: Optional[MaskEncoding] = None, delegate: Optional[str] = None,
            fallback: bool = False) -> CompareReport:
    """Run both models on ``data`` (its val/ split when present) and compare them.

    A ``.tflite`` runs through ``edgeseg.runtime.Segmenter``, the code the device runs.

    Args:
        float_model: The reference (.keras or float .tflite).
        quant_model: The quantized .tflite.
        data: Dataset folder with ground truth.
        limit: Compare only the first N images.
        layers: Also rank layers by quantization error: the int8 conversion is re-made
            with the settings and calibration set ``quant_model`` records
            (:func:`edgeseg.convert.layer_errors.plan_layer_errors`), from the .keras
            ``float_model`` or the source the .tflite records.
        progress: Called as ``progress(done, total)``.
        output: Which output of a .tflite holds the segmentation.
        encoding: How masks are read (default: ``MaskEncoding()``, ignore index 255).
        delegate: Where the second model runs (the reference stays on the CPU): with
            both the same .tflite and ``"gpu"``, how far the GPU agrees with the CPU.
        fallback: Run it on the CPU, with a warning, when the delegate can't be used.

    Raises:
        EdgesegError: Models that predict different classes or label-map sizes, no data;
            with ``layers``, a .tflite that does not record its conversion (checked first).
    """
    from edgeseg.verify.evaluate import (
        check_eval_data,
        eval_pairs,
        iter_images,
        n_classes_of,
        require_scored,
        truth_at,
    )
    from edgeseg.verify.predict import load_predictor

    # The .tflite first: --delegate gpu loads the Vulkan drivers, which must come before
    # TensorFlow (a .keras reference) for LLVM-based ones to run (runtime/vulkan_drivers.py).
    quant = load_predictor(quant_model, output=output, delegate=delegate, fallback=fallback)
    plan = None
    if layers:  # refuse before the long part when the file cannot be re-made
        from edgeseg.convert.layer_errors import plan_layer_errors

        plan = plan_layer_errors(quant_model, float_model if Path(float_model).suffix == ".keras"
                                 else None)
    ref = load_predictor(float_model, output=output)
    n = n_classes_of(ref)
    if n_classes_of(quant) != n:
        raise EdgesegError(f"{float_model} predicts {n} classes and {quant_model} "
                           f"{len(quant.labels)}; compare a model with its own conversion.")
    check_eval_data(Path(data), n, encoding)
    pairs = eval_pairs(Path(data))[:limit]
    ignore = (encoding or MaskEncoding()).ignore_index
    acc_f, acc_q = MetricAccumulator(n, ignore), MetricAccumulator(n, ignore)
    agree = MetricAccumulator(n)  # float prediction vs quantized prediction
    max_err, err_sum, err_n, done = 0.0, 0.0, 0, 0
    # Probabilities compare only when both heads give the same kind of score.
    comparable = ref.head == quant.head or {ref.head, quant.head} <= {"softmax", None}
    for rgbs, masks in iter_images(pairs):
        for (mf, sf), (mq, sq), mask, rgb in zip(ref.predict(rgbs, comparable),
                                                 quant.predict(rgbs, comparable), masks, rgbs):
            if mf.shape != mq.shape:
                raise EdgesegError(f"{float_model} predicts {hw(*mf.shape[:2])} label maps "
                                   f"and {quant_model} {hw(*mq.shape[:2])}; compare a "
                                   "model with its own conversion.")
            truth = truth_at(mask, mf.shape, encoding, n, rgb.shape[:2])
            acc_f.update(truth, mf)
            acc_q.update(truth, mq)
            agree.update(mf, mq)
            if sf is not None and sq is not None:
                diff = np.abs(sf - sq)
                max_err = max(max_err, float(diff.max()))
                err_sum += float(diff.sum())
                err_n += diff.size
        done += len(rgbs)
        if progress:
            progress(done, len(pairs))
    if not done:
        raise EdgesegError(f"{data} has no image/mask pairs to compare on.")
    require_scored(acc_f, Path(data))
    cm = agree.cm
    with np.errstate(invalid="ignore", divide="ignore"):
        flips = 1.0 - np.diag(cm) / cm.sum(axis=1)
    layer_rows = None
    if plan is not None:
        from edgeseg.convert.layer_errors import layer_errors

        layer_rows = layer_errors(plan)
    return CompareReport(
        images=done, pixel_agreement=float(np.trace(cm) / cm.sum()),
        flip_rate=tuple(float(0.0 if np.isnan(f) else f) for f in flips),
        float_metrics=acc_f.result(), quant_metrics=acc_q.result(),
        prob_max_error=round(max_err, 6) if err_n else None,
        prob_mean_error=round(err_sum / err_n, 6) if err_n else None,
        labels=tuple(ref.labels), layers=layer_rows,
        accelerator=(quant.segmenter.describe()["accelerator"]
                     if hasattr(quant, "segmenter") else None),
        layers_calibration=plan.describe() if plan is not None else None,
    )
