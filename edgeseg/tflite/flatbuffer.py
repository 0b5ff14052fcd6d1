"""Read a .tflite without TensorFlow: tensors, quantization, ops, size, metadata entries."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegError

TFLITE_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the graph.

    Attributes:
        index: Tensor index in the subgraph.
        name: Tensor name given by the converter.
        shape: Static shape (``-1`` for a dynamic dimension).
        dtype: numpy-style type name: ``uint8``, ``int8``, ``float32``, ``float16``, ``int32`` …
        scale: Quantization scales (one per tensor, or one per channel); empty when float.
        zero_point: Quantization zero points, matching ``scale``.
        constant: Whether the tensor holds weights (data stored in the file).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    constant: bool = False

    @property
    def quantized(self) -> bool:
        return bool(self.scale)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"], d["scale"], d["zero_point"] = list(self.shape), list(self.scale), list(
            self.zero_point)
        return d


@dataclass(frozen=True)
class OpInfo:
    """One operator, in execution order.

    Attributes:
        index: Position in the subgraph's operator list (execution order).
        name: Builtin name (``CONV_2D``) or the custom code of a custom op.
        inputs: Input tensor indices (optional inputs left out).
        outputs: Output tensor indices.
        version: The op's version in the file's operator code (what a runtime or
            ``edgetpu_compiler`` checks it supports); 0 when unknown (the file was
            read through the interpreter, which does not report it).
        options: Builtin options by schema field name (``half_pixel_centers``,
            ``fused_activation_function`` …); empty when the op has none or the
            file was read through the interpreter.
    """

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    # Not compared: the interpreter fallback reads the same graph without them.
    version: int = field(default=0, compare=False)
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class TfliteModel:
    """What a .tflite file contains, read without TensorFlow."""

    path: Path
    size: int
    tensors: tuple[TensorInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    ops: tuple[OpInfo, ...]
    metadata_names: tuple[str, ...] = ()

    @property
    def input_tensors(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.outputs]

    def op_histogram(self) -> dict[str, int]:
        """Op name -> count, most frequent first."""
        return dict(Counter(op.name for op in self.ops).most_common())

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": self.size,
            "inputs": [t.to_dict() for t in self.input_tensors],
            "outputs": [t.to_dict() for t in self.output_tensors],
            "ops": len(self.ops),
            "op_histogram": self.op_histogram(),
            "metadata_names": list(self.metadata_names),
        }


def read_model_bytes(path: str | Path) -> bytes:
    """Read a file and check it is a TFLite flatbuffer, with a clear error when it is not."""
    p = Path(path)
    if not p.is_file():
        raise EdgesegError(f"{p}: no such model file; check the path.")
    data = p.read_bytes()
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise EdgesegError(
            f"{p} is not a TFLite model (no 'TFL3' flatbuffer identifier); "
            "pass a .tflite file made by 'edgeseg convert' or the TFLite converter."
        )
    return data


def read_tflite(path: str | Path,
                make_interpreter: Callable[..., Any] | None = None) -> TfliteModel:
    """Describe a .tflite file: I/O tensors with quantization, the ops, size, metadata names.

    Uses the flatbuffer schema that ships with ai-edge-litert; where only
    tflite-runtime is installed it asks an interpreter instead (a model with
    custom ops, such as a compiled Edge TPU model, then needs the op's delegate).

    Args:
        path: The .tflite file.
        make_interpreter: Makes that interpreter (``edgeseg.runtime.make_interpreter``;
            passed in, so this package stays below the runtime). None: without the
            schema, reading fails with an install hint.

    Raises:
        EdgesegError: The file is missing or is not a TFLite flatbuffer, or neither the
            schema nor ``make_interpreter`` is there to read it.
    """
    data = read_model_bytes(path)
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        schema = None
    try:
        if schema is not None:
            tensors, inputs, outputs, ops = _parse_with_schema(schema, data)
        elif make_interpreter is not None:
            tensors, inputs, outputs, ops = _parse_with_interpreter(data, make_interpreter)
        else:
            raise EdgesegError(f"reading the graph of {path} needs ai-edge-litert's model schema: "
                               "pip install ai-edge-litert.")
        names = tuple(metadata_buffers(data))
    except EdgesegError:
        raise
    except Exception as exc:  # noqa: BLE001 - a cut or corrupt flatbuffer fails anywhere inside
        # The same one line bench and run give for a model the runtime cannot load.
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EdgesegError(
            f"{path} could not be loaded as a TFLite model ({detail}); check that the file is "
            "complete (re-copy or re-run `edgeseg convert`).") from None
    return TfliteModel(
        path=Path(path), size=len(data), tensors=tensors, inputs=inputs, outputs=outputs,
        ops=ops, metadata_names=names,
    )


def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_")}


def _parse_with_schema(schema: Any, data: bytes) -> tuple:
    model = schema.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() < 1:
        raise EdgesegError("the .tflite file has no subgraph; re-export the model.")
    sg = model.Subgraphs(0)
    op_names, type_names = _enum_names(schema.BuiltinOperator), _enum_names(schema.TensorType)
    codes, versions = [], []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())  # the schema's documented rule
        if code == schema.BuiltinOperator.CUSTOM:
            codes.append((oc.CustomCode() or b"CUSTOM").decode())
        else:
            codes.append(op_names.get(code, f"BUILTIN_{code}"))
        versions.append(int(oc.Version()) or 1)
    tensors = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        q = t.Quantization()
        scale = tuple(float(s) for s in q.ScaleAsNumpy()) if q and q.ScaleLength() else ()
        zp = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q and q.ZeroPointLength() else ()
        buf = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        constant = buf is not None and (buf.DataLength() > 0 or buf.Size() > 0)
        shape = tuple(int(s) for s in t.ShapeSignatureAsNumpy()) if t.ShapeSignatureLength() \
            else tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        tensors.append(TensorInfo(
            index=i, name=(t.Name() or b"").decode(errors="replace"), shape=shape,
            dtype=type_names.get(t.Type(), str(t.Type())).lower(), scale=scale,
            zero_point=zp[: len(scale)] if scale else (), constant=constant,
        ))
    ops = []
    for i in range(sg.OperatorsLength()):
        o = sg.Operators(i)
        ins = tuple(int(x) for x in o.InputsAsNumpy()) if o.InputsLength() else ()
        outs = tuple(int(x) for x in o.OutputsAsNumpy()) if o.OutputsLength() else ()
        ops.append(OpInfo(i, codes[o.OpcodeIndex()], tuple(x for x in ins if x >= 0), outs,
                          versions[o.OpcodeIndex()], _builtin_options(schema, o)))
    inputs = tuple(int(x) for x in sg.InputsAsNumpy()) if sg.InputsLength() else ()
    outputs = tuple(int(x) for x in sg.OutputsAsNumpy()) if sg.OutputsLength() else ()
    return tuple(tensors), inputs, outputs, tuple(ops)


def _builtin_options(schema: Any, op: Any) -> dict[str, Any]:
    """An operator's builtin options as ``{schema field name: value}`` (scalars only)."""
    opts = schema.BuiltinOptionsCreator(op.BuiltinOptionsType(), op.BuiltinOptions())
    if opts is None:
        return {}
    # The generated object API names fields in camelCase; the schema (.fbs) in snake_case.
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in vars(opts).items()
            if isinstance(v, (bool, int, float))}


