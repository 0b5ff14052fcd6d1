"""Keep an int8 model in one XNNPACK partition: two exact rewrites of the converter's graph.

XNNPACK (LiteRT's CPU delegate) has no int8 SOFTMAX and does not requantize between uint8
and int8, so LiteRT runs those ops on its builtin kernels, on one thread, and a builtin op
between delegated ones splits the graph into partitions. ``convert --int8`` (target cpu)
rewrites, in the flatbuffer:

1. **The I/O conversions.** ``--io uint8`` (the default: camera pixels, MediaPipe's Task API)
   gets a QUANTIZE uint8 -> int8 after the input and int8 -> uint8 before the output. Each
   becomes DEQUANTIZE (to float32) + QUANTIZE, which XNNPACK runs on all threads. With the
   equal scales the converter writes the bytes are the same (x - zero point + the other one);
   measured on the realtime preset at 416² (2 threads, Intel Xeon with AMX) the input one
   alone took ~0.4 ms of 4.4 on the builtin kernel.
2. **A softmax at the decoder's tap** (``--head upsampled``, more than two classes: with two
   the deployment copy uses a LOGISTIC, see ``edgeseg.model.build.deployment_copy``): the
   int8 SOFTMAX that feeds the resize becomes DEQUANTIZE + float32 SOFTMAX + QUANTIZE, inside
   the partition. Measured on a realtime_1core file (320², 4 classes): the same bytes out,
   one partition instead of two, Cortex-A72 instructions 48.3 M -> 47.9 M (emulated), x86
   time unchanged. Not done for a softmax at 1/2 resolution: there the float softmax costs
   ~70 % more time on the x86 above (while saving 6.4 M of 58.4 M on the A72).

``edgeseg inspect`` shows the partitions; ``edgeseg compare`` the outputs.
"""

from __future__ import annotations

from typing import Any

# TFLite op versions (tensorflow/lite/tools/versioning/op_version.cc): DEQUANTIZE of uint8
# is version 1, of int8 version 2; QUANTIZE float32 -> int8/uint8 and float SOFTMAX are 1.
_DEQUANTIZE_VERSION = {"UINT8": 1, "INT8": 2}


class _Graph:
    """The object-API model (``edgeseg.tflite.model_schema``) and its edits."""

    def __init__(self, flat: bytes) -> None:
        from edgeseg.tflite import model_schema

        self.s = schema = model_schema()
        self.model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flat, 0))
        self.type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        self._empty: int | None = None

    def code(self, op: Any) -> int:
        c = self.model.operatorCodes[op.opcodeIndex]
        return max(c.builtinCode, c.deprecatedBuiltinCode)

    def opcode(self, code: int, version: int) -> int:
        for i, c in enumerate(self.model.operatorCodes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == code and c.version == version:
                return i
        oc = self.s.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
        self.model.operatorCodes.append(oc)
        return len(self.model.operatorCodes) - 1

    def float_like(self, graph: Any, index: int, suffix: bytes) -> int:
        """A new float32 activation tensor shaped like tensor ``index``."""
        if self._empty is None:  # a buffer without data: the tensor is computed
            self.model.buffers.append(self.s.BufferT())
            self._empty = len(self.model.buffers) - 1
        src = graph.tensors[index]
        t = self.s.TensorT()
        t.shape = list(src.shape)
        t.shapeSignature = None if src.shapeSignature is None else list(src.shapeSignature)
        t.type, t.buffer, t.name = self.s.TensorType.FLOAT32, self._empty, (src.name or b"") + suffix
        graph.tensors.append(t)
        return len(graph.tensors) - 1

    def op(self, code: int, version: int, inputs: list[int], outputs: list[int]) -> Any:
        o = self.s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.opcode(code, version), inputs, outputs
        return o

    def pack(self) -> bytes:
        from edgeseg.tflite import pack_model

        return pack_model(self.s, self.model)


def _params(t: Any) -> tuple[tuple[float, ...], tuple[int, ...]]:
    q = t.quantization
    if q is None or q.scale is None or q.zeroPoint is None:
        return (), ()
    return tuple(float(s) for s in q.scale), tuple(int(z) for z in q.zeroPoint)


def one_partition(flat: bytes) -> tuple[bytes, dict[str, int]]:
    """Apply both rewrites (module docstring) to a converter's int8 flatbuffer.

    Args:
        flat: A .tflite flatbuffer, before metadata is embedded.

    Returns:
        (the rewritten flatbuffer, {"io": QUANTIZE ops rewritten, "softmax": SOFTMAX ops
        rewritten}); the input bytes when both counts are 0 (float models, ``--io int8``, a
        softmax at 1/2).
    """
    g = _Graph(flat)
    ops_ = g.s.BuiltinOperator
    counts = {"io": 0, "softmax": 0}
    for graph in g.model.subgraphs:
        producer = {t: op for op in graph.operators for t in op.outputs}
        consumers: dict[int, list[Any]] = {}
        for op in graph.operators:
            for t in op.inputs:
                consumers.setdefault(t, []).append(op)
        out: list[Any] = []
        for op in graph.operators:
            code = g.code(op)
            if code == ops_.QUANTIZE and len(op.inputs) == 1:
                src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
                (s_scale, s_zp), (d_scale, d_zp) = _params(src), _params(dst)
                before = producer.get(op.inputs[0])
                # After an int8 SOFTMAX LiteRT runs on its builtin kernel anyway, the pair
                # would only add a second partition.
                after_builtin = before is not None and g.code(before) in (ops_.SOFTMAX, ops_.ARG_MAX)
                if ({g.type_names.get(src.type), g.type_names.get(dst.type)} == {"UINT8", "INT8"}
                        and not after_builtin and len(s_scale) == len(d_scale) == 1
                        and s_scale == d_scale and abs(s_zp[0] - d_zp[0]) == 128):
                    mid = g.float_like(graph, op.inputs[0], b"_float")
                    out.append(g.op(ops_.DEQUANTIZE, _DEQUANTIZE_VERSION[g.type_names[src.type]],
                                    [op.inputs[0]], [mid]))
                    op.inputs, op.opcodeIndex = [mid], g.opcode(ops_.QUANTIZE, 1)
                    counts["io"] += 1
            elif (code == ops_.SOFTMAX and graph.tensors[op.inputs[0]].type == g.s.TensorType.INT8
                  and any(g.code(c) == ops_.RESIZE_BILINEAR for c in consumers.get(op.outputs[0], []))):
                f_in = g.float_like(graph, op.inputs[0], b"_float")
                f_out = g.float_like(graph, op.outputs[0], b"_float")
                out.append(g.op(ops_.DEQUANTIZE, 2, [op.inputs[0]], [f_in]))
                quantize = g.op(ops_.QUANTIZE, 1, [f_out], list(op.outputs))
                op.inputs, op.outputs, op.opcodeIndex = [f_in], [f_out], g.opcode(ops_.SOFTMAX, 1)
                out += [op, quantize]
                counts["softmax"] += 1
                continue
            out.append(op)
        graph.operators = out
    if not any(counts.values()):
        return flat, counts
    return g.pack(), counts
