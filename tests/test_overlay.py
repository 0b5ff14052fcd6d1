"""The overlay's layout: legend and stats readable at the demo's 128×128, never over each other."""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.runtime.overlay import Overlay

DEMO_LABELS = ("background", "ellipse", "box", "bar")  # what `edgeseg demo` trains


def scene(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(66)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4:h // 2, w // 4:w // 2] = 1
    mask[h // 2:, w // 2:] = 3
    return frame, mask


def test_at_128_the_legend_and_stats_go_beside_the_frame_not_over_it() -> None:
    frame, mask = scene(128, 128)
    ov = Overlay(DEMO_LABELS, alpha=0.5)
    out = ov.draw(frame, mask, fps=31.2, latency_ms=4.8)
    assert out.shape[0] == 128 and out.shape[1] > 128 + 60
    blend = cv2.addWeighted(frame, 0.5, ov.colorize(mask), 0.5, 0.0)
    np.testing.assert_array_equal(out[:, :128], blend)  # no text over the picture
    panel = out[:, 128:]
    for i in range(1, len(DEMO_LABELS)):  # a swatch of each class colour in the panel
        assert (panel == ov.colors[i]).all(axis=-1).sum() >= 25, DEMO_LABELS[i]
    white = (panel >= 250).all(axis=-1)
    rows = np.flatnonzero(white.any(axis=1))
    assert rows.size and rows.max() < 128  # text, and all of it inside the panel
    # the stats line and the first legend row do not share pixel rows
    first_swatch_row = np.flatnonzero((panel == ov.colors[1]).all(axis=-1).any(axis=1))[0]
    stats_rows = rows[rows < first_swatch_row]
    assert stats_rows.size and stats_rows.max() < first_swatch_row


def test_a_video_keeps_one_size_whatever_the_numbers() -> None:
    ov = Overlay(DEMO_LABELS)
    frame, mask = scene(128, 128)
    shapes = {ov.draw(frame, mask, fps, ms).shape for fps, ms in ((1.0, 1.0), (123.4, 567.8))}
    assert len(shapes) == 1


def test_a_frame_with_room_keeps_its_size_and_both_fit_in_it() -> None:
    ov = Overlay(DEMO_LABELS)
    for h, w in ((240, 320), (480, 640)):
        frame, mask = scene(h, w)
        out = ov.draw(frame, mask, fps=31.2, latency_ms=4.8)
        assert out.shape == frame.shape
        # the top band holds the stats at the left, the legend at the right, a gap between
        band = (out[:24] >= 250).all(axis=-1).any(axis=0)
        cols = np.flatnonzero(band)
        gaps = np.diff(cols)
        assert cols.size and gaps.max() >= 12, (h, w)
