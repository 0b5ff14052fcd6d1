"""Stable instance ids across frames, and the instance reader on quantized heads."""

from __future__ import annotations

import numpy as np

from edgeseg.runtime.instances import InstanceReader, describe
from edgeseg.runtime.tracking import IoUTracker, mask_ious


def frame(boxes: list[tuple[int, int, int]], h: int = 20, w: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """ids 1..K and class ids for boxes given as (x, width, class)."""
    ids = np.zeros((h, w), np.int32)
    classes = np.zeros((h, w), np.uint8)
    for k, (x, bw, c) in enumerate(boxes, start=1):
        ids[5:15, x:x + bw] = k
        classes[5:15, x:x + bw] = c
    return ids, classes


def track(tracker: IoUTracker, boxes: list[tuple[int, int, int]]) -> dict[int, int]:
    """Tracked id of each box (by its x)."""
    ids, classes = frame(boxes)
    insts, _ = describe(ids, classes, 3, np.zeros((0, 2)), ids.shape)
    out, tracked = tracker.update(ids, insts)
    assert sorted(i.id for i in tracked) == sorted(int(v) for v in np.unique(out) if v)
    return {x: int(out[10, x]) for x, _, _ in boxes}


def test_mask_ious_of_overlapping_pairs() -> None:
    a, _ = frame([(0, 10, 1)])
    b, _ = frame([(5, 10, 1)])
    pa, pb, iou = mask_ious(a, b)
    assert (pa.tolist(), pb.tolist()) == ([1], [1])
    assert iou[0] == 50 / 150  # 5 of 10 columns overlap: 50 px of 150


def test_ids_follow_moving_touching_objects_even_when_detection_order_changes() -> None:
    t = IoUTracker()
    first = track(t, [(2, 8, 1), (10, 8, 1)])  # two touching objects of one class
    # Next frame: both moved right by 2 px and the detector lists them in the other order.
    second = track(t, [(12, 8, 1), (4, 8, 1)])
    assert second[4] == first[2] and second[12] == first[10]
    assert len(set(first.values())) == 2


def test_new_objects_and_class_changes_get_new_ids_never_reused() -> None:
    t = IoUTracker(max_age=0)  # previous frame only
    first = track(t, [(2, 8, 1)])
    second = track(t, [(2, 8, 2), (25, 8, 1)])  # same place, other class; a new object
    assert second[2] not in first.values() and second[25] not in first.values()
    third = track(t, [(2, 8, 1)])
    assert third[2] not in set(first.values()) | set(second.values())


class FakeInterpreter:
    """Output tensors as uint8 with scale/zero point, as an int8 model returns them."""

    def __init__(self, heat: np.ndarray, offsets: np.ndarray) -> None:
        self.heat_scale, self.off_scale = 1 / 255, 0.25
        self.tensors = {
            5: np.round(heat / self.heat_scale).astype(np.uint8)[None, ..., None],
            6: np.clip(np.round(offsets / self.off_scale) + 128, 0, 255).astype(np.uint8)[None],
        }

    def get_output_details(self) -> list[dict]:
        return [{"index": 4, "quantization": (1 / 256, 0)},
                {"index": 5, "quantization": (self.heat_scale, 0)},
                {"index": 6, "quantization": (self.off_scale, 128)}]

    def tensor(self, index: int):
        return lambda: self.tensors[index]


def test_reader_dequantizes_heads_and_separates_touching_objects() -> None:
    h, w = 16, 24
    classes = np.zeros((h, w), np.uint8)
    classes[4:12, 2:18] = 1
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    heat = np.maximum(np.exp(-((yy - 7) ** 2 + (xx - 5) ** 2) / 8), np.exp(-((yy - 7) ** 2 + (xx - 13) ** 2) / 8))
    cx = np.where(xx < 10, 5, 13)
    offsets = np.stack([7 - yy, cx - xx], -1)
    layout = {"heads": {"semantic": 0, "center": 1, "offset": 2}, "things": [1]}
    reader = InstanceReader(FakeInterpreter(heat, offsets), layout, 2, [1], kernel=3,
                            tracker=IoUTracker())
    ids, instances, id_class = reader.read(classes, (h, w))
    assert len(instances) == 2
    assert len(np.unique(ids[4:12, 2:10])) == 1 and len(np.unique(ids[4:12, 10:18])) == 1
    assert ids[6, 4] != ids[6, 14]
    assert all(id_class[i.id] == 1 for i in instances)
    assert all(abs(i.confidence - 1.0) < 0.01 for i in instances)  # the centre's heat
    again, instances2, _ = reader.read(classes, (h, w))
    assert (again == ids).all() and [i.id for i in instances2] == [i.id for i in instances]


def test_an_instance_without_any_score_logs_null_confidence() -> None:
    from edgeseg.runtime.instances import Instance

    d = Instance(3, 1, 10, (0, 0, 2, 2), (1.0, 1.0), float("nan")).to_dict(["bg", "box"])
    assert d["confidence"] is None and d["class"] == "box"
    assert Instance(3, 1, 10, (0, 0, 2, 2), (1.0, 1.0), 0.87654).to_dict()["confidence"] == 0.8765


def test_an_object_missed_for_a_few_frames_gets_its_id_back() -> None:
    t = IoUTracker(max_age=3)
    first = track(t, [(2, 8, 1), (20, 8, 1)])
    track(t, [(20, 8, 1)])  # the left object is missed (a detection gap)
    track(t, [(21, 8, 1)])
    back = track(t, [(3, 8, 1), (22, 8, 1)])  # it is found again, 1 px further
    assert back[3] == first[2] and back[22] == first[20]
    gone = IoUTracker(max_age=1)
    first = track(gone, [(2, 8, 1)])
    track(gone, [])
    track(gone, [])
    assert track(gone, [(2, 8, 1)])[2] != first[2]  # missed longer than max_age: a new object
