"""Raspberry Pi speed ESTIMATES of a .tflite from a cost model fitted on emulated instruction counts.

How the figures are made (all of it is in ``edgeseg/device/pi_cost.json``, written by
``benchmarks/pi_cost_fit.py``):

1. Instructions. Each op of the graph is one of a few kinds (3×3 convolution, 1×1
   convolution, depthwise, resize, int8 softmax, requantize, argmax, XNNPACK's element-wise
   int8 ops, float32 softmax, other; see :func:`op_rows`). A kind's Cortex-A72
   (Pi 4) or Cortex-A76 (Pi 5) instructions are a linear function of its MACs (counted on the
   channel counts XNNPACK's kernels pad to) or pixels, and its elements, fitted on per-kernel
   instruction counts of int8 models run one-threaded under qemu-user with a counting plugin
   (``benchmarks/a72_count.py``); counts repeat to 0.01 %.
2. Milliseconds. instructions × (published ms / instructions) of Keras MobileNet v1 and v2 at
   224², int8, counted the same way. Published: XNNPACK README, "Raspberry Pi" table
   (end2end-bench, multi-threaded, per-channel int8, benchmarked 2022-02-08), column
   "RPi 4 (BCM2711, ARM64)": v1 24 ms, v2 17 ms. The README does not state the thread count;
   a Pi 4 has four cores, so four threads are assumed. The two references give the range.
   Pi 5: Pi 4 ms divided by 4.79, the Pi 4 → Pi 5 speed-up of TFLite SSD-MobileNetV2
   (112.6 → 23.5 ms, as quoted in edgeseg issue 15), applied to the A76 counts.
3. Threads. Ops XNNPACK runs are taken to scale linearly with threads (an assumption); the
   ones TFLite's builtin kernels run (int8 SOFTMAX, an int8 -> uint8 QUANTIZE, ARG_MAX here)
   on one thread. DEQUANTIZE, a QUANTIZE of float32, LOGISTIC and a float32 SOFTMAX are
   XNNPACK's (the graphs ``convert --int8`` writes since its one-partition rewrite).

These are estimates, not measurements: say so wherever you quote one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegError

COST_FILE = Path(__file__).parent / "pi_cost.json"
DEVICES = ("pi4", "pi5", "x86")
KINDS = ("conv", "conv1x1", "dwconv", "resize", "softmax", "quantize", "argmax", "elementwise", "softmax_f32",
         "other")
_FREE = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}  # no work: a new shape on the same buffer


@dataclass(frozen=True)
class OpRow:
    """One op as the cost model sees it.

    Attributes:
        kind: One of :data:`KINDS`.
        name: The TFLite op (``CONV_2D``).
        pixels: Output positions (batch × height × width; the input's for ARG_MAX): the
            rows the kernels loop over, each with a fixed cost besides its elements'.
        taps: Kernel height × width (1 for non-conv kinds).
        cin: Input channels (conv kinds).
        cout: Output channels (conv kinds).
        elements: Output elements (input elements for ARG_MAX).
    """

    kind: str
    name: str
    pixels: int
    taps: int
    cin: int
    cout: int
    elements: int

    def to_list(self) -> list[Any]:
        return [self.kind, self.name, self.pixels, self.taps, self.cin, self.cout, self.elements]


def _prod(shape: tuple[int, ...] | list[int]) -> int:
    return int(math.prod(max(int(s), 1) for s in shape))


def op_rows(model: Any) -> list[OpRow]:
    """The graph of an ``edgeseg.tflite.TfliteModel`` as cost-model rows (free ops left out)."""
    rows = []
    for op in model.ops:
        if op.name in _FREE or not op.outputs:
            continue
        out = model.tensors[op.outputs[0]].shape
        weights = model.tensors[op.inputs[1]].shape if len(op.inputs) > 1 else ()
        if op.name == "CONV_2D" and len(weights) == 4:
            cout, kh, kw, cin = weights
            kind = "conv1x1" if kh * kw == 1 else "conv"
            rows.append(OpRow(kind, op.name, _prod(out[:-1]), kh * kw, cin, cout, _prod(out)))
        elif op.name == "DEPTHWISE_CONV_2D" and len(weights) == 4:
            _, kh, kw, c = weights
            rows.append(OpRow("dwconv", op.name, _prod(out[:-1]), kh * kw, c, c, _prod(out)))
        elif op.name == "FULLY_CONNECTED" and len(weights) == 2:
            cout, cin = weights
            rows.append(OpRow("conv1x1", op.name, _prod(out[:-1]), 1, cin, cout, _prod(out)))
        else:
            kind = _kind(op.name, model.tensors[op.inputs[0]].dtype if op.inputs else "")
            shape = model.tensors[op.inputs[0]].shape if kind == "argmax" else out
            rows.append(OpRow(kind, op.name, _prod(shape[:-1]), 1, 0, 0, _prod(shape)))
    return rows


def _kind(name: str, input_dtype: str) -> str:
    """The kind of a non-convolution op, from its name and its first input's dtype.

    In the graphs ``convert --int8`` writes, the first input's dtype tells XNNPACK's ops from
    LiteRT's builtin ones. "elementwise": XNNPACK's per-element int8 ops, LOGISTIC and the
    float conversions (every DEQUANTIZE, a QUANTIZE of float32); XNNPACK runs them as one
    table look-up pass (a DEQUANTIZE + QUANTIZE pair of the uint8 <-> int8 I/O as one) or a
    vector convert, on all threads. "quantize": a QUANTIZE of an int8 tensor, the builtin
    requantize to uint8 after an int8 SOFTMAX (one thread). "softmax_f32": a float32 SOFTMAX
    (XNNPACK's); "softmax": an int8 one (LiteRT's builtin, one thread).
    """
    if name in ("DEQUANTIZE", "LOGISTIC") or name == "QUANTIZE" and input_dtype.startswith("float"):
        return "elementwise"
    if name == "SOFTMAX" and input_dtype.startswith("float"):
        return "softmax_f32"
    return {"RESIZE_BILINEAR": "resize", "RESIZE_NEAREST_NEIGHBOR": "resize", "SOFTMAX": "softmax",
            "QUANTIZE": "quantize", "ARG_MAX": "argmax"}.get(name, "other")


def _pad(n: int, to: int) -> int:
    return -(-int(n) // to) * to


def features(rows: list[OpRow], pad: dict[str, int]) -> dict[str, float]:
    """Per-kind padded MACs (conv kinds) or pixels (the others) and elements, plus the op count.

    ``pad`` holds the channel blocking of the device's kernels: ``kc`` (input channels per
    step) and ``nr`` (output channels per tile) of the GEMMs, ``dw`` of the depthwise ones.
    """
    f: dict[str, float] = {"ops": float(len(rows))}
    for r in rows:
        if r.kind in ("conv", "conv1x1"):
            macs = r.pixels * r.taps * _pad(r.cin, pad["kc"]) * _pad(r.cout, pad["nr"])
        elif r.kind == "dwconv":
            macs = r.pixels * r.taps * _pad(r.cout, pad["dw"])
        else:
            macs = 0
        if macs:
            f[f"{r.kind}.macs"] = f.get(f"{r.kind}.macs", 0.0) + macs
        else:
            f[f"{r.kind}.pixels"] = f.get(f"{r.kind}.pixels", 0.0) + r.pixels
        f[f"{r.kind}.elements"] = f.get(f"{r.kind}.elements", 0.0) + r.elements
    return f


@lru_cache(maxsize=1)
def cost_data() -> dict[str, Any]:
    """The fitted cost model shipped with edgeseg (``edgeseg/device/pi_cost.json``)."""
    try:
        return json.loads(COST_FILE.read_text())
    except (OSError, ValueError) as e:
        raise EdgesegError(f"cannot read the cost model {COST_FILE}: {e}; reinstall edgeseg.") from e


def instructions(rows: list[OpRow], device: str) -> dict[str, float]:
    """Estimated instructions per invoke by kind, on one core of ``device`` (pi4: A72, pi5: A76;
    x86: nanoseconds of one thread's CPU time on the machine the model was fitted on).

    Returns:
        kind -> instructions, plus ``"fixed"`` (per-invoke and per-op overhead).
    """
    dev = _device(device)
    if "basis" in dev:  # x86: CPU ns per basis-device instruction, by kind
        basis, coef = instructions(rows, dev["basis"]), dev["coefficients"]
        out = {k: coef.get(k, 0.0) * basis[k] for k in KINDS}
        out["fixed"] = coef.get("ops", 0.0) * len(rows) + coef.get("invoke", 0.0)
        return out
    coef, f = dev["coefficients"], features(rows, dev["pad"])
    out = {k: sum(coef.get(f"{k}.{x}", 0.0) * f.get(f"{k}.{x}", 0.0) for x in ("macs", "pixels", "elements"))
           for k in KINDS}
    out["fixed"] = coef.get("ops", 0.0) * f["ops"] + coef.get("invoke", 0.0)
    return out


def per_op(rows: list[OpRow], device: str) -> list[float]:
    """Estimated instructions of each row (the per-invoke and per-op overhead left out)."""
    return [sum(instructions([r], device)[k] for k in KINDS) for r in rows]


def _device(device: str) -> dict[str, Any]:
    data = cost_data()
    if device not in data["devices"]:
        raise EdgesegError(f"--estimate/--device {device!r} must be one of {', '.join(data['devices'])}.")
    return data["devices"][device]


@dataclass(frozen=True)
class Estimate:
    """An estimated latency (never a measurement).

    Attributes:
        device: ``pi4``, ``pi5`` or ``x86``.
        threads: Interpreter threads the estimate is for.
        instructions: Estimated instructions per invoke on one core (A72 / A76).
        serial_instructions: The part in ops TFLite runs on one thread whatever ``threads`` is.
        ms: Central estimate, milliseconds per invoke (mean of the two references' rates).
        ms_low: Lower end (the faster reference's rate).
        ms_high: Upper end (the slower reference's rate).
        by_kind: kind -> estimated instructions.
        method: One line saying how it was made.
    """

    device: str
    threads: int
    instructions: float
    serial_instructions: float
    ms: float
    ms_low: float
    ms_high: float
    by_kind: dict[str, float]
    method: str

    @property
    def fps(self) -> float:
        return 1000.0 / self.ms if self.ms > 0 else float("inf")


def estimate_rows(rows: list[OpRow], device: str, threads: int = 4) -> Estimate:
    """Estimate from cost-model rows (see :func:`estimate`)."""
    if threads < 1:
        raise EdgesegError(f"--threads {threads} must be at least 1.")
    dev = _device(device)
    by_kind = instructions(rows, device)
    total = sum(by_kind.values())
    serial = sum(by_kind[k] for k in dev["serial_kinds"])
    ref_threads = dev["published_threads"]
    # Wall time in units of "instructions at the published thread count".
    effective = (total - serial) * ref_threads / threads + serial * ref_threads
    if dev.get("unit") == "cpu_ns":  # x86: thread CPU time measured here, per op kind
        lo, hi = dev["heldout_error"]
        ms = [effective * 1e-6 / (1 + hi), effective * 1e-6 / (1 + lo)]  # err = predicted / timed - 1
        method = (f"estimate: one-thread CPU time per {dev['basis']} instruction of each op kind, fitted on "
                  f"invokes timed on {dev['core']} (range: the errors on files it was not fitted on, "
                  f"{lo:+.0%} to {hi:+.0%}); {threads} thread(s), assuming linear scaling of the XNNPACK part")
    else:
        rates = [r["ms"] / r["instructions"] for r in dev["references"]]
        ms = [effective * k for k in rates]
        method = (f"estimate: {dev['core']} instructions (cost model fitted on emulated counts) × published "
                  f"{device} ms per instruction of {' and '.join(r['name'] for r in dev['references'])}; "
                  f"{threads} thread(s), assuming linear scaling from {ref_threads}")
    return Estimate(device, threads, total, serial, sum(ms) / len(ms), min(ms), max(ms), by_kind, method)


def estimate(model_path: str | Path, device: str, threads: int = 4) -> Estimate:
    """Estimated latency of one invoke of a ``.tflite`` on a Raspberry Pi 4 or 5.

    Args:
        model_path: The model (read without TensorFlow or an interpreter).
        device: ``pi4`` (Cortex-A72), ``pi5`` (Cortex-A76) or ``x86`` (the Xeon it was fitted on).
        threads: Interpreter threads (the published Pi references used 4).

    Returns:
        An :class:`Estimate`; instructions are for one core, ms for ``threads`` threads.

    Raises:
        EdgesegError: Unreadable model, a model that is not int8, unknown device, threads < 1.
    """
    from edgeseg.tflite import read_tflite

    model = read_tflite(model_path)
    check_int8(model, model_path)
    return estimate_rows(op_rows(model), device, threads)


def check_int8(model: Any, name: str | Path) -> None:
    """Refuse a graph whose convolutions hold float weights: the cost model was fitted on int8 ones.

    Raises:
        EdgesegError: Naming the file and the fix.
    """
    float_weights = [op.name for op in model.ops if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
                     and len(op.inputs) > 1 and model.tensors[op.inputs[1]].dtype.startswith("float")]
    if float_weights:
        raise EdgesegError(f"{name}: {len(float_weights)} convolutions have float weights; the cost model "
                           "is for full-integer int8 models (`edgeseg convert --int8` makes one from a .keras).")
