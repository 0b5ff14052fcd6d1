"""How sure the model is, per frame, and whether a rolling window drifts from convert time."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

# Rolling window (frames) compared with the convert-time distribution.
WINDOW = 30
# A class's rolling share may leave its convert-time 5-95 % range by this much.
SHARE_SLACK = 0.05
# Above this many output pixels every second row and column is used: means and shares are
# the same to well under a percent, at a quarter of the cost (a 224×224×21 softmax on a Pi).
FULL_PIXELS = 128 * 128


class FrameConfidence(NamedTuple):
    """One frame's statistics at model resolution.

    Attributes:
        top1: Mean over pixels of the winning class's probability (0-1); None for
            an argmax-head model, which gives ids only.
        margin: Mean over pixels of top-1 minus top-2 probability (0-1); None as above.
        shares: Fraction of the pixels given to each class (sums to 1), float64 (C,).
    """

    top1: float | None
    margin: float | None
    shares: np.ndarray


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def frame_confidence(seg: Any) -> FrameConfidence:
    """Statistics of the output of ``seg``'s last ``segment()`` call.

    Reads the output tensor through the interpreter (a copy, at model resolution,
    e.g. 32×32×C; every second row and column past ``FULL_PIXELS``), dequantizes it, and
    applies the softmax/sigmoid a ``logits`` head leaves out. Scores outside 0-1 without
    a declared head are treated as logits.

    Args:
        seg: A :class:`~edgeseg.runtime.Segmenter` that has segmented a frame.
    """
    it = seg.interpreter
    raw = it.get_tensor(it.get_output_details()[seg.output_index]["index"])[0]  # the one it reads
    if raw.shape[0] * raw.shape[1] > FULL_PIXELS:
        raw = raw[::2, ::2]
    lay, head = seg.layout, seg.metadata.head
    n = max(seg.n_classes, 2 if lay.kind == "binary" else 1)
    if lay.kind == "ids":
        ids = raw.reshape(-1).astype(np.int64)
        return FrameConfidence(None, None, _shares(ids, n))
    scores = raw.astype(np.float32)
    if lay.scale:
        scores = (scores - lay.zero_point) * lay.scale
    if lay.kind == "binary":
        p = scores[..., 0]
        if head == "logits" or p.min() < 0.0 or p.max() > 1.0:
            p = 1.0 / (1.0 + np.exp(-p))
        ids = (p > 0.5).astype(np.int64).reshape(-1)
        top1 = np.maximum(p, 1.0 - p)
        return FrameConfidence(float(top1.mean()), float(np.abs(2 * p - 1).mean()),
                               _shares(ids, 2))
    if head == "logits" or scores.min() < 0.0 or scores.max() > 1.0 + 1e-3:
        scores = _softmax(scores)
    top2 = np.partition(scores, -2, axis=-1)[..., -2:]
    ids = scores.argmax(axis=-1).reshape(-1)
    return FrameConfidence(float(top2[..., 1].mean()),
                           float((top2[..., 1] - top2[..., 0]).mean()),
                           _shares(ids, scores.shape[-1]))


def _shares(ids: np.ndarray, n: int) -> np.ndarray:
    counts = np.bincount(ids, minlength=n).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def summarize(frames: list[FrameConfidence]) -> dict[str, Any]:
    """The distribution stored at convert time: mean/std/p05/p50/p95 per statistic."""
    def dist(values: np.ndarray) -> dict[str, Any]:
        q = np.percentile(values, [5, 50, 95], axis=0)
        return {"mean": np.round(values.mean(axis=0), 4).tolist(),
                "std": np.round(values.std(axis=0), 4).tolist(),
                "p05": np.round(q[0], 4).tolist(), "p50": np.round(q[1], 4).tolist(),
                "p95": np.round(q[2], 4).tolist()}

    out: dict[str, Any] = {"frames": len(frames), "window": WINDOW}
    if frames and frames[0].top1 is not None:
        out["top1"] = dist(np.array([f.top1 for f in frames]))
        out["margin"] = dist(np.array([f.margin for f in frames]))
    if frames:
        out["shares"] = dist(np.stack([f.shares for f in frames]))
    return out


def _no_reference(seg: Any) -> str:
    """Why ``seg``'s model has no convert-time confidence range, which --collect needs."""
    from pathlib import Path

    need = ("--collect keeps the frames whose confidence falls below the range measured on "
            "the calibration images when `edgeseg convert --int8` wrote the model")
    name = Path(seg.model_path).name
    if seg.metadata.description is None:  # MediaPipe's and other third-party files
        return (f"{need}; {name} was not converted by edgeseg (its description comes from "
                f"{seg.metadata.source}), so it records no such range")
    return (f"{need}; {name}'s description records none (converted without --int8, or by an "
            f"older edgeseg): re-convert it with edgeseg convert MODEL.keras --int8")


