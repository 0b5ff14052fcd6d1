"""The Edge TPU compiler's published rules, checked op by op on a .tflite without the compiler.

edgetpu_compiler itself was not run to make these rules (it is an x86 Debian package
from Coral's apt repository); where they and the compiler disagree, the compiler is
right. Each rule names its source by a tag of ``SOURCES``.
"""

from __future__ import annotations

import math

from edgeseg.tflite.flatbuffer import OpInfo, TensorInfo, TfliteModel

SOURCES = {
    "ops": "Coral, TensorFlow models on the Edge TPU, supported operations (compiler 16): "
           "https://coral.ai/docs/edgetpu/models-intro/#supported-operations",
    "req": "the same page, model requirements (8-bit tensors, static sizes, constant "
           "parameters, at most the 3 innermost dimensions larger than 1): "
           "https://coral.ai/docs/edgetpu/models-intro/#model-requirements",
    "ver": "op versions: tensorflow/lite/tools/versioning/op_version.cc; the compiler's "
           "'Operation version not supported' for RESIZE_NEAREST_NEIGHBOR version 3 "
           "(half_pixel_centers): google-coral/edgetpu #187, #420, #114, "
           "tensorflow/tensorflow #42024",
    "dyn": "dynamic (-1) dimensions: 'a delegate that only supports static-sized tensors', "
           "tensorflow/tensorflow #56273",
    "cache": "Coral, Edge TPU Compiler, parameter data caching (about 8 MB of on-chip SRAM): "
             "https://coral.ai/docs/edgetpu/compiler/#parameter-data-caching",
}
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"  # what edgetpu_compiler leaves in a compiled model
EDGETPU_PARAM_CACHE_BYTES = 8 * 1024 * 1024  # [cache]: "roughly 8 MB"
_EIGHT_BIT = ("int8", "uint8")

