"""Panoptic-DeepLab grouping in numpy: centre NMS by max-pooling, pixels to the nearest centre."""

from __future__ import annotations

import numpy as np

from edgeseg.runtime.instances import (
    describe,
    encode,
    find_centres,
    group,
    max_pool,
    thing_lookup,
)


def gaussian(h: int, w: int, cy: float, cx: float, sigma: float = 2.0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)).astype(np.float32)


def two_touching_boxes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two class-1 boxes side by side (x 2-9 and 10-17, y 4-11) and their true centre offsets."""
    h, w = 16, 24
    classes = np.zeros((h, w), np.uint8)
    classes[4:12, 2:18] = 1
    heat = np.maximum(gaussian(h, w, 7, 5), gaussian(h, w, 7, 13))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx = np.where(xx < 10, 5, 13)
    offsets = np.stack([7 - yy, cx - xx], -1)
    return classes, heat, offsets


def test_max_pool_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(66)
    heat = rng.random((9, 11)).astype(np.float32)
    out = max_pool(heat, 3)
    for y in range(9):
        for x in range(11):
            assert out[y, x] == heat[max(0, y - 1):y + 2, max(0, x - 1):x + 2].max()


def test_find_centres_keeps_local_maxima_above_threshold_strongest_first() -> None:
    heat = gaussian(20, 20, 5, 5) + 0.5 * gaussian(20, 20, 14, 14)
    heat[0, 19] = 0.05  # a maximum below the threshold
    c = find_centres(heat, threshold=0.1, kernel=5)
    assert c.tolist() == [[5, 5], [14, 14]]
    assert find_centres(heat, threshold=0.1, kernel=5, top_k=1).tolist() == [[5, 5]]


def test_a_plateau_of_equal_maxima_is_one_centre() -> None:
    heat = np.zeros((12, 12), np.float32)
    heat[4:6, 4:6] = 0.8  # a 2×2 peak, as int8 quantization makes them
    heat[9, 9] = 0.6
    assert find_centres(heat, 0.1, 5).tolist() == [[4, 4], [9, 9]]


def test_group_separates_touching_objects_of_one_class() -> None:
    classes, heat, offsets = two_touching_boxes()
    centres = find_centres(heat, 0.1, 3)
    ids = group(classes, offsets, centres, thing_lookup([1], 2))
    left, right = np.unique(ids[4:12, 2:10]), np.unique(ids[4:12, 10:18])
    assert len(left) == 1 and len(right) == 1 and left[0] != right[0] and left[0] > 0
    assert (ids[classes == 0] == 0).all()
    instances, id_class = describe(ids, classes, 2, centres, (32, 48))  # frame at twice the size
    assert sorted(i.area for i in instances) == [256, 256]  # 64 px each at 16×24, ×4
    a = next(i for i in instances if i.id == left[0])
    assert a.bbox == (4, 8, 20, 24) and a.class_id == 1
    assert a.centre == (11.0, 15.0)  # output pixel (5, 7), its centre ×2
    pan = encode(classes, ids, id_class)
    assert set(np.unique(pan)) == {0, 1000 + int(left[0]), 1000 + int(right[0])}


def test_no_centres_means_no_instances() -> None:
    classes, heat, offsets = two_touching_boxes()
    ids = group(classes, offsets, find_centres(heat * 0, 0.1, 3), thing_lookup([1], 2))
    assert not ids.any()
    assert describe(ids, classes, 2, np.zeros((0, 2)), (16, 24))[0] == []


def test_instance_class_is_the_majority_of_its_pixels() -> None:
    classes, heat, offsets = two_touching_boxes()
    classes[4:6, 2:10] = 2  # 16 of the left box's 64 pixels say class 2
    centres = find_centres(heat, 0.1, 3)
    ids = group(classes, offsets, centres, thing_lookup([1, 2], 3))
    conf = np.full(classes.shape, 0.5, np.float32)
    instances, _ = describe(ids, classes, 3, centres, (16, 24), confidence=conf)
    assert [i.class_id for i in instances] == [1, 1]
    assert all(abs(i.confidence - 0.5) < 1e-6 for i in instances)


def test_class_mask_takes_each_instances_majority_class() -> None:
    from edgeseg.runtime.instances import vote_classes

    classes, heat, offsets = two_touching_boxes()
    classes[4:6, 2:10] = 2  # 16 of the left box's 64 pixels say class 2
    before = classes.copy()
    centres = find_centres(heat, 0.1, 3)
    ids = group(classes, offsets, centres, thing_lookup([1, 2], 3))
    _, id_class = describe(ids, classes, 3, centres, (16, 24))
    voted = vote_classes(classes, ids, id_class)
    assert (voted[4:12, 2:18] == 1).all()  # both boxes all class 1
    np.testing.assert_array_equal(classes, before)  # the input is left as it was
    assert (voted[ids == 0] == classes[ids == 0]).all() and (ids == 0).any()  # background kept
