"""Drawing: a per-class colour palette, alpha-blended mask, legend, FPS and latency text."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def palette(n: int = 256) -> np.ndarray:
    """n×3 uint8 BGR colours: the PASCAL VOC colour map (class 0 is black).

    Bits of the class id are spread over the high bits of R, G and B, so
    neighbouring ids get clearly different colours and any id has one.
    """
    ids = np.arange(n)
    rgb = np.zeros((n, 3), np.int64)
    for shift in range(7, -1, -1):
        for ch in range(3):
            rgb[:, ch] |= ((ids >> (3 * (7 - shift) + ch)) & 1) << shift
    return rgb[:, ::-1].astype(np.uint8)


class Overlay:
    """Draws segmentations onto frames, reusing its buffers from frame to frame.

    The colours come from three single-channel table lookups merged into BGR (a third
    fewer instructions than one lookup on the mask merged to three channels), and the
    default half-and-half blend is integer: ``(frame >> 1) + (colour >> 1)``, within 1
    of ``cv2.addWeighted``'s rounded float blend. Together they take the blend of a
    640×480 frame from ~6.9 M to ~2.8 M Cortex-A72 instructions (benchmarks/RESULTS.md §6d).

    Args:
        labels: Class names for the legend (no legend when empty).
        alpha: Weight of the class colour in the blend (0: frame only, 1: colours only).
    """

    def __init__(self, labels: Sequence[str], alpha: float = 0.5) -> None:
        if not 0.0 <= alpha <= 1.0:
            from edgeseg.errors import EdgesegError

            raise EdgesegError(f"--alpha {alpha} must be between 0 and 1.")
        self.labels, self.alpha = list(labels), alpha
        self.colors = palette(max(256, len(self.labels)))
        self._half = alpha == 0.5
        # One table per B, G, R channel; halved for the integer half-and-half blend.
        table = self.colors[:256] >> 1 if self._half else self.colors[:256]
        self._luts = [np.ascontiguousarray(table[:, ch]) for ch in range(3)]
        self._planes: list[np.ndarray] = []
        self._colors3: np.ndarray | None = None
        self._panels: dict[tuple[int, int, bool], int] = {}  # (h, w, stats) -> panel width

    def _colorize_8bit(self, mask: np.ndarray) -> np.ndarray:
        """Colours of a uint8 mask from the lookup tables, into a buffer kept between frames."""
        if self._colors3 is None or self._colors3.shape[:2] != mask.shape:
            self._planes = [np.empty(mask.shape, np.uint8) for _ in range(3)]
            self._colors3 = np.empty((*mask.shape, 3), np.uint8)
        for lut, plane in zip(self._luts, self._planes):
            cv2.LUT(mask, lut, dst=plane)
        return cv2.merge(self._planes, dst=self._colors3)

    def colorize(self, mask: np.ndarray) -> np.ndarray:
        """H×W×3 BGR colours (uint8, a new array) of an H×W class mask."""
        if mask.dtype == np.uint8 and not self._half:
            return self._colorize_8bit(mask).copy()
        return np.take(self.colors, mask, axis=0)

    def draw(self, frame: np.ndarray, mask: np.ndarray, fps: float | None = None,
             latency_ms: float | None = None) -> np.ndarray:
        """A new BGR image: ``frame`` blended with the mask's colours, legend and stats.

        Legend (top right) and stats (top left) are drawn on the frame when both fit
        side by side at its font size; on a frame too small for that (the demo's 128×128)
        they go in a panel to the right of the frame instead, at a readable size, so the
        image is wider than the frame. The choice depends only on the frame's size, the
        labels and whether stats are asked for, so a video keeps one size.

        Args:
            frame: H×W×3 uint8 BGR.
            mask: H×W class ids (uint8, or uint16 past 256 classes).
        """
        if mask.dtype != np.uint8:
            out = cv2.addWeighted(frame, 1.0 - self.alpha, np.take(self.colors, mask, axis=0),
                                  self.alpha, 0.0)
        elif self._half:  # halves cannot overflow: 127 + 127
            out = np.right_shift(frame, 1)
            cv2.add(out, self._colorize_8bit(mask), dst=out)
        else:
            out = cv2.addWeighted(frame, 1.0 - self.alpha, self._colorize_8bit(mask), self.alpha, 0.0)
        text = []
        if fps is not None:
            text.append(f"{fps:.1f} FPS")
        if latency_ms is not None:
            text.append(f"{latency_ms:.1f} ms")
        if not self.labels and not text:
            return out
        panel_w = self._panel_width(out.shape[0], out.shape[1], bool(text))
        if panel_w:
            panel = np.full((out.shape[0], panel_w, 3), 40, np.uint8)
            if text:
                _label(panel, "  ".join(text), (6, 6), (255, 255, 255), PANEL_SCALE)
            self._legend(panel, 6, 6 + (_line(PANEL_SCALE) if text else 0), PANEL_SCALE)
            return np.hstack([out, panel])
        scale = _font_scale(out)
        if self.labels:
            self._legend(out, out.shape[1] - self._legend_width(scale) - 6, 6, scale)
        if text:
            _label(out, "  ".join(text), (6, 6), (255, 255, 255), scale)
        return out

    def _legend_width(self, scale: float) -> int:
        """Pixels from a swatch's left edge to the end of the longest name."""
        names = [n[:12] for n in self.labels]
        return _line(scale) + max((_text_width(n, scale) for n in names), default=0)

    def _panel_width(self, h: int, w: int, stats: bool) -> int:
        """0 when legend and stats fit on an h×w frame, else the side panel's width."""
        key = (h, w, stats)
        if key not in self._panels:
            scale = _font_scale(np.empty((h, 1)))
            stats_w = _text_width(STATS_TEMPLATE, scale) if stats else 0
            legend_w = self._legend_width(scale) if self.labels else 0
            rows = (h - 12) // _line(scale)
            fits = 6 + stats_w + 12 + legend_w + 6 <= w and len(self.labels) <= rows
            self._panels[key] = 0 if fits else 12 + max(
                _text_width(STATS_TEMPLATE, PANEL_SCALE) if stats else 0,
                self._legend_width(PANEL_SCALE) if self.labels else 0)
        return self._panels[key]

    def _legend(self, img: np.ndarray, x0: int, y0: int, scale: float) -> None:
        line = _line(scale)
        for i, name in enumerate(self.labels[: max(1, (img.shape[0] - y0 - 2) // line)]):
            y = y0 + i * line
            color = tuple(int(c) for c in self.colors[i])
            cv2.rectangle(img, (x0, y), (x0 + line - 6, y + line - 6), color, -1)
            cv2.rectangle(img, (x0, y), (x0 + line - 6, y + line - 6), (255, 255, 255), 1)
            _label(img, name[:12], (x0 + line, y), (255, 255, 255), scale)


# The widest stats text a run prints (its width fixes the layout before the first frame).
STATS_TEMPLATE = "000.0 FPS  000.0 ms"
PANEL_SCALE = 0.4  # the side panel's font: readable, whatever the frame's size


def _font_scale(img: np.ndarray) -> float:
    return max(0.35, min(1.0, img.shape[0] / 960))


def _line(scale: float) -> int:
    """Height of one legend row (swatch and name) at ``scale``."""
    return int(22 * scale / 0.5)


def _text_width(text: str, scale: float) -> int:
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    return tw + 2  # the outline


def _label(img: np.ndarray, text: str, xy: tuple[int, int], color: tuple[int, int, int],
           scale: float | None = None) -> None:
    """Text with a dark outline, readable on any background; ``xy`` is its top-left."""
    scale = _font_scale(img) if scale is None else scale
    (_, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    org = (xy[0], xy[1] + th)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
