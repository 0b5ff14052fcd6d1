"""The convert-time distribution of per-frame confidence, stored in the sidecar and metadata."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeseg.config import sidecar_path
from edgeseg.errors import EdgesegError

# Images run through the converted model; enough for 5th/95th percentiles, a few seconds.
MAX_IMAGES = 64


def confidence_reference(model: bytes, info: dict[str, Any], calib: Any,
                         log: Callable[[str], None] = print,
                         max_images: int = MAX_IMAGES, folder: str | None = None,
                         seed: int = 0) -> dict[str, Any] | None:
    """Run the converted model on the calibration images; summarize how sure it is.

    The result (mean/std/p05/p50/p95 of each frame's mean top-1 probability, top-1/top-2
    margin, and each class's share of the image; see
    :func:`edgeseg.runtime.confidence.summarize`) is what ``edgeseg run`` compares a
    rolling window against to flag a scene the model is unsure of.

    Args:
        model: The converted ``.tflite`` bytes.
        info: Its sidecar dict (preprocessing, labels, head), as the runtime reads it.
        calib: The :class:`~edgeseg.convert.calibration.CalibrationSet`; None (a float
            model) samples ``folder`` instead when one was given (``--calib``).
        log: Receives one line.
        max_images: The first this many calibration images are used.
        folder: Images for a model converted without calibration.
        seed: Sampling seed for ``folder``.

    Returns:
        The summary, with ``source`` naming the images, or None without images or when
        the runtime can't run the model here (an Edge TPU-only model, say).
    """
    if calib is None and folder:
        from edgeseg.convert.calibration import load_calibration

        calib = load_calibration(folder, max_images, seed, warn=lambda m: None)
    if calib is None or not calib.files:
        return None
    from edgeseg.data.readers import read_image
    from edgeseg.runtime.confidence import frame_confidence, summarize
    from edgeseg.runtime.segmenter import Segmenter

    files = list(calib.files)[:max_images]
    with tempfile.TemporaryDirectory(prefix="edgeseg-confidence-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        sidecar_path(path).write_text(json.dumps(info))
        try:
            seg = Segmenter(path, rgb=True)
        except EdgesegError as e:
            log(f"note: no confidence reference stored ({e})")
            return None
        frames = []
        for f in files:
            seg.segment(read_image(Path(f)))
            frames.append(frame_confidence(seg))
        del seg
    ref = summarize(frames)
    ref["source"] = f"{len(frames)} calibration images from {calib.folder}"
    if "top1" in ref:
        log(f"confidence reference: mean top-1 {ref['top1']['p50']:.2f} (5th percentile "
            f"{ref['top1']['p05']:.2f}) on {ref['source']}")
    return ref
