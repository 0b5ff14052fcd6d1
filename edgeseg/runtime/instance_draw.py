"""Drawing instances: each object in its own colour, outlined, with its id and class."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edgeseg.runtime.instances import Instance


def instance_colours(n: int = 1024) -> np.ndarray:
    """n×3 uint8 BGR colours, neighbouring ids far apart (golden-ratio hues); id 0 black."""
    hue = (np.arange(n) * 0.618033988749895 % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hue, np.full(n, 200, np.uint8), np.full(n, 255, np.uint8)], 1)[None]
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]
    bgr[0] = 0
    return bgr


_COLOURS = instance_colours()


def draw_instances(frame: np.ndarray, ids: np.ndarray, instances: Sequence[Instance],
                   labels: Sequence[str] = (), alpha: float = 0.5,
                   kind: str = "instances") -> np.ndarray:
    """A new BGR image: ``frame`` with each instance blended in its own colour, its id and class.

    Args:
        frame: H×W×3 uint8 BGR.
        ids: H×W instance ids at the frame's size (0: none).
        instances: The frame's instances (their ids index the colours).
        labels: Class names.
        alpha: Weight of the colour in the blend.
        kind: Shown in the corner (``components`` for connected-component instances).
    """
    colours = _COLOURS[np.asarray(ids) % len(_COLOURS)]
    blend = cv2.addWeighted(frame, 1.0 - alpha, colours, alpha, 0.0)
    out = np.where((ids > 0)[..., None], blend, frame)
    scale = max(0.35, min(frame.shape[:2]) / 600)
    for inst in instances:
        x0, y0, x1, y1 = inst.bbox
        colour = tuple(int(c) for c in _COLOURS[inst.id % len(_COLOURS)])
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), colour, 1)
        name = labels[inst.class_id] if inst.class_id < len(labels) else str(inst.class_id)
        cx, cy = int(inst.centre[0]), int(inst.centre[1])
        cv2.putText(out, f"{inst.id} {name}", (x0 + 2, max(10, y0 + int(12 * scale / 0.4))),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.circle(out, (cx, cy), 2, (255, 255, 255), -1)
    cv2.putText(out, f"{len(instances)} {kind}", (4, frame.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def instance_overlay(overlay: object, labels: Sequence[str], kind: str) -> object:
    """A ``run`` draw function for instance results: the class overlay, then each instance.

    Returns:
        ``draw(frame, result, fps, latency_ms) -> BGR image`` taking a Segmentation.
    """
    def draw(frame: np.ndarray, result: object, fps: float | None = None,
             latency_ms: float | None = None) -> np.ndarray:
        base = overlay.draw(frame, result.mask, fps, latency_ms)  # type: ignore[attr-defined]
        # The class overlay may add a legend panel beside a small frame: draw on the frame's part.
        h, w = frame.shape[:2]
        base[:h, :w] = draw_instances(base[:h, :w], result.instance_ids, result.instances,  # type: ignore[attr-defined]
                                      labels, alpha=0.45,
                                      kind="components" if kind == "components" else "instances")
        return base

    return draw
