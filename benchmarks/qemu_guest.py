"""Inside qemu-aarch64: run a model or the camera loop, marking each stage for the insn_count plugin.

Started by benchmarks/a72_count.py with the arm64 Python, never by hand. Prints one JSON object:
the instruction count of every stage of every run, and the guest's memory map (for the per-kernel
profile). Everything runs on one thread: the plugin's counter is exact only then.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys

MAGIC = 0x7E57  # the plugin's default `magic`: a system call number Linux does not use
_syscall = ctypes.CDLL(None).syscall
_syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_long]
_marks: list[str] = []


def _mark(label: str) -> None:
    _marks.append(label)
    _syscall(MAGIC, 1, len(_marks) - 1)


def _profile(tag: int) -> None:
    _syscall(MAGIC, 2, tag)


class stage:  # noqa: N801 - used as `with stage("invoke"):`
    """Marks the start and the end of one stage."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        _mark("begin " + self.name)

    def __exit__(self, *exc: object) -> None:
        _mark("end " + self.name)


def _counts(path: str) -> list[tuple[str, int]]:
    """(stage, instructions) per begin/end pair, less the marks' own cost (an empty stage's)."""
    at = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] == "mark":
                at[int(parts[1])] = int(parts[2])
    out: list[tuple[str, int, int]] = []  # name, raw count, stages nested inside
    open_: list[list] = []
    for i, label in enumerate(_marks):
        if label.startswith("begin "):
            open_.append([label[6:], i, 0])
        else:
            name, begin, inner = open_.pop()
            if open_:
                open_[-1][2] += 1 + inner
            out.append((name, at[i] - at[begin], inner))
    empty = [n for name, n, _ in out if name == "empty"]
    overhead = min(empty) if empty else 0
    # A stage holding k stages holds 2k marks more than an empty one, each costing `overhead`.
    return [(name, n - (1 + 2 * inner) * overhead) for name, n, inner in out if name != "empty"] + [
        ("mark overhead", overhead)]


def _invoke(args: argparse.Namespace) -> dict:
    import numpy as np

    from edgeseg.runtime.interpreter import make_interpreter

    it = make_interpreter(args.model, args.threads)
    inp = it.get_input_details()[0]
    rng = np.random.default_rng(66)
    info = np.iinfo(inp["dtype"]) if np.dtype(inp["dtype"]).kind in "iu" else None
    x = (rng.integers(info.min, info.max + 1, inp["shape"]) if info else rng.standard_normal(inp["shape"]))
    it.set_tensor(inp["index"], x.astype(inp["dtype"]))
    it.invoke()  # the first invoke packs weights and plans memory: not part of the steady state
    for _ in range(3):
        with stage("empty"):
            pass
    for _ in range(args.runs):
        if args.profile:
            _profile(0)  # zero the per-block counts
        with stage("invoke"):
            it.invoke()
        if args.profile:
            _profile(1)
    return {"input": [int(v) for v in inp["shape"]], "input_dtype": np.dtype(inp["dtype"]).name}


def _frame(args: argparse.Namespace):
    import cv2
    import numpy as np

    w, h = _wh(args.frame)
    if args.image:
        img = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if img is None:
            sys.exit(f"error: cannot read {args.image} as an image")
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    # A deterministic scene with structure (gradients and shapes), not noise.
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) % 256)], -1)
    img = img.astype(np.uint8)
    cv2.circle(img, (w // 3, h // 2), h // 4, (40, 200, 90), -1)
    cv2.rectangle(img, (w // 2, h // 5), (w - w // 8, h - h // 6), (200, 60, 30), -1)
    return img


def _wh(text: str) -> tuple[int, int]:
    """'640x480' (W×H, as cameras state it) -> (640, 480)."""
    w, h = text.lower().split("x")
    return int(w), int(h)


def _pipeline(args: argparse.Namespace) -> dict:
    import cv2

    from edgeseg.runtime.overlay import Overlay
    from edgeseg.runtime.segmenter import Segmenter

    cv2.setNumThreads(1)
    frame = _frame(args)
    seg = Segmenter(args.model, threads=1)
    overlay = Overlay(seg.labels)
    seg.segment(frame)  # warm-up: weight packing, buffer allocation
    overlay.draw(frame, seg.segment(frame).mask)
    for _ in range(3):
        with stage("empty"):
            pass
    for _ in range(args.runs):  # the loop as `edgeseg run` does it, nothing inside marked
        with stage("loop"):
            with stage("segment"):
                result = seg.segment(frame)
            with stage("draw"):
                overlay.draw(frame, result.mask)
    # Again with the preprocess and the invoke marked from inside segment().
    preprocess, invoke = seg._preprocess, seg.interpreter.invoke

    def marked_preprocess(f):
        with stage("preprocess"):
            preprocess(f)

    def marked_invoke():
        with stage("invoke"):
            invoke()

    seg._preprocess = marked_preprocess
    seg.interpreter.invoke = marked_invoke
    for _ in range(args.runs):
        seg.segment(frame)
    return {"frame": list(frame.shape), "input": [int(v) for v in seg.input["shape"]],
            "classes": seg.n_classes, "cv2_threads": cv2.getNumThreads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=["invoke", "pipeline"])
    p.add_argument("model")
    p.add_argument("--counts", required=True, help="the plugin's out= file")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--frame", default="640x480")
    p.add_argument("--image")
    args = p.parse_args()
    extra = _invoke(args) if args.mode == "invoke" else _pipeline(args)
    with open("/proc/self/maps") as f:
        maps = f.read()
    result = {"mode": args.mode, "model": os.path.abspath(args.model), "runs": args.runs,
              "threads": args.threads, **extra, "stages": _counts(args.counts), "maps": maps}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
