"""PQ/SQ/RQ against cases worked out by hand (Kirillov et al., CVPR 2019)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeseg.runtime.components import component_ids, components
from edgeseg.verify.panoptic import PanopticAccumulator, panoptic_quality


def row(*runs: tuple[int, int]) -> np.ndarray:
    """A 1×N map from (value, length) runs."""
    return np.concatenate([np.full(n, v, np.int32) for v, n in runs])[None, :]


def scores(truth: np.ndarray, pred: np.ndarray, n: int = 3, things=(1, 2)):
    return panoptic_quality([truth], [pred], n, things)


def test_perfect_prediction_scores_one() -> None:
    t = row((1001, 10), (1002, 10), (0, 10))
    r = scores(t, t.copy())
    assert (r.pq, r.sq, r.rq) == (1.0, 1.0, 1.0)
    assert r.per_class[1]["tp"] == 2


def test_unmatched_prediction_is_a_false_positive() -> None:
    # Object 0-9 found exactly; a second predicted object (20-24) matches nothing.
    # Class 1: TP 1 (IoU 1), FP 1 -> PQ = 1 / (1 + 0.5) = 2/3, SQ 1, RQ 2/3.
    # Background: truth 10-29 (20 px), prediction 10-19 + 25-29 (15 px) -> IoU 15/20 = 0.75.
    t = row((1001, 10), (0, 20))
    p = row((1001, 10), (0, 10), (1002, 5), (0, 5))
    r = scores(t, p)
    assert r.per_class[1] == pytest.approx({"pq": 2 / 3, "sq": 1.0, "rq": 2 / 3, "tp": 1, "fp": 1,
                                            "fn": 0, "thing": True})
    assert r.per_class[0]["pq"] == pytest.approx(0.75)
    assert r.pq_things == pytest.approx(2 / 3)
    assert r.pq_stuff == pytest.approx(0.75)
    assert r.pq == pytest.approx((2 / 3 + 0.75) / 2)


def test_split_object_one_piece_matches_the_other_is_a_false_positive() -> None:
    # Truth: one 20 px object. Prediction splits it 12 + 8: IoU 12/20 = 0.6 (> 0.5: TP),
    # 8/20 = 0.4 (FP). PQ = 0.6 / (1 + 0.5) = 0.4, SQ 0.6, RQ 2/3.
    t = row((1001, 20), (0, 10))
    p = row((1001, 12), (1002, 8), (0, 10))
    r = scores(t, p)
    assert r.per_class[1]["pq"] == pytest.approx(0.4)
    assert r.per_class[1]["sq"] == pytest.approx(0.6)
    assert r.per_class[1]["rq"] == pytest.approx(2 / 3)
    assert r.pq == pytest.approx((0.4 + 1.0) / 2)


def test_even_split_matches_nothing() -> None:
    # 10 + 10 of 20: IoU exactly 0.5 is not a match (IoU > 0.5): TP 0, FP 2, FN 1 -> PQ 0.
    r = scores(row((1001, 20), (0, 10)), row((1001, 10), (1002, 10), (0, 10)))
    assert r.per_class[1]["pq"] == 0.0
    assert (r.per_class[1]["fp"], r.per_class[1]["fn"]) == (2, 1)


def test_merged_touching_objects_score_zero() -> None:
    # What connected components do to two touching objects: IoU 0.5 with each -> no match.
    t = row((1001, 10), (1002, 10), (0, 10))
    p = row((1001, 20), (0, 10))
    r = scores(t, p)
    assert r.per_class[1] == pytest.approx({"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 1,
                                            "fn": 2, "thing": True})


def test_wrong_class_counts_against_both_classes() -> None:
    r = scores(row((1001, 10), (0, 10)), row((2001, 10), (0, 10)))
    assert (r.per_class[1]["fn"], r.per_class[2]["fp"]) == (1, 1)
    assert r.pq_things == 0.0


def test_ignored_pixels_leave_iou_and_false_positives() -> None:
    # 10-19 is ignore (255). The prediction's object reaches 4 px into it: its area counts
    # 10 px, IoU 1. A predicted object lying wholly on ignored pixels is not an FP.
    t = row((1001, 10), (255, 10), (0, 10))
    p = row((1001, 14), (1002, 6), (0, 10))
    r = scores(t, p)
    assert r.per_class[1] == pytest.approx({"pq": 1.0, "sq": 1.0, "rq": 1.0, "tp": 1, "fp": 0,
                                            "fn": 0, "thing": True})


def test_classes_that_never_occur_are_left_out_of_the_mean() -> None:
    t = row((1001, 10), (0, 10))
    r = scores(t, t.copy(), n=5, things=(1, 2, 3, 4))
    assert set(r.per_class) == {0, 1}
    assert r.pq == 1.0
    empty = PanopticAccumulator(3, (1,)).result()
    assert math.isnan(empty.pq)


def test_accumulates_over_images() -> None:
    acc = PanopticAccumulator(2, (1,))
    acc.update(row((1001, 10), (0, 10)), row((1001, 10), (0, 10)))  # TP IoU 1
    acc.update(row((1001, 10), (0, 10)), row((0, 20)))  # FN
    r = acc.result()
    assert r.per_class[1]["pq"] == pytest.approx(1 / 1.5)


def test_components_merge_touching_objects_and_split_apart_ones() -> None:
    classes = np.zeros((4, 12), np.uint8)
    classes[:, 0:4] = 1  # two touching class-1 objects read as one
    classes[:, 8:10] = 1  # a separate class-1 object
    classes[:, 10:12] = 2
    enc = components(classes, (1, 2))
    assert set(np.unique(enc[:, 0:4])) == {1001}
    assert set(np.unique(enc[:, 8:10])) == {1002}
    assert set(np.unique(enc[:, 10:12])) == {2001}
    ids = component_ids(classes, (1, 2))
    assert len(np.unique(ids[ids > 0])) == 3
