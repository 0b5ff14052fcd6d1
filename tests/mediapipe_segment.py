"""Segment images with MediaPipe Tasks' ImageSegmenter; run with a Python that has mediapipe.

    python mediapipe_segment.py OUT.npz MODEL.tflite IMAGE.png [IMAGE.png ...]

Writes ``mask<i>`` (the category mask, uint8, at the image's size) per image, or
``error`` (one line) when MediaPipe refuses the model. Kept apart from the test
process: mediapipe pins its own numpy and protobuf.
"""

from __future__ import annotations

import sys


def main(out: str, model: str, *images: str) -> None:
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    try:
        opts = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=model),
                                            output_category_mask=True, output_confidence_masks=False)
        seg = vision.ImageSegmenter.create_from_options(opts)
    except Exception as e:  # MediaPipe raises RuntimeError/ValueError with its own message
        np.savez(out, error=np.array(str(e).strip().splitlines()[0][:300]))
        return
    masks = {}
    for i, path in enumerate(images):
        result = seg.segment(mp.Image.create_from_file(path))
        masks[f"mask{i}"] = np.array(result.category_mask.numpy_view(), copy=True)
    np.savez(out, **masks)


if __name__ == "__main__":
    main(*sys.argv[1:])
