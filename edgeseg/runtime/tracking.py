"""Instance ids stable across frames: greedy mask-IoU matching to the previous frame's instances."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeseg.runtime.instances import Instance


def mask_ious(prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every (previous id, current id) pair that overlaps.

    Args:
        prev: h×w int ids of the previous frame (0: none).
        cur: h×w int ids of this frame, same size.

    Returns:
        (previous ids, current ids, IoUs) of the overlapping pairs, as 1-D arrays.
    """
    a, b = prev.ravel().astype(np.int64), cur.ravel().astype(np.int64)
    nb = int(b.max()) + 1 if b.size else 1
    both = (a > 0) & (b > 0)
    keys, inter = np.unique(a[both] * nb + b[both], return_counts=True)
    pa, pb = keys // nb, keys % nb
    area_a = np.bincount(a, minlength=int(a.max()) + 1 if a.size else 1)
    area_b = np.bincount(b, minlength=nb)
    iou = inter / (area_a[pa] + area_b[pb] - inter)
    return pa, pb, iou


class IoUTracker:
    """Gives each instance the id of the previous frame's instance it overlaps most.

    Pairs are taken greedily, highest mask IoU first, when the IoU is at least
    ``min_iou`` and the class is the same: first against the previous frame's
    instances, then (for those left) against objects missed for up to ``max_age``
    frames, by their last mask; an instance matching none gets a new id (never reused).

    Args:
        min_iou: Least IoU (at the model's output resolution) that carries an id over.
        max_age: Frames an unseen object keeps its id for (0: previous frame only).
    """

    def __init__(self, min_iou: float = 0.3, max_age: int = 5) -> None:
        self.min_iou, self.max_age = min_iou, max_age
        self.next_id = 1
        self._prev: np.ndarray | None = None
        self._prev_class: dict[int, int] = {}
        self._lost: dict[int, tuple[np.ndarray, int, int]] = {}  # id -> (mask, class, frames unseen)

    def update(self, ids: np.ndarray, instances: Sequence[Instance]) -> tuple[np.ndarray, list[Instance]]:
        """Renumber this frame's ids (h×w, output resolution) and instances to track ids."""
        k = int(ids.max()) if ids.size else 0
        lut = np.zeros(k + 1, np.int32)
        cls = {i.id: i.class_id for i in instances}
        taken: set[int] = set()
        if self._prev is not None and self._prev.shape == ids.shape and k:
            pa, pb, iou = mask_ious(self._prev, ids)
            for j in np.argsort(-iou, kind="stable"):
                p, c = int(pa[j]), int(pb[j])
                if iou[j] < self.min_iou:
                    break
                if lut[c] or p in taken or self._prev_class.get(p) != cls.get(c):
                    continue
                lut[c] = p
                taken.add(p)
        self._match_lost(ids, instances, lut, taken)
        for inst in instances:
            if not lut[inst.id]:
                lut[inst.id] = self.next_id
                self.next_id += 1
        out = lut[ids]
        tracked = [i._replace(id=int(lut[i.id])) for i in instances]
        self._remember_lost(out, {i.id for i in tracked})
        self._prev = out
        self._prev_class = {i.id: i.class_id for i in tracked}
        return out, tracked

    def _match_lost(self, ids: np.ndarray, instances: Sequence[Instance], lut: np.ndarray,
                    taken: set[int]) -> None:
        """Unmatched instances against recently missed objects' last masks (greedy by IoU)."""
        left = [i for i in instances if not lut[i.id]]
        lost = [(t, m, c) for t, (m, c, _) in self._lost.items() if t not in taken
                and m.shape == ids.shape]
        if not left or not lost:
            return
        pairs = []
        for inst in left:
            mask = ids == inst.id
            for t, m, c in lost:
                if c == inst.class_id:
                    inter = np.count_nonzero(mask & m)
                    if inter:
                        pairs.append((inter / np.count_nonzero(mask | m), inst.id, t))
        for iou, i, t in sorted(pairs, reverse=True):
            if iou < self.min_iou:
                break
            if not lut[i] and t not in taken:
                lut[i] = t
                taken.add(t)
                del self._lost[t]

    def _remember_lost(self, out: np.ndarray, seen: set[int]) -> None:
        """Objects of the previous frame not seen now are kept ``max_age`` frames by their last mask."""
        for t in list(self._lost):
            m, c, age = self._lost[t]
            if t in seen or age + 1 > self.max_age:
                del self._lost[t]
            else:
                self._lost[t] = (m, c, age + 1)
        if self._prev is not None and self.max_age:
            for t, c in self._prev_class.items():
                if t not in seen and t not in self._lost:
                    self._lost[t] = (self._prev == t, c, 1)

    def reset(self) -> None:
        """Forget the previous frames (a new clip)."""
        self._prev, self._prev_class, self._lost = None, {}, {}


class InstanceCounter:
    """Objects per class in the current frame, and distinct tracked ids seen per class so far.

    Args:
        labels: Class names.
        kind: How instances are made (``heads`` or ``components``), reported beside the counts.
    """

    def __init__(self, labels: Sequence[str], kind: str) -> None:
        self.labels, self.kind = list(labels), kind
        self.current: dict[str, int] = {}
        self._seen: dict[str, set[int]] = {}

    def _name(self, class_id: int) -> str:
        return self.labels[class_id] if class_id < len(self.labels) else f"class{class_id}"

    def update(self, instances: Sequence[Instance]) -> None:
        self.current = {}
        for i in instances:
            name = self._name(i.class_id)
            self.current[name] = self.current.get(name, 0) + 1
            self._seen.setdefault(name, set()).add(i.id)

    def snapshot(self) -> dict[str, object]:
        """``{"kind", "current": {class: n}, "seen": {class: distinct ids}}`` for ``/stats``."""
        return {"kind": self.kind, "current": dict(self.current),
                "seen": {k: len(v) for k, v in self._seen.items()}}