# [ops]: op -> the documented limitation (empty: none listed).
EDGETPU_OPS = {
    "ADD": "", "AVERAGE_POOL_2D": "no fused activation", "CONCATENATION": "no fused activation",
    "CONV_2D": "same dilation in x and y", "DEPTHWISE_CONV_2D": "same dilation in x and y",
    "EXPAND_DIMS": "", "FULLY_CONNECTED": "default weight format; 1-D output",
    "L2_NORMALIZATION": "", "LOGISTIC": "", "LSTM": "unidirectional only", "MAXIMUM": "",
    "MAX_POOL_2D": "no fused activation", "MEAN": "no reduction over the batch dimension",
    "MINIMUM": "", "MUL": "", "PACK": "not along the batch dimension",
    "PAD": "no padding of the batch dimension", "PRELU": "constant alpha", "QUANTIZE": "",
    "REDUCE_MAX": "not over the batch dimension", "REDUCE_MIN": "not over the batch dimension",
    "RELU": "", "RELU6": "", "RELU_N1_TO_1": "", "RESHAPE": "large reshapes may stay on the CPU",
    "RESIZE_BILINEAR": "3-D input/output; large resizes may stay on the CPU",
    "RESIZE_NEAREST_NEIGHBOR": "3-D input/output; large resizes may stay on the CPU",
    "RSQRT": "", "SLICE": "", "SOFTMAX": "1-D input, at most 16,000 elements",
    "SPACE_TO_DEPTH": "", "SPLIT": "not along the batch dimension", "SQUARED_DIFFERENCE": "",
    "SQUEEZE": "no relayout", "STRIDED_SLICE": "strides of 1, no ellipsis/new-axis masks",
    "SUB": "", "SUM": "not over the batch dimension", "TANH": "", "TRANSPOSE": "",
    "TRANSPOSE_CONV": "",
}
WHY_NOT = {
    "TILE": "TILE is not supported: Keras UpSampling2D lowers to it; convert with "
            "--target edgetpu (RESIZE_NEAREST_NEIGHBOR version 2)",
    "ARG_MAX": "ARG_MAX is not supported; it runs on the CPU (cheap as the last op)",
    "DEQUANTIZE": "DEQUANTIZE is not supported; float outputs are made on the CPU",
}
# [ver]: op -> (highest version the converter gives an 8-bit op of this kind, what the
# higher versions add). A higher version carries a feature the Edge TPU has no kernel
# for; for the resizes it is what the compiler is publicly reported to refuse. Ops not
# listed (MUL, FULLY_CONNECTED, TRANSPOSE_CONV, LSTM …) have no version check.
MAX_VERSION = {
    "ADD": (2, "int16/int64"), "AVERAGE_POOL_2D": (2, "int16"), "CONCATENATION": (2, "int16"),
    "CONV_2D": (3, "int16 activations, hybrid, grouped or int4 weights"),
    "DEPTHWISE_CONV_2D": (3, "int16 activations, hybrid or int4 weights"),
    "L2_NORMALIZATION": (2, ""), "LOGISTIC": (2, "int16"), "MAXIMUM": (2, "int16, 5-D"),
    "MAX_POOL_2D": (2, "int16"), "MEAN": (2, "int16"), "MINIMUM": (2, "int16, 5-D"),
    "PACK": (2, "int16"), "PAD": (2, "int16, 5-D"), "QUANTIZE": (1, "int16/int4, per-channel"),
    "REDUCE_MAX": (2, "int16"), "REDUCE_MIN": (2, "int16"), "RELU": (2, "int16"),
    "RELU6": (2, "int16"), "RESHAPE": (1, ""),
    "RESIZE_BILINEAR": (2, "v3 half_pixel_centers=True, v4 int16"),
    "RESIZE_NEAREST_NEIGHBOR": (2, "v3 half_pixel_centers or align_corners=True, v4 int16"),
    "RSQRT": (2, "int16"), "SLICE": (2, "int16, 5-D"), "SOFTMAX": (2, "int16"),
    "SPACE_TO_DEPTH": (2, ""), "SQUARED_DIFFERENCE": (2, ""), "SUM": (2, ""),
    "STRIDED_SLICE": (2, "5-D, ellipsis/new-axis masks, offset"), "SUB": (2, "5-D, int16/int64"),
    "TANH": (2, "int16"), "TRANSPOSE": (2, "5-D, int16"),
}
_NO_FUSED_ACTIVATION = ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION")  # [ops]
_SAME_DILATION = ("CONV_2D", "DEPTHWISE_CONV_2D")  # [ops]
_WEIGHTS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
            "TRANSPOSE_CONV": (1, 3)}  # [req]: input slots holding parameters


def _tensors(model: TfliteModel, op: OpInfo) -> list[TensorInfo]:
    return [model.tensors[i] for i in op.inputs + op.outputs]


def _options_problem(model: TfliteModel, op: OpInfo) -> str:
    """What in the op's builtin options the Edge TPU does not take, or ''."""
    o = op.options
    if op.name in _NO_FUSED_ACTIVATION and o.get("fused_activation_function", 0) != 0:
        return f"{op.name} with a fused activation ([ops]: no fused activation function)"
    if op.name in _SAME_DILATION and o.get("dilation_w_factor", 1) != o.get("dilation_h_factor", 1):
        return (f"dilation {o.get('dilation_h_factor')}×{o.get('dilation_w_factor')} "
                "([ops]: same dilation in x and y)")
    if op.name.startswith("RESIZE_") and (o.get("half_pixel_centers") or o.get("align_corners")):
        on = [k for k in ("half_pixel_centers", "align_corners") if o.get(k)]
        return (f"{on[0]}=True ([ver]: the compiler reports 'Operation version not "
                "supported'); convert with --target edgetpu")
    if op.name == "STRIDED_SLICE" and (o.get("ellipsis_mask") or o.get("new_axis_mask")):
        return "STRIDED_SLICE with an ellipsis/new-axis mask ([ops])"
    if op.name == "FULLY_CONNECTED":
        out = model.tensors[op.outputs[0]].shape
        if o.get("weights_format", 0) != 0 or math.prod(out[:-1]) != 1:
            return f"FULLY_CONNECTED to {list(out)} ([ops]: default weights, 1-D output only)"
    if op.name == "SOFTMAX":
        shape = model.tensors[op.inputs[0]].shape
        if math.prod(shape[:-1]) != 1 or shape[-1] > 16000:
            return (f"SOFTMAX over {list(shape)} ([ops]: 1-D input of at most 16,000 "
                    "elements); use head logits or argmax")
    if op.name == "CONCATENATION" and len(op.inputs) != 2 and any(
            model.tensors[i].constant for i in op.inputs):
        return "CONCATENATION of a constant with more than one tensor ([ops]: 2 inputs only)"
    return ""


