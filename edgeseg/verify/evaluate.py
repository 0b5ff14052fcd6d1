"""Score a .keras or .tflite model on a dataset with one metric code path."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.config import ModelConfig
from edgeseg.data.readers import MaskEncoding
from edgeseg.errors import EdgesegError
from edgeseg.sizes import hw
from edgeseg.verify.metrics import MetricAccumulator, SegMetrics


def truth_at(mask_path: Path, shape: tuple[int, int], encoding: Optional[MaskEncoding] = None,
             n_classes: Optional[int] = None, image_shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Ground-truth class ids resized to a prediction's h×w (the one label resampling).

    Args:
        mask_path: The mask file (read by the one mask reader, with ``encoding``).
        shape: (h, w) of the prediction.
        encoding: How the mask is read (default ``MaskEncoding()``: ignore index 255).
        n_classes: When given, ids ``>= n_classes`` other than the ignore index are an error.
        image_shape: (h, w) of the mask's image; a mask of another size is an error.

    Raises:
        EdgesegError: Unreadable mask, ids outside the classes, or a size that differs from the image.
    """
    from edgeseg.data.readers import invalid_ids, invalid_ids_message, read_mask
    from edgeseg.preprocess import resize_mask

    ids = read_mask(mask_path, encoding)
    enc = encoding or MaskEncoding()
    bad = invalid_ids(ids, n_classes, enc) if n_classes is not None else {}
    if bad:  # said as what the model predicts: evaluate and compare have no --classes
        raise EdgesegError(f"{mask_path}: {invalid_ids_message(bad, n_classes, enc, model=True)}")
    if image_shape is not None and tuple(image_shape) != ids.shape:
        raise EdgesegError(f"{mask_path}: size {hw(*ids.shape[:2])} differs from its image's "
                           f"{hw(*image_shape[:2])}; masks must match pixel for pixel.")
    return resize_mask(ids, *shape)


def iter_images(pairs: Sequence[tuple[Path, Path]],
                batch_size: int = 8) -> Iterator[tuple[list[np.ndarray], list[Path]]]:
    """(RGB uint8 images at their own size, their mask paths), ``batch_size`` at a time."""
    from edgeseg.data.readers import read_image

    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        yield [read_image(img) for img, _ in chunk], [mask for _, mask in chunk]


def iter_batches(pairs: Sequence[tuple[Path, Path]], cfg: ModelConfig, batch_size: int = 8,
                 encoding: Optional[MaskEncoding] = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(RGB uint8 at input size, class ids at output size) batches, via the shared readers."""
    from edgeseg.preprocess import resize_rgb

    for rgbs, masks in iter_images(pairs, batch_size):
        yield (np.stack([resize_rgb(r, cfg.height, cfg.width, cfg.preprocessing.interpolation)
                         for r in rgbs]),
               np.stack([truth_at(m, cfg.output_size, encoding, cfg.n_classes, r.shape[:2])
                         for r, m in zip(rgbs, masks)]))


def eval_pairs(data: Path) -> list[tuple[Path, Path]]:
    """The pairs to score: ``data/val`` when present, else all of ``data``."""
    from edgeseg.data.dataset import list_pairs

    data = Path(data)
    return list_pairs(data / "val" if (data / "val" / "images").is_dir() else data)


def check_eval_data(data: Path, n_classes: int, encoding: Optional[MaskEncoding] = None) -> None:
    """Stop on what ``data check`` finds wrong with the scored folder as a whole (0/255 masks
    read with 255 as 'ignore', no pairs), with its message and fix.

    Raises:
        EdgesegError: ``check_dataset`` reports an error about the whole folder.
    """
    from edgeseg.data.check import check_dataset

    data = Path(data)
    folder = data / "val" if (data / "val" / "images").is_dir() else data
    result = check_dataset(folder, n_classes, encoding=encoding)
    fatal = [i for i in result.errors if i.path.is_dir()]
    if fatal:
        raise EdgesegError(f"{fatal[0].path}: {fatal[0].message}")


def require_scored(acc: MetricAccumulator, data: Path) -> None:
    """Raise when every truth pixel was the ignore index (the metrics would be NaN).

    Raises:
        EdgesegError: No labelled pixels were scored.
    """
    if not acc.cm.sum():
        raise EdgesegError(f"{data}: no labelled pixels to score: every mask pixel is the ignore "
                           f"index {acc.ignore_index}; check the masks or pass --ignore-index.")


def n_classes_of(predictor: Any) -> int:
    """Classes to score (an in-graph argmax model without labels can't say).

    Raises:
        EdgesegError: When the model does not say how many classes it has.
    """
    n = len(predictor.labels)
    if n < 2:
        raise EdgesegError(f"{predictor.path} does not say how many classes it predicts (an "
                           "in-graph argmax without labels); add its labels.txt to the sidecar "
                           "or convert it with edgeseg convert.")
    return n


def evaluate(model_path: str | Path, data: str | Path, limit: Optional[int] = None,
             progress: Optional[Callable[[int, int], None]] = None,
             threads: Optional[int] = None,
             output: Optional[int] = None,
             encoding: Optional[MaskEncoding] = None, delegate: Optional[str] = None,
             fallback: bool = False) -> tuple[SegMetrics, Any]:
    """Per-class IoU, mIoU, fwIoU, pixel accuracy and confusion of a model on ``data``.

    ``.tflite`` files run through ``edgeseg.runtime.Segmenter`` (any segmentation
    model: any input size, sigmoid, flattened or argmax outputs); ``.keras`` through
    Keras with the same preprocessing. Ground truth is compared at the model's output
    resolution: masks are resized there with centre-sampled nearest neighbour.

    Args:
        model_path: A .keras or .tflite model.
        data: Dataset folder (its ``val/`` split when present).
        limit: Score only the first N images.
        progress: Called as ``progress(done, total)``.
        threads: CPU threads for a .tflite.
        output: Which output of a .tflite holds the segmentation.
        encoding: How masks are read; pixels of its ignore index (default 255) are left
            out of every metric.
        delegate: Where a .tflite runs (as :class:`edgeseg.runtime.Segmenter`'s).
        fallback: Run on the CPU, with a warning, when the delegate can't be used.

    Returns:
        The metrics and the predictor (for its labels).

    Raises:
        EdgesegError: Unreadable model or data, or a model that doesn't state its classes.
    """
    from edgeseg.verify.predict import load_predictor

    predictor = load_predictor(model_path, threads, output, delegate=delegate, fallback=fallback)
    pairs = eval_pairs(Path(data))[:limit]
    n = n_classes_of(predictor)
    check_eval_data(Path(data), n, encoding)
    acc = MetricAccumulator(n, (encoding or MaskEncoding()).ignore_index)
    done = 0
    for rgbs, masks in iter_images(pairs):
        for (ids, _), mask, rgb in zip(predictor.predict(rgbs), masks, rgbs):
            acc.update(truth_at(mask, ids.shape, encoding, n, rgb.shape[:2]), ids)
        done += len(rgbs)
        if progress:
            progress(done, len(pairs))
    if not done:
        raise EdgesegError(f"{data} has no image/mask pairs to score.")
    require_scored(acc, Path(data))
    return acc.result(), predictor
