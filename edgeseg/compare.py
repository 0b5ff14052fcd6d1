"""Verify a quantized model against its float source: agreement, mIoU drop, layer errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.data.readers import MaskEncoding
from edgeseg.errors import EdgesegError
from edgeseg.metrics import MetricAccumulator, SegMetrics


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

    @property
    def miou_drop(self) -> float:
        """mIoU drop in points (0-100 scale); negative when quantization helped."""
        return 100.0 * (self.float_metrics.mean_iou - self.quant_metrics.mean_iou)

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
            "layers": self.layers,
        }


def compare(float_model: str | Path, quant_model: str | Path, data: str | Path,
            limit: Optional[int] = None, layers: bool = False,
            progress: Optional[Callable[[int, int], None]] = None,
            encoding: Optional[MaskEncoding] = None) -> CompareReport:
    """Run both models on ``data`` (its val/ split when present) and compare them.

    Args:
        float_model: The reference (.keras or float .tflite).
        quant_model: The quantized .tflite.
        data: Dataset folder with ground truth.
        limit: Compare only the first N images.
        layers: Also rank layers by quantization error (needs the .keras source).
        progress: Called as ``progress(done, total)``.
        encoding: How masks are read (default: ``MaskEncoding()``, ignore index 255).
    """
    from edgeseg.evaluate import eval_pairs, iter_batches
    from edgeseg.predict import load_predictor

    ref = load_predictor(float_model)
    quant = load_predictor(quant_model)
    if (ref.cfg.height, ref.cfg.width, ref.cfg.n_classes) != (
            quant.cfg.height, quant.cfg.width, quant.cfg.n_classes):
        raise EdgesegError(f"{float_model} and {quant_model} differ in input size or classes; "
                           "compare a model with its own conversion.")
    n = ref.cfg.n_classes
    pairs = eval_pairs(Path(data))[:limit]
    ignore = (encoding or MaskEncoding()).ignore_index
    acc_f, acc_q = MetricAccumulator(n, ignore), MetricAccumulator(n, ignore)
    agree = MetricAccumulator(n)  # float prediction vs quantized prediction
    max_err, err_sum, err_n, done = 0.0, 0.0, 0, 0
    comparable = getattr(quant, "head", "softmax") == "softmax"
    for rgb, truth in iter_batches(pairs, ref.cfg, encoding=encoding):
        pf, pq = ref(rgb), quant(rgb)
        acc_f.update(truth, pf.mask)
        acc_q.update(truth, pq.mask)
        agree.update(pf.mask, pq.mask)
        if comparable and pf.scores is not None and pq.scores is not None:
            diff = np.abs(pf.scores - pq.scores)
            max_err = max(max_err, float(diff.max()))
            err_sum += float(diff.sum())
            err_n += diff.size
        done += len(rgb)
        if progress:
            progress(done, len(pairs))
    if not done:
        raise EdgesegError(f"{data} has no image/mask pairs to compare on.")
    cm = agree.cm
    with np.errstate(invalid="ignore", divide="ignore"):
        flips = 1.0 - np.diag(cm) / cm.sum(axis=1)
    layer_rows = None
    if layers:
        layer_rows = layer_errors(_keras_source(float_model, quant_model), pairs[:32])
    return CompareReport(
        images=done, pixel_agreement=float(np.trace(cm) / cm.sum()),
        flip_rate=tuple(float(0.0 if np.isnan(f) else f) for f in flips),
        float_metrics=acc_f.result(), quant_metrics=acc_q.result(),
        prob_max_error=round(max_err, 6) if err_n else None,
        prob_mean_error=round(err_sum / err_n, 6) if err_n else None,
        labels=ref.cfg.class_names, layers=layer_rows,
    )


def _keras_source(float_model: str | Path, quant_model: str | Path) -> Path:
    if Path(float_model).suffix == ".keras":
        return Path(float_model)
    from edgeseg.predict import read_tflite_sidecar

    src = read_tflite_sidecar(Path(quant_model)).get("tflite", {}).get("source")
    if src and Path(src).exists():
        return Path(src)
    raise EdgesegError("per-layer errors need the float .keras model; pass it as FLOAT.")


def layer_errors(keras_path: Path, pairs: list[tuple[Path, Path]],
                 top: int = 15) -> list[dict[str, Any]]:
    """Rank the int8 graph's tensors by quantization error relative to their scale.

    Uses TFLite's QuantizationDebugger on the .keras source with the same
    batch-1 deployment copy ``convert`` makes: RMSE/scale ≈ 0.3 is the floor of
    rounding noise; much larger means that layer's range is hurting.
    """
    import csv
    import io

    from edgeseg.convert.quantize import ConvertConfig, _converter
    from edgeseg.data.dataset import read_image
    from edgeseg.deps import tensorflow
    from edgeseg.model.build import deployment_copy
    from edgeseg.model.io import load_model
    from edgeseg.preprocess import preprocess

    tf = tensorflow()
    model, cfg = load_model(keras_path)
    deploy = deployment_copy(model, cfg, "softmax", True)
    xs = [preprocess(read_image(p), cfg.preprocessing)[None] for p, _ in pairs]

    class _Set:  # just enough of CalibrationSet for the converter
        def batches(self, spec: Any, progress: Any = None) -> Any:
            return ([x] for x in xs)

    conv = _converter(deploy, cfg, ConvertConfig(mode="int8", io="float32"), _Set(), None)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=conv, debug_dataset=lambda: ([x] for x in xs))
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    buf.seek(0)
    names = [layer.name for layer in deploy.layers]
    rows = []
    for r in csv.DictReader(buf):
        scale = float(r["scale"]) or 1.0
        rmse = float(r["mean_squared_error"]) ** 0.5
        tensor = r["tensor_name"]
        layer = next((n for n in sorted(names, key=len, reverse=True) if n in tensor), tensor[:60])
        rows.append({"layer": layer, "op": r["op_name"], "rmse_over_scale": round(rmse / scale, 4),
                     "max_abs_error": round(float(r["max_abs_error"]), 6), "scale": scale})
    rows.sort(key=lambda d: d["rmse_over_scale"], reverse=True)
    return rows[:top]