class ConfidenceMonitor:
    """Rolling per-frame confidence, flagged when it leaves the convert-time distribution.

    Drift: the window's mean top-1 or margin below the reference's 5th percentile, or
    a class's mean share outside its 5-95 % range widened by ``SHARE_SLACK``. The
    start and end of a drift are logged once each. A frame is "unsure" when its top-1
    is below the reference's 5th percentile (argmax heads: while drifting); unsure
    frames go to ``collect`` (a :class:`~edgeseg.runtime.sinks.FrameCollector`).

    Args:
        reference: The ``confidence`` dict of the model's metadata, or None (then only
            the rolling values are reported, and nothing is flagged).
        labels: Class names, for messages.
        note: Receives the drift log lines.
        collect: Called as ``collect(frame, mask)`` with unsure frames.
    """

    def __init__(self, reference: dict[str, Any] | None, labels: tuple[str, ...],
                 note: Callable[[str], None], collect: Any = None) -> None:
        self.reference, self.labels, self.note, self.collect = reference, labels, note, collect
        self.window: deque[FrameConfidence] = deque(maxlen=WINDOW)
        self.drift: list[str] = []
        self.unsure = self.drift_events = 0
        self.seg: Any = None  # the Segmenter whose output is read (set by for_segmenter)

    @classmethod
    def for_segmenter(cls, seg: Any, note: Callable[[str], None], collect_dir: str | None,
                      max_files: int, max_mb: float) -> ConfidenceMonitor:
        collector = None
        if collect_dir:
            from edgeseg.runtime.sinks import FrameCollector

            collector = FrameCollector(collect_dir, max_files, max_mb)
        ref = getattr(seg.metadata, "confidence", None)
        if collect_dir and ref is None:
            note(f"warning: {_no_reference(seg)}; --collect saves nothing without it.")
        monitor = cls(ref, tuple(seg.labels), note, collector)
        monitor.seg = seg
        return monitor

    def update(self, result: Any, frame: np.ndarray, seg: Any = None) -> dict[str, Any]:
        """Add the frame just segmented; returns the ``/stats`` ``confidence`` section."""
        fc = frame_confidence(seg if seg is not None else self.seg)
        self.window.append(fc)
        drift = self._check()
        if drift and not self.drift:
            self.drift_events += 1
            self.note(f"warning: the model is unsure of what it sees ({'; '.join(drift)} over "
                      f"the last {len(self.window)} frames): a dirty lens, the dark, or a "
                      "scene unlike its training data?")
        elif self.drift and not drift:
            self.note("the model's confidence is back within its convert-time range.")
        self.drift = drift
        ref = self.reference or {}
        low = (fc.top1 is not None and "top1" in ref and fc.top1 < ref["top1"]["p05"]) or \
            (fc.top1 is None and bool(drift))
        if low:
            self.unsure += 1
            if self.collect is not None:
                self.collect(frame, result.mask)
        return self.stats(fc)

    def _rolling(self) -> tuple[float | None, float | None, np.ndarray]:
        w = list(self.window)
        top1 = None if w[0].top1 is None else float(np.mean([f.top1 for f in w]))
        margin = None if w[0].margin is None else float(np.mean([f.margin for f in w]))
        return top1, margin, np.mean(np.stack([f.shares for f in w]), axis=0)

    def _check(self) -> list[str]:
        ref = self.reference
        if not ref or len(self.window) < min(WINDOW, 10):
            return []
        top1, margin, shares = self._rolling()
        out = []
        for name, value in (("top1", top1), ("margin", margin)):
            if value is not None and name in ref and value < ref[name]["p05"]:
                out.append(f"mean {name} {value:.3f} < {ref[name]['p05']:.3f}")
        if "shares" in ref and len(ref["shares"]["p05"]) == len(shares):
            for i, s in enumerate(shares):
                lo = ref["shares"]["p05"][i] - SHARE_SLACK
                hi = ref["shares"]["p95"][i] + SHARE_SLACK
                if not lo <= s <= hi:
                    name = self.labels[i] if i < len(self.labels) else f"class{i}"
                    out.append(f"{name} covers {s:.0%} (usual {max(lo, 0):.0%}-{min(hi, 1):.0%})")
        return out

    def stats(self, last: FrameConfidence) -> dict[str, Any]:
        top1, margin, shares = self._rolling()
        return {"top1": _round(top1), "margin": _round(margin),
                "shares": dict(zip(self.labels or [f"class{i}" for i in range(len(shares))],
                                   np.round(shares, 4).tolist())),
                "last_top1": _round(last.top1), "window": len(self.window),
                "drift": bool(self.drift), "drift_reasons": self.drift,
                "drift_events": self.drift_events, "unsure_frames": self.unsure,
                "reference": self.reference is not None,
                "collected": getattr(self.collect, "saved", 0)}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)
