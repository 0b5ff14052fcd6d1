"""The overlay: its layout (legend and stats readable at the demo's 128×128, never over each other)
and its blend (the integer half-and-half one and the lookup-table colours against OpenCV's float blend)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeseg.runtime.overlay import Overlay, palette

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
    # no text over the picture (the integer half blend is within 1 of OpenCV's)
    assert np.abs(out[:, :128].astype(int) - blend).max() <= 1
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


def _scene(h: int = 48, w: int = 64, classes: int = 21) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(66)
    return (rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            rng.integers(0, classes, (h, w)).astype(np.uint8))


def test_half_blend_is_within_one_of_the_float_blend():
    frame, mask = _scene()
    want = cv2.addWeighted(frame, 0.5, palette()[mask], 0.5, 0.0)
    got = Overlay([]).draw(frame, mask)
    diff = got.astype(int) - want
    assert got.shape == frame.shape and got.dtype == np.uint8
    assert np.abs(diff).max() <= 1  # floor(f/2) + floor(c/2) against round((f + c) / 2)
    assert (diff != 0).mean() < 0.6  # off by one only where a rounding differs
    assert (got != frame).mean() > 0.5  # the colours are in it


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_other_alphas_blend_exactly_as_opencv(alpha):
    frame, mask = _scene()
    want = cv2.addWeighted(frame, 1.0 - alpha, palette()[mask], alpha, 0.0)
    np.testing.assert_array_equal(Overlay([], alpha).draw(frame, mask), want)


def test_uint16_masks_and_new_frame_sizes():
    frame, _ = _scene()
    wide = np.full(frame.shape[:2], 200, np.uint16)  # a uint16 mask takes the float blend
    ov = Overlay([])
    want = cv2.addWeighted(frame, 0.5, np.broadcast_to(ov.colors[200], frame.shape).copy(), 0.5, 0.0)
    np.testing.assert_array_equal(ov.draw(frame, wide), want)
    small, mask = _scene(32, 40, 4)  # the buffers kept between frames follow the size
    assert np.abs(ov.draw(small, mask).astype(int)
                  - cv2.addWeighted(small, 0.5, palette()[mask], 0.5, 0.0)).max() <= 1
    np.testing.assert_array_equal(ov.colorize(mask), palette()[mask])


def test_draw_leaves_the_frame_alone_and_returns_a_new_image():
    frame, mask = _scene()
    before = frame.copy()
    ov = Overlay(["background", "cat"])
    out1 = ov.draw(frame, mask, fps=30.0, latency_ms=12.5)
    out2 = ov.draw(frame, mask)
    np.testing.assert_array_equal(frame, before)
    assert out1 is not out2 and not np.shares_memory(out1, out2)
