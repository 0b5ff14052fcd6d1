"""Float vs quantized instance model: agreement of each head and the PQ drop."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.data.readers import MaskEncoding
from edgeseg.errors import EdgesegError


@dataclass(frozen=True)
class HeadComparison:
    """How the quantized model's heads follow the float model's, over ``images`` images.

    Attributes:
        images: Images compared.
        class_agreement: Share of pixels with the same argmax class.
        center_mae: Mean |heat difference| of the centre heatmap (0-1 scale).
        center_max_error: Largest |heat difference|.
        center_recall: Share of the float model's centres with a quantized centre within
            2 output pixels.
        offset_mae_px: Mean |offset difference| in output pixels over the float model's thing pixels.
        offset_p95_px: 95th percentile of the same.
        offset_scale_px: The quantized offset tensor's step (scale) in output pixels.
        pq_float: PQ_things of the float model (at the images' size).
        pq_quant: PQ_things of the quantized model.
    """

    images: int
    class_agreement: float
    center_mae: float
    center_max_error: float
    center_recall: float
    offset_mae_px: float
    offset_p95_px: float
    offset_scale_px: Optional[float]
    pq_float: float
    pq_quant: float

    @property
    def pq_drop(self) -> float:
        """PQ_things points lost (float − quantized) × 100."""
        return 100.0 * (self.pq_float - self.pq_quant)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pq_drop": self.pq_drop}


def compare_heads(float_model: Path, quant_model: Path, data: Path, limit: Optional[int] = None,
                  encoding: Optional[MaskEncoding] = None) -> HeadComparison:
    """Run both instance models on ``data``'s images and compare their heads and PQ.

    Raises:
        EdgesegError: Either model has no instance heads, or the data has no instances/.
    """
    from edgeseg.data.instance_pipeline import read_panoptic, thing_classes
    from edgeseg.preprocess import resize_mask
    from edgeseg.runtime import instances as ri
    from edgeseg.verify.evaluate import eval_pairs, iter_images
    from edgeseg.verify.panoptic import PanopticAccumulator
    from edgeseg.verify.predict import load_predictor

    enc = encoding or MaskEncoding()
    preds = [load_predictor(m) for m in (float_model, quant_model)]
    for p in preds:
        if p.instance_kind != "heads":
            raise EdgesegError(f"{p.path} has no instance heads; comparing the instance heads "
                               "needs two instance models (train --task instance, then convert).")
    n = len(preds[0].labels)
    things = thing_classes([Path(data)], enc)
    # Each model groups with the centre threshold and window it records (as evaluate does).
    grouping = [getattr(p, "grouping", None) or (p.segmenter.instance_reader.threshold,
                                                 p.segmenter.instance_reader.kernel) for p in preds]
    lut = ri.thing_lookup(things, n)
    pairs = eval_pairs(Path(data))[:limit]
    pq = [PanopticAccumulator(n, things, enc.ignore_index) for _ in preds]
    agree = center_err = center_max = 0.0
    recall_hits = recall_total = 0
    off_errors: list[np.ndarray] = []
    done = 0
    for rgbs, masks in iter_images(pairs):
        for rgb, mask in zip(rgbs, masks):
            heads = [p.heads(rgb) for p in preds]
            truth = read_panoptic(mask, enc, n)
            ids = []
            for k, (scores, heat, off) in enumerate(heads):
                cls = np.argmax(scores, -1).astype(np.uint8)
                centres = ri.find_centres(heat[..., 0], *grouping[k])
                _, pan = ri.panoptic_from_heads(scores, heat[..., 0], off, things, *grouping[k])
                pq[k].update(truth, resize_mask(pan, *truth.shape))
                ids.append((cls, centres))
            (fc, fcent), (qc, qcent) = ids
            agree += float((fc == qc).mean())
            d = np.abs(heads[0][1] - heads[1][1])
            center_err += float(d.mean())
            center_max = max(center_max, float(d.max()))
            if len(fcent):
                recall_total += len(fcent)
                if len(qcent):
                    dist = np.abs(fcent[:, None, :] - qcent[None, :, :]).max(-1)
                    recall_hits += int((dist.min(1) <= 2).sum())
            sel = lut[fc]
            off_errors.append(np.abs(heads[0][2] - heads[1][2])[sel].ravel())
            done += 1
    if not done:
        raise EdgesegError(f"{data} has no image/mask pairs to compare on.")
    off = np.concatenate(off_errors) if off_errors else np.zeros(1)
    scale = None
    reader = getattr(getattr(preds[1], "segmenter", None), "instance_reader", None)
    if reader is not None:
        scale = float(reader._views["offset"][1]) or None  # type: ignore[attr-defined]
    return HeadComparison(done, agree / done, center_err / done, center_max,
                          recall_hits / recall_total if recall_total else float("nan"),
                          float(off.mean()) if off.size else 0.0,
                          float(np.percentile(off, 95)) if off.size else 0.0, scale,
                          pq[0].result().pq_things, pq[1].result().pq_things)
