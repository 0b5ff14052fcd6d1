"""Score a .keras or .tflite model on a dataset with one metric code path."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.config import ModelConfig
from edgeseg.data.readers import MaskEncoding
from edgeseg.errors import EdgesegError
from edgeseg.metrics import MetricAccumulator, SegMetrics


def iter_batches(pairs: Sequence[tuple[Path, Path]], cfg: ModelConfig, batch_size: int = 8,
                 encoding: Optional[MaskEncoding] = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(RGB uint8 at input size, class ids at output size) batches, via the shared readers.

    Raises:
        EdgesegError: A file is unreadable, or a mask holds ids ``>= cfg.n_classes``
            other than the ignore index, or differs in size from its image.
    """
    from edgeseg.data.readers import read_image, read_mask
    from edgeseg.preprocess import resize_mask, resize_rgb

    oh, ow = cfg.output_size
    for i in range(0, len(pairs), batch_size):
        imgs, masks = [], []
        for img_path, mask_path in pairs[i:i + batch_size]:
            rgb, ids = read_image(img_path), read_mask(mask_path, encoding, cfg.n_classes)
            if rgb.shape[:2] != ids.shape:
                raise EdgesegError(f"{mask_path}: size {ids.shape[1]}x{ids.shape[0]} differs from its "
                                   f"image's {rgb.shape[1]}x{rgb.shape[0]} ({img_path.name}); masks must "
                                   "match pixel for pixel.")
            imgs.append(resize_rgb(rgb, cfg.height, cfg.width))
            masks.append(resize_mask(ids, oh, ow))
        yield np.stack(imgs), np.stack(masks)


def eval_pairs(data: Path) -> list[tuple[Path, Path]]:
    """The pairs to score: ``data/val`` when present, else all of ``data``."""
    from edgeseg.data.dataset import list_pairs

    data = Path(data)
    return list_pairs(data / "val" if (data / "val" / "images").is_dir() else data)


def evaluate(model_path: str | Path, data: str | Path, limit: Optional[int] = None,
             progress: Optional[Callable[[int, int], None]] = None,
             threads: Optional[int] = None,
             encoding: Optional[MaskEncoding] = None) -> tuple[SegMetrics, Any]:
    """Per-class IoU, mIoU, fwIoU, pixel accuracy and confusion of a model on ``data``.

    Predictions and ground truth are compared at the model's output (label)
    resolution, half the input size: masks are resized there with nearest-neighbour.
    Pixels of ``encoding.ignore_index`` (default 255) are left out of every metric.

    Returns:
        The metrics and the predictor (for its config).
    """
    from edgeseg.predict import load_predictor

    predictor = load_predictor(model_path, threads)
    pairs = eval_pairs(Path(data))[:limit]
    acc = MetricAccumulator(predictor.cfg.n_classes, (encoding or MaskEncoding()).ignore_index)
    done = 0
    for rgb, truth in iter_batches(pairs, predictor.cfg, encoding=encoding):
        acc.update(truth, predictor(rgb).mask)
        done += len(rgb)
        if progress:
            progress(done, len(pairs))
    return acc.result(), predictor