def version_reason(name: str, version: int) -> str:
    """Why ``name`` at ``version`` does not map: the op, its version, the highest the
    compiler maps ([ver]), what the later versions add, and the fix."""
    top, adds = MAX_VERSION[name]
    added = f"; later versions add {adds}" if adds else ""
    fix = ("convert with edgeseg's Edge TPU resize: edgeseg convert MODEL.keras --int8 "
           "--target edgetpu" if name.startswith("RESIZE_") else
           "re-convert with 8-bit (int8/uint8) tensors, e.g. edgeseg convert MODEL.keras "
           "--int8 --target edgetpu")
    return (f"op version {version} > {top} (the Edge TPU compiler maps {name} up to "
            f"version {top} [ver]{added}); fix: {fix}")


def check_edgetpu_op(model: TfliteModel, op: OpInfo) -> tuple[bool, str]:
    """Whether ``edgetpu_compiler`` would map ``op``, by the rules above.

    Returns:
        ``(True, documented limitation)`` or ``(False, the first rule broken, with its
        source tag: [ops], [req], [ver], [dyn])``.
    """
    if op.name == EDGETPU_CUSTOM_OP:
        return True, "already compiled for the Edge TPU"
    if op.name not in EDGETPU_OPS:
        return False, WHY_NOT.get(op.name, f"{op.name} is not an Edge TPU operation ([ops])")
    tensors = _tensors(model, op)
    dynamic = next((t for t in tensors if any(d < 0 for d in t.shape)), None)
    if dynamic is not None:
        return False, (f"dynamic shape {list(dynamic.shape)} ([dyn]: the compiler needs "
                       "static sizes); convert with batch 1")
    floats = sorted({t.dtype for t in tensors if t.dtype.startswith("float")})
    if floats:
        return False, (f"float op ({', '.join(floats)} tensors; [req]: 8-bit only); "
                       "quantize the model fully to int8")
    other = sorted({t.dtype for t in tensors if not t.constant and t.dtype not in _EIGHT_BIT})
    if other:
        return False, f"{', '.join(other)} activations ([req]: 8-bit only)"
    for slot in _WEIGHTS.get(op.name, ()):
        if slot < len(op.inputs) and not model.tensors[op.inputs[slot]].constant:
            return False, "weights computed at run time ([req]: parameters must be constant)"
    for t in tensors:
        if not t.constant and math.prod(t.shape[:-3]) != 1:
            return False, (f"{len(t.shape)}-D tensor {list(t.shape)} ([req]: only the 3 "
                           "innermost dimensions may be larger than 1)")
    ceiling = MAX_VERSION.get(op.name)
    if ceiling is not None and op.version > ceiling[0]:
        return False, version_reason(op.name, op.version)
    problem = _options_problem(model, op)
    if problem:
        return False, problem
    return True, EDGETPU_OPS[op.name]


def parameter_bytes(model: TfliteModel) -> int:
    """Bytes of the model's constant tensors (weights, biases): what [cache] must hold."""
    sizes = {"int8": 1, "uint8": 1, "int16": 2, "float16": 2, "int32": 4, "float32": 4,
             "int64": 8}
    return sum(math.prod(t.shape) * sizes.get(t.dtype, 4) for t in model.tensors if t.constant)


def rules_markdown() -> list[str]:
    """The sources of the rules, one Markdown bullet each, for the pre-flight report."""
    return [f"- [{tag}] {text}" for tag, text in SOURCES.items()]
