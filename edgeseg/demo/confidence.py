"""How sure the demo's int8 model is on the demo's own clip, and why, in numbers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def _top1(seg: Any, frames: Iterable[np.ndarray]) -> np.ndarray:
    from edgeseg.runtime.confidence import frame_confidence

    values = []
    for rgb in frames:
        seg.segment(rgb)
        values.append(frame_confidence(seg).top1)
    return np.array(values, np.float64)


def _decoded(clip: Path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(clip))
    frames = []
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return frames
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()


def clip_confidence(model: str | Path, clip: str | Path, raw_frames: Iterable[np.ndarray],
                    warning: str | None) -> dict[str, Any] | None:
    """Per-frame mean top-1 probability of ``model`` on the clip, beside its reference.

    The reference is what ``edgeseg convert --int8`` measured on the calibration images
    and stored in the model (the runtime's "unsure" warning fires when the mean of the
    last frames falls below its 5th percentile). The clip is measured twice: as the
    runtime reads it (decoded from the mp4) and as it was drawn (``raw_frames``, before
    the codec), which separates what the codec costs from what the scene costs.

    Args:
        model: The int8 ``.tflite`` (with its convert-time confidence reference).
        clip: The demo's video.
        raw_frames: The clip's frames before encoding (RGB), in order.
        warning: The "unsure" warning ``edgeseg run`` printed on the clip, if any.

    Returns:
        ``top1`` (mean, min, max over the decoded frames), ``raw_top1`` (mean before the
        codec), ``frames``, ``reference`` (p05, p50 and the images it came from),
        ``below_p05`` and ``warning``; None for a model without a reference.
    """
    from edgeseg.runtime import Segmenter

    seg = Segmenter(model, rgb=True)
    ref = seg.metadata.confidence
    if not ref or "top1" not in ref:
        return None
    decoded = _top1(seg, _decoded(Path(clip)))
    raw = _top1(seg, raw_frames)
    mean = float(decoded.mean())
    return {
        "frames": int(decoded.size),
        "top1": {"mean": round(mean, 3), "min": round(float(decoded.min()), 3),
                 "max": round(float(decoded.max()), 3)},
        "raw_top1": round(float(raw.mean()), 3),
        "reference": {"p05": ref["top1"]["p05"], "p50": ref["top1"]["p50"],
                      "source": ref.get("source", "the calibration images")},
        "below_p05": mean < ref["top1"]["p05"],
        "warning": warning,
    }


def explain(c: dict[str, Any] | None) -> str | None:
    """The demo's sentence on its clip's confidence: why the runtime did (or did not) call
    the model unsure, from the numbers of :func:`clip_confidence`; None without them."""
    if c is None:
        return None
    ref, top = c["reference"], c["top1"]
    facts = (f"On its own clip the int8 model's mean top-1 probability is {top['mean']:.3f} "
             f"({top['min']:.3f}-{top['max']:.3f} over {c['frames']} frames); on "
             f"{ref['source']} it was {ref['p50']:.3f} (median), {ref['p05']:.3f} at the 5th "
             "percentile.")
    if not (c["warning"] or c["below_p05"]):
        return facts + " The clip is within that range: no 'unsure' warning."
    raw, codec = c["raw_top1"], c["raw_top1"] - top["mean"]
    why = []
    if raw < ref["p05"]:
        why.append(f"the clip is a single scene, and one in this model's lowest 5 % "
                   f"({raw:.3f} on its frames before encoding)")
    elif raw < ref["p50"]:
        why.append(f"the clip is a single scene, harder than most calibration scenes for this "
                   f"model ({raw:.3f} on its frames before encoding)")
    else:
        why.append(f"the clip is a single scene ({raw:.3f} on its frames before encoding)")
    if codec > 0.005:
        why.append(f"the clip's mp4 encoding takes {codec:.3f} off")
    fired = c["warning"].split("(", 1)[1].split(")")[0] if c["warning"] and "(" in c["warning"] \
        else None
    return (facts + " The runtime's 'unsure' warning compares the last frames with that range"
            + (f" (it fired on: {fired})" if fired else "") + f"; here {'; and '.join(why)}. "
            "The warning is doing its job: a camera seeing such a scene is flagged the same way "
            "(and --collect would keep those frames to label).")