def _parse_with_interpreter(data: bytes, make_interpreter: Callable[..., Any]) -> tuple:
    # Not allocated: a model whose custom op needs a delegate still shows its graph.
    interpreter = make_interpreter(data, threads=1, allocate=False)
    produced: set[int] = set()
    ops = []
    for d in interpreter._get_ops_details():  # the only public-ish op listing of tflite-runtime
        ins = tuple(int(x) for x in d["inputs"] if x >= 0)
        outs = tuple(int(x) for x in d["outputs"])
        produced.update(outs)
        ops.append(OpInfo(int(d["index"]), str(d["op_name"]), ins, outs))
    inputs = tuple(int(d["index"]) for d in interpreter.get_input_details())
    outputs = tuple(int(d["index"]) for d in interpreter.get_output_details())
    tensors = {}
    for d in interpreter.get_tensor_details():
        qp = d.get("quantization_parameters") or {}
        scale = tuple(float(s) for s in qp.get("scales", ()))
        idx = int(d["index"])
        tensors[idx] = TensorInfo(
            index=idx, name=str(d["name"]), shape=tuple(int(s) for s in d["shape"]),
            dtype=d["dtype"].__name__ if hasattr(d["dtype"], "__name__") else str(d["dtype"]),
            scale=scale, zero_point=tuple(int(z) for z in qp.get("zero_points", ()))[: len(scale)],
            constant=idx not in produced and idx not in inputs,
        )
    ordered = tuple(tensors[i] for i in sorted(tensors))
    return ordered, inputs, outputs, tuple(ops)


def metadata_buffers(data: bytes) -> dict[str, bytes]:
    """The model's ``metadata`` entries (``min_runtime_version``, ``TFLITE_METADATA`` …) by name.

    Walks the flatbuffer tables by hand so it needs only the ``flatbuffers``
    package (ai-edge-litert depends on it), not a generated model schema;
    without ``flatbuffers`` it returns ``{}``.
    """
    try:
        from flatbuffers import encode, number_types, packer, table
    except ImportError:
        return {}
    buf = bytearray(data)
    model = table.Table(buf, encode.Get(packer.uoffset, buf, 0))

    def tables(tab: Any, slot: int) -> list[Any]:
        o = tab.Offset(4 + 2 * slot)
        if not o:
            return []
        start, n = tab.Vector(o), tab.VectorLen(o)
        return [table.Table(buf, tab.Indirect(start + 4 * i)) for i in range(n)]

    def field(tab: Any, slot: int, flags: Any, default: int = 0) -> int:
        o = tab.Offset(4 + 2 * slot)
        return tab.Get(flags, o + tab.Pos) if o else default

    buffers = tables(model, 4)  # Model.buffers
    out = {}
    for meta in tables(model, 6):  # Model.metadata: {name, buffer}
        o = meta.Offset(4)
        name = meta.String(o + meta.Pos).decode(errors="replace") if o else ""
        idx = field(meta, 1, number_types.Uint32Flags)
        if idx >= len(buffers):
            continue
        b = buffers[idx]
        o = b.Offset(4)  # Buffer.data
        if o:
            start = b.Vector(o)
            out[name] = bytes(buf[start:start + b.VectorLen(o)])
        else:  # models over 2 GB keep buffers after the flatbuffer: offset/size
            off, size = field(b, 1, number_types.Uint64Flags), field(b, 2, number_types.Uint64Flags)
            out[name] = bytes(buf[off:off + size]) if off > 1 else b""
    return out
