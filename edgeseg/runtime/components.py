"""Instances of a semantic model as connected components of its thing classes (OpenCV)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from edgeseg.runtime.instances import THING_OFFSET


def component_ids(classes: np.ndarray, things: Iterable[int]) -> np.ndarray:
    """Connected components (8-connected) of each thing class, numbered 1..K over the image.

    The baseline a semantic-only model offers: touching objects of one class merge
    into one instance.

    Args:
        classes: h×w class ids (uint8).
        things: Class ids treated as things.

    Returns:
        h×w int32 instance ids (0 on stuff and background).
    """
    ids = np.zeros(classes.shape, np.int32)
    k = 0
    for _, n, lab, sel in _class_components(classes, things):
        ids[sel] = lab[sel] + k
        k += n - 1
    return ids


def components(classes: np.ndarray, things: Iterable[int]) -> np.ndarray:
    """Cityscapes-encoded connected components: ``class * 1000 + k`` (k per class), stuff as its class id."""
    out = classes.astype(np.int32).copy()
    for c, _, lab, sel in _class_components(classes, things):
        out[sel] = c * THING_OFFSET + np.minimum(lab[sel], THING_OFFSET - 1)
    return out


def _class_components(classes: np.ndarray, things: Iterable[int]
                      ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Per thing class present: (class, labels incl. background, 8-connected labels, their mask)."""
    for c in things:
        m = (classes == c).astype(np.uint8)
        if not m.any():
            continue
        n, lab = cv2.connectedComponents(m, connectivity=8)
        yield c, n, lab, lab > 0
