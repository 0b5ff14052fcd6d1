"""Which ops of a .tflite each target runs: XNNPACK (CPU), the GPU delegate, the Edge TPU."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from edgeseg.convert.edgetpu_rules import _EIGHT_BIT, EDGETPU_CUSTOM_OP, check_edgetpu_op
from edgeseg.tflite.flatbuffer import OpInfo, TensorInfo, TfliteModel

TARGETS = ("xnnpack", "gpu", "edgetpu")
TARGET_TITLES = {"xnnpack": "XNNPACK (CPU)", "gpu": "GPU delegate", "edgetpu": "Edge TPU"}

# XNNPACK delegate, from its README (google-ai-edge/LiteRT tflite/delegates/xnnpack/README.md):
# float32 operators, and 8-bit quantized operators. What it does not take runs on the
# builtin CPU kernels, so an "unsupported" op is slower, never an error.
XNNPACK_FLOAT_OPS = frozenset({
    "ABS", "ADD", "AVERAGE_POOL_2D", "CEIL", "CONCATENATION", "CONV_2D", "DEPTH_TO_SPACE",
    "DEPTHWISE_CONV_2D", "DIV", "ELU", "FULLY_CONNECTED", "FLOOR", "HARD_SWISH", "LEAKY_RELU",
    "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM", "MUL", "NEG", "PAD", "PRELU",
    "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "ROUND", "SLICE", "SOFTMAX",
    "SPACE_TO_DEPTH", "SPLIT", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "STRIDED_SLICE", "SUB",
    "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})
XNNPACK_QUANT_OPS = frozenset({
    "ADD", "CONCATENATION", "CONV_2D", "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "ELU",
    "FULLY_CONNECTED", "LEAKY_RELU", "LOGISTIC", "MAX_POOL_2D", "MEAN", "MUL", "PAD", "QUANTIZE",
    "RESHAPE", "RESIZE_BILINEAR", "SLICE", "SPACE_TO_DEPTH", "SPLIT", "SUB", "TANH", "TRANSPOSE",
    "TRANSPOSE_CONV",
})
# Custom ops XNNPACK implements (its README, "Custom operators"): MediaPipe's, in float32.
XNNPACK_CUSTOM_OPS = frozenset({"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D",
                                "MaxUnpooling2D"})

# GPU delegate: the builtin ops its model builder parses (LiteRT
# tflite/delegates/gpu/common/model_builder.cc, NewOperationParser). Float tensors,
# or 8-bit ones that it dequantizes; at most 4-D.
GPU_OPS = frozenset({
    "ABS", "ADD", "ADD_N", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CAST", "CONCATENATION", "CONV_2D",
    "COS", "CUMSUM", "DENSIFY", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE", "DIV", "ELU",
    "EQUAL", "EXP", "FLOOR", "FLOOR_DIV", "FLOOR_MOD", "FULLY_CONNECTED", "GATHER", "GELU",
    "GREATER", "GREATER_EQUAL", "HARD_SWISH", "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG",
    "LOGICAL_AND", "LOGISTIC", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD",
    "MUL", "NEG", "NOT_EQUAL", "ONE_HOT", "PACK", "PAD", "PADV2", "POW", "PRELU", "QUANTIZE",
    "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SELECT", "SELECT_V2", "SIGN", "SIN",
    "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "SQUARE",
    "SQUARED_DIFFERENCE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TILE", "TRANSPOSE",
    "TRANSPOSE_CONV", "UNPACK",
})

_FLOAT = ("float32", "float16")


@dataclass(frozen=True)
class OpSupport:
    """Whether one op runs on a target, and why not; with the op's version and options."""

    index: int
    op: str
    supported: bool
    reason: str = ""
    version: int = 0  # 0: unknown
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.op, "supported": self.supported,
                "reason": self.reason, "version": self.version, "options": dict(self.options)}


def _tensors(model: TfliteModel, op: OpInfo) -> list[TensorInfo]:
    return [model.tensors[i] for i in op.inputs + op.outputs]


def _activations(model: TfliteModel, op: OpInfo) -> list[TensorInfo]:
    return [t for t in _tensors(model, op) if not t.constant]


