"""tf.data pipeline for the instance task: images with class, centre-heatmap and offset targets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.config import ModelConfig
from edgeseg.data.instances import INSTANCES_DIR, THING_OFFSET, read_instances
from edgeseg.data.readers import MaskEncoding, read_image, read_mask
from edgeseg.errors import EdgesegError
from edgeseg.sizes import hw

SIGMA_FULL = 8.0  # Panoptic-DeepLab's centre Gaussian, in input pixels (scaled to the output)


def instance_path(mask_path: Path) -> Path:
    """``DIR/annotations/NAME.png`` -> ``DIR/instances/NAME.png``."""
    mask_path = Path(mask_path)
    return mask_path.parent.parent / INSTANCES_DIR / mask_path.name


def read_panoptic(mask_path: Path, encoding: MaskEncoding, n_classes: int) -> np.ndarray:
    """H×W int32: ``class * 1000 + k`` on objects (from instances/), the class id elsewhere
    (from annotations/, so its ignore index and encoding hold).

    Raises:
        EdgesegError: Either file unreadable, missing, or of another size.
    """
    classes = read_mask(mask_path, encoding, n_classes)
    path = instance_path(mask_path)
    if not path.is_file():
        raise EdgesegError(f"{path}: no instance mask for {Path(mask_path).name}; the instance task "
                           "needs instances/NAME.png beside annotations/ (edgeseg data check).")
    inst = read_instances(path)
    if inst.shape != classes.shape:
        raise EdgesegError(f"{path}: size {hw(*inst.shape[:2])} differs from its class "
                           f"mask's {hw(*classes.shape[:2])}.")
    return np.where(inst >= THING_OFFSET, inst, classes).astype(np.int32)


def instance_targets(pan: np.ndarray, n_classes: int, things: Sequence[int],
                     class_weights: Optional[np.ndarray], sigma: float) -> tuple[np.ndarray, ...]:
    """Training targets from an h×w Cityscapes-encoded map at the output size.

    Args:
        pan: h×w int32 map (ignore index kept where the class mask has it).
        n_classes: Classes; ids at or above it are ignored (weight 0).
        things: Thing class ids; objects of other classes get no centre.
        class_weights: Per-class loss weight (None: 1).
        sigma: Centre Gaussian σ in output pixels.

    Returns:
        (h×w×2 [class id, weight], h×w×1 centre heatmap (max of the objects' Gaussians
        at their centres of mass), h×w×3 [dy, dx, thing mask]: offsets to the centre
        in output pixels), all float32.
    """
    h, w = pan.shape
    classes = np.where(pan >= THING_OFFSET, pan // THING_OFFSET, pan)
    valid = classes < n_classes
    ids = np.where(valid, classes, 0)
    weights = (class_weights[ids] if class_weights is not None else np.ones((h, w))) * valid
    seg = np.stack([ids, weights], -1).astype(np.float32)
    heat = np.zeros((h, w, 1), np.float32)
    offset = np.zeros((h, w, 3), np.float32)
    obj = (pan >= THING_OFFSET) & np.isin(classes, list(things))
    if obj.any():
        keys, inverse = np.unique(pan[obj], return_inverse=True)
        ys, xs = np.nonzero(obj)
        n = np.bincount(inverse).astype(np.float64)
        cy = np.bincount(inverse, ys) / n
        cx = np.bincount(inverse, xs) / n
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        g = np.exp(-((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2)
                   / (2 * sigma**2))
        heat[..., 0] = g.max(0)
        offset[ys, xs, 0] = cy[inverse] - ys
        offset[ys, xs, 1] = cx[inverse] - xs
        offset[ys, xs, 2] = 1.0
    return seg, heat, offset


def make_instance_dataset(pairs: Sequence[tuple[Path, Path]], cfg: ModelConfig, batch_size: int,
                          training: bool, augment: Any = None, seed: int = 0,
                          class_weights: Optional[np.ndarray] = None,
                          encoding: Optional[MaskEncoding] = None) -> Any:
    """Batched (normalized image, (class targets, centre heatmap, offsets)) for training, or
    (normalized image, h×w int32 Cityscapes-encoded map at the output size) for validation
    (``class * 1000 + k`` on objects, the class id elsewhere: mIoU and PQ are scored from it).

    Augmentation is the semantic pipeline's (flip, crop, brightness, contrast), applied to
    the instance map with nearest sampling before the targets are made at the output size.
    """
    import tensorflow as tf

    from edgeseg.data.pipeline import Augment, _augment
    from edgeseg.preprocess import normalize, resize_mask, resize_rgb

    enc = encoding or MaskEncoding()
    h, w = cfg.height, cfg.width
    oh, ow = cfg.output_size
    flat = cfg.head == "flat"
    sigma = SIGMA_FULL * oh / h
    things = tuple(cfg.things)

    def load_np(a: bytes, b: bytes) -> tuple[np.ndarray, np.ndarray]:
        img_file, mask_file = Path(a.decode()), Path(b.decode())
        rgb, pan = read_image(img_file), read_panoptic(mask_file, enc, cfg.n_classes)
        if rgb.shape[:2] != pan.shape:
            raise EdgesegError(f"{mask_file}: size {hw(*pan.shape[:2])} differs from its "
                               f"image's {hw(*rgb.shape[:2])}; masks must match pixel for pixel.")
        return resize_rgb(rgb, h, w), resize_mask(pan, h, w)

    def load(i: Any, m: Any) -> tuple[Any, Any]:
        img, pan = tf.numpy_function(load_np, [i, m], [tf.uint8, tf.int32])
        return tf.reshape(img, (h, w, 3)), tf.reshape(pan, (h, w, 1))

    ds = tf.data.Dataset.from_tensor_slices(([str(p) for p, _ in pairs], [str(m) for _, m in pairs]))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if training:
        ds = ds.shuffle(min(len(pairs), 2048), seed=seed, reshuffle_each_iteration=True)
        aug = augment or Augment()
        ds = ds.map(lambda i, m: _augment(i, m, aug, h, w), num_parallel_calls=tf.data.AUTOTUNE)

    def targets_np(m: np.ndarray) -> tuple[np.ndarray, ...]:
        return instance_targets(resize_mask(m[..., 0], oh, ow), cfg.n_classes, things,
                                class_weights, sigma)

    def finish(img: Any, pan: Any) -> tuple[Any, ...]:
        x = normalize(img, cfg.mean, cfg.std)
        if not training:
            # The Cityscapes-encoded map itself: validation scores PQ as well as mIoU.
            y = tf.numpy_function(lambda m: resize_mask(m[..., 0], oh, ow), [pan], tf.int32)
            return x, tf.reshape(y, (oh, ow))
        seg, heat, off = tf.numpy_function(targets_np, [pan], [tf.float32] * 3)
        seg = tf.reshape(seg, (oh * ow, 2)) if flat else tf.reshape(seg, (oh, ow, 2))
        return x, (seg, tf.reshape(heat, (oh, ow, 1)), tf.reshape(off, (oh, ow, 3)))

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=training and len(pairs) >= batch_size).prefetch(
        tf.data.AUTOTUNE)


def thing_classes(roots: Sequence[Path], encoding: MaskEncoding) -> tuple[int, ...]:
    """Class ids that hold objects in the datasets' instances/ (as ``data check`` lists them).

    Raises:
        EdgesegError: No instances/ folder, or no object in it.
    """
    from edgeseg.data.check import dataset_folders
    from edgeseg.data.instances import check_instances

    folders = tuple(f for r in roots for f in dataset_folders(r))
    found = check_instances(folders, lambda p: read_mask(p, encoding), encoding.ignore_index)
    if found is None:
        raise EdgesegError(f"{roots[0]} has no instances/ folder; --task instance needs "
                           "instances/NAME.png (16-bit, class_id*1000+k) beside annotations/.")
    if found.problems:
        path, why = found.problems[0]
        raise EdgesegError(f"{path}: {why} (edgeseg data check lists all).")
    if not found.things:
        raise EdgesegError(f"{roots[0]}/instances holds no objects (values class_id*1000+k).")
    return found.things
