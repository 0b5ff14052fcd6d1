"""tf.data input pipeline: parallel decode, aligned augmentation, shared normalization."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.config import ModelConfig
from edgeseg.data.readers import MaskEncoding, read_image, read_mask
from edgeseg.errors import EdgesegError
from edgeseg.preprocess import normalize, resize_mask, resize_rgb
from edgeseg.sizes import hw


@dataclass(frozen=True)
class Augment:
    """Augmentations that keep image and mask aligned."""

    flip: bool = True
    min_crop: float = 0.6  # random crop of this fraction of each side or more, resized back
    brightness: float = 0.2  # ± fraction of full scale
    contrast: float = 0.3  # contrast factor in [1-c, 1+c]


def _load_pair(img_path: bytes, mask_path: bytes, h: int, w: int, n_classes: int,
               encoding: MaskEncoding) -> tuple[np.ndarray, np.ndarray]:
    img_file, mask_file = Path(img_path.decode()), Path(mask_path.decode())
    rgb = read_image(img_file)
    ids = read_mask(mask_file, encoding, n_classes)
    if rgb.shape[:2] != ids.shape:
        # Resizing each to the model size would train on misaligned labels.
        raise EdgesegError(f"{mask_file}: size {hw(*ids.shape[:2])} differs from its image's "
                           f"{hw(*rgb.shape[:2])} ({img_file.name}); masks must match pixel for pixel.")
    return resize_rgb(rgb, h, w), resize_mask(ids, h, w)


@contextlib.contextmanager
def pipeline_errors() -> Iterator[None]:
    """Turn a failure inside tf.data (a file that cannot be read mid-training) into one
    EdgesegError line naming the file, instead of a TensorFlow traceback."""
    try:
        yield
    except Exception as e:
        tf = sys.modules.get("tensorflow")
        if tf is None or not isinstance(e, tf.errors.OpError):
            raise
        found = re.search(r"EdgesegError: ([^\n]*)", e.message)
        if found:
            raise EdgesegError(found.group(1).strip()) from None
        first = next((ln for ln in e.message.splitlines() if ln.strip()), type(e).__name__)
        raise EdgesegError(f"the input pipeline failed: {first.strip()}; run `edgeseg data check`.") from None


def _augment(img: Any, mask: Any, aug: Augment, h: int, w: int) -> tuple[Any, Any]:
    import tensorflow as tf

    if aug.flip:
        flip = tf.random.uniform(()) < 0.5
        img = tf.cond(flip, lambda: tf.image.flip_left_right(img), lambda: img)
        mask = tf.cond(flip, lambda: tf.image.flip_left_right(mask), lambda: mask)
    if aug.min_crop < 1.0:
        scale = tf.random.uniform((), aug.min_crop, 1.0)
        ch = tf.cast(tf.cast(h, tf.float32) * scale, tf.int32)
        cw = tf.cast(tf.cast(w, tf.float32) * scale, tf.int32)
        y0 = tf.random.uniform((), 0, h - ch + 1, tf.int32)
        x0 = tf.random.uniform((), 0, w - cw + 1, tf.int32)
        img = tf.image.resize(img[y0:y0 + ch, x0:x0 + cw], (h, w), "bilinear")
        mask = tf.image.resize(mask[y0:y0 + ch, x0:x0 + cw], (h, w), "nearest")
    img = tf.cast(img, tf.float32)
    if aug.contrast:
        img = tf.image.random_contrast(img, 1 - aug.contrast, 1 + aug.contrast)
    if aug.brightness:
        img = img + tf.random.uniform((), -aug.brightness, aug.brightness) * 255.0
    return tf.clip_by_value(img, 0.0, 255.0), mask


def class_frequencies(pairs: Sequence[tuple[Path, Path]], n_classes: int,
                      limit: int = 400, encoding: Optional[MaskEncoding] = None) -> np.ndarray:
    """Pixel share of each class over (up to ``limit``) training masks (ignored pixels left out)."""
    counts = np.zeros(n_classes, np.float64)
    step = max(1, len(pairs) // limit)
    for _, mask_path in pairs[::step]:
        ids = read_mask(mask_path, encoding, n_classes)
        counts += np.bincount(ids.ravel(), minlength=n_classes)[:n_classes]
    return counts / max(counts.sum(), 1.0)


def median_frequency_weights(freq: np.ndarray, cap: float = 10.0) -> np.ndarray:
    """SegNet's median frequency balancing: weight_c = median(freq) / freq_c (capped).

    Rare classes weigh more, so training leaves the 'everything is background'
    plateau early instead of after thousands of steps.
    """
    present = freq[freq > 0]
    med = np.median(present) if present.size else 1.0
    with np.errstate(divide="ignore"):
        w = np.where(freq > 0, med / freq, 1.0)
    return np.clip(w, 1.0 / cap, cap).astype(np.float32)


def make_dataset(pairs: Sequence[tuple[Path, Path]], cfg: ModelConfig, batch_size: int,
                 training: bool, augment: Augment | None = None, seed: int = 0,
                 class_weights: np.ndarray | None = None,
                 encoding: Optional[MaskEncoding] = None, cache: bool = True,
                 steps: Optional[int] = None) -> Any:
    """A batched ``tf.data.Dataset`` of (normalized image, class ids at output size[, weights]).

    Images are decoded by the same readers as evaluation and calibration, in
    parallel, cached after decoding when ``cache`` (else streamed: only file names
    are shuffled, and a pair is read when it is needed, so memory does not grow with
    the dataset), augmented (training only), normalized by
    :func:`edgeseg.preprocess.normalize`, and the masks are resized with
    nearest-neighbour to the model's output size (half the input). Training
    batches carry per-pixel weights: the class weight, 0 on the ignore index
    (so ignored pixels add nothing to the loss). Validation batches keep the
    ignore index in the labels for the metrics to skip. Run the training loop
    under :func:`pipeline_errors`.

    With ``steps`` (tf.distribute, where every worker must run the same number of
    steps) each pass over ``pairs`` yields exactly ``steps`` full batches and the
    dataset repeats: a pass is an epoch, no pair twice in it. ``pairs`` must hold at
    least ``steps * batch_size``.
    """
    enc = encoding or MaskEncoding()
    import tensorflow as tf

    h, w = cfg.height, cfg.width
    oh, ow = cfg.output_size
    imgs = [str(p) for p, _ in pairs]
    masks = [str(m) for _, m in pairs]
    ds = tf.data.Dataset.from_tensor_slices((imgs, masks))

    def load(i: Any, m: Any) -> tuple[Any, Any]:
        img, mask = tf.numpy_function(lambda a, b: _load_pair(a, b, h, w, cfg.n_classes, enc), [i, m],
                                      [tf.uint8, tf.uint8])
        img.set_shape((h, w, 3))
        mask = tf.reshape(mask, (h, w, 1))
        return img, mask

    shuffle = training and len(pairs) > 1
    if cache:
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()
        if shuffle:
            ds = ds.shuffle(min(len(pairs), 2048), seed=seed, reshuffle_each_iteration=True)
    else:  # names are shuffled (all of them: a few bytes each), pairs decoded as they are needed
        if shuffle:
            ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        aug = augment or Augment()
        ds = ds.map(lambda i, m: _augment(i, m, aug, h, w), num_parallel_calls=tf.data.AUTOTUNE)

    flat = cfg.head == "flat"

    weights = tf.constant(np.ones(cfg.n_classes, np.float32) if class_weights is None
                          else class_weights, tf.float32)

    def finish(img: Any, mask: Any) -> tuple[Any, ...]:
        x = normalize(img, cfg.mean, cfg.std)
        # The labels evaluation uses too: the same function, the same sampling.
        y = tf.numpy_function(lambda m: resize_mask(m[..., 0], oh, ow), [mask], tf.uint8)
        y = tf.cast(tf.reshape(y, (oh * ow,)) if flat else tf.reshape(y, (oh, ow)), tf.int32)
        if not training:
            return x, y
        # The reader let through only ids < n_classes and the ignore index: the latter weighs 0.
        valid = tf.cast(y < cfg.n_classes, tf.float32)
        w = tf.gather(weights, tf.minimum(y, cfg.n_classes - 1)) * valid
        return x, tf.minimum(y, cfg.n_classes - 1), w

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    if steps is not None:
        if len(pairs) < steps * batch_size:
            raise EdgesegError(f"{len(pairs)} pairs cannot fill {steps} batches of {batch_size}.")
        return ds.batch(batch_size, drop_remainder=True).take(steps).repeat().prefetch(tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=training and len(pairs) >= batch_size).prefetch(
        tf.data.AUTOTUNE)


CACHE_BYTES = 1 << 30  # decoded training sets up to 1 GiB stay in memory; larger ones stream from disk


def decoded_bytes(n_pairs: int, cfg: ModelConfig) -> int:
    """Memory ``n_pairs`` take decoded at the model's size (uint8 RGB + uint8 mask)."""
    return n_pairs * cfg.height * cfg.width * 4