def xnnpack_support(model: TfliteModel, op: OpInfo) -> OpSupport:
    """XNNPACK takes float32 ops of its float list, 8-bit ops of its quantized list."""
    if op.name == EDGETPU_CUSTOM_OP:
        return OpSupport(op.index, op.name, False, "needs the Edge TPU delegate (libedgetpu)")
    acts = _activations(model, op)
    if op.name == "DEQUANTIZE" and all(t.dtype == "float16" for t in
                                       (model.tensors[i] for i in op.inputs)):
        return OpSupport(op.index, op.name, True, "fp16 weights, unpacked to fp32")
    if acts and all(t.dtype == "float32" for t in acts):
        if op.name in XNNPACK_FLOAT_OPS or op.name in XNNPACK_CUSTOM_OPS:
            return OpSupport(op.index, op.name, True)
        return OpSupport(op.index, op.name, False, "builtin kernel: XNNPACK has no float op")
    if op.name in ("QUANTIZE", "DEQUANTIZE"):
        ins = [model.tensors[i] for i in op.inputs]
        outs = [model.tensors[i] for i in op.outputs]
        if op.name == "DEQUANTIZE" or any(t.dtype == "float32" for t in ins):
            return OpSupport(op.index, op.name, True)
        if ins and outs and ins[0].dtype == outs[0].dtype:
            return OpSupport(op.index, op.name, True)
        return OpSupport(op.index, op.name, False,
                         "builtin kernel: XNNPACK does not requantize uint8 <-> int8")
    if acts and all(t.dtype in _EIGHT_BIT for t in acts):
        if op.name not in XNNPACK_QUANT_OPS:
            return OpSupport(op.index, op.name, False, "builtin kernel: XNNPACK has no 8-bit op")
        if not all(t.quantized for t in acts):
            # e.g. the RESHAPE after the argmax head's CAST: a plain uint8 class map, which
            # XNNPACK's quantized kernels refuse (the interpreter keeps it on the CPU kernel)
            return OpSupport(op.index, op.name, False,
                             "builtin kernel: 8-bit tensor without quantization parameters")
        return OpSupport(op.index, op.name, True)
    types = sorted({t.dtype for t in acts})
    return OpSupport(op.index, op.name, False, f"builtin kernel: {', '.join(types)} tensors")


def gpu_support(model: TfliteModel, op: OpInfo) -> OpSupport:
    """The GPU delegate takes the ops it parses, on float or 8-bit tensors of rank <= 4."""
    if op.name == EDGETPU_CUSTOM_OP:
        return OpSupport(op.index, op.name, False, "needs the Edge TPU delegate (libedgetpu)")
    if op.name not in GPU_OPS:
        return OpSupport(op.index, op.name, False, "not implemented by the GPU delegate")
    acts = _activations(model, op)
    bad = sorted({t.dtype for t in acts if t.dtype not in _FLOAT + _EIGHT_BIT}
                 - ({"bool", "int32"} if op.name in ("CAST", "GATHER", "SELECT_V2") else set()))
    if bad:
        return OpSupport(op.index, op.name, False, f"tensor type {', '.join(bad)}")
    if any(len(t.shape) > 4 for t in _tensors(model, op)):
        return OpSupport(op.index, op.name, False, "tensor with more than 4 dimensions")
    return OpSupport(op.index, op.name, True)


def edgetpu_support(model: TfliteModel, op: OpInfo) -> OpSupport:
    """Coral's published rules for ``op`` (``edgeseg.convert.edgetpu_rules``)."""
    ok, reason = check_edgetpu_op(model, op)
    return OpSupport(op.index, op.name, ok, reason)


_CHECKS = {"xnnpack": xnnpack_support, "gpu": gpu_support, "edgetpu": edgetpu_support}


@dataclass(frozen=True)
class TargetReport:
    """Per-op support of one target, with the summary a user reads."""

    target: str
    ops: tuple[OpSupport, ...]

    @property
    def supported(self) -> int:
        return sum(o.supported for o in self.ops)

    @property
    def unsupported_ops(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.ops:
            if not o.supported:
                out[o.op] = out.get(o.op, 0) + 1
        return out

    @property
    def partitions(self) -> int:
        """Runs of consecutive supported ops: the delegate kernels a linear graph gets."""
        runs, prev = 0, False
        for o in self.ops:
            runs += o.supported and not prev
            prev = o.supported
        return runs

    def summary(self) -> str:
        n = len(self.ops)
        if self.supported == n:
            return f"all {n} ops"
        names = ", ".join(f"{k}×{v}" if v > 1 else k for k, v in self.unsupported_ops.items())
        return f"{self.supported}/{n} ops; not: {names}"

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "supported": self.supported, "total": len(self.ops),
                "partitions": self.partitions, "unsupported_ops": self.unsupported_ops,
                "summary": self.summary(), "ops": [o.to_dict() for o in self.ops]}


def check_target(model: TfliteModel, target: str) -> TargetReport:
    """Per-op support of ``target`` (one of ``TARGETS``) for every op of ``model``."""
    check = _CHECKS[target]
    return TargetReport(target, tuple(replace(check(model, op), version=op.version,
                                              options=op.options) for op in model.ops))


def compatibility(model: TfliteModel) -> dict[str, TargetReport]:
    """Reports for every target, in ``TARGETS`` order."""
    return {t: check_target(model, t) for t in TARGETS}
