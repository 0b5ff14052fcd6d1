"""A .tflite as a C/C++ source pair: 16-byte-aligned model bytes, I/O quantization, labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.tflite.flatbuffer import TensorInfo

_BYTES_PER_LINE = 16


def c_identifier(name: str) -> str:
    """A valid C identifier from a file stem (``seg-int8`` -> ``seg_int8``)."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII).strip("_") or "model"
    return f"model_{ident}" if ident[0].isdigit() else ident


def _c_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=True)  # a JSON string is a valid C string literal here


def _c_float(x: float) -> str:
    return f"{x!r}f" if "." in repr(x) or "e" in repr(x) else f"{x!r}.0f"


def export_c_array(model_path: str | Path, out_dir: str | Path,
                   name: str | None = None) -> tuple[Path, Path]:
    """Write ``<name>.h`` and ``<name>.cc`` holding the model, for C/C++ or microcontroller builds.

    The header declares ``<name>_model`` (16-byte aligned ``const unsigned char``), its
    length, the input and output sizes, the input/output quantization (scale, zero
    point) and the label names; both files are written atomically. The pair compiles
    as C11 (``gcc -x c -std=c11``) and as C++11; ``examples/c_app`` runs it with the
    LiteRT C API.

    Args:
        model_path: The .tflite file.
        out_dir: Folder for the pair (created).
        name: C identifier prefix; defaults to the model's file stem.

    Returns:
        The paths of the header and the source file.

    Raises:
        EdgesegError: Missing file, not a TFLite model, or a bad name.
    """
    from edgeseg.atomic import write_text
    from edgeseg.runtime.interpreter import make_interpreter
    from edgeseg.tflite.flatbuffer import read_model_bytes, read_tflite
    from edgeseg.tflite.metadata import read_standard_metadata

    data = read_model_bytes(model_path)
    model = read_tflite(model_path, make_interpreter)
    ident = c_identifier(name or Path(model_path).stem)
    if name and ident != name:
        raise EdgesegError(f"--name {name!r} is not a C identifier; try {ident!r}.")
    if not model.inputs or not model.outputs:
        raise EdgesegError(f"{model_path} has no input or output tensor; re-export the model.")
    inp, out = model.input_tensors[0], model.output_tensors[0]
    labels = read_standard_metadata(data)["labels"]
    guard = f"EDGESEG_{ident.upper()}_H_"
    shape = list(inp.shape) + [1] * (4 - len(inp.shape))
    # Output as [1, H, W, C]; a flat [1, H*W, C] output reads as H*W x 1.
    oshape = list(out.shape)
    oshape = oshape[:-1] + [1] * (4 - len(oshape)) + oshape[-1:] if len(oshape) < 4 else oshape

    def qparams(t: TensorInfo) -> tuple[str, str]:
        scale = t.scale[0] if t.scale else 0.0
        zp = t.zero_point[0] if t.zero_point else 0
        return _c_float(float(scale)), str(int(zp))

    (in_s, in_z), (out_s, out_z) = qparams(inp), qparams(out)
    header = f"""// {ident}: {Path(model_path).name} as a C array, by `edgeseg export --c-array`.
// Input {list(inp.shape)} {inp.dtype}; output {list(out.shape)} {out.dtype}.
// Real value = scale * (quantized value - zero_point); scale 0 means a float tensor.
#ifndef {guard}
#define {guard}

#define {ident.upper()}_INPUT_HEIGHT {shape[1]}
#define {ident.upper()}_INPUT_WIDTH {shape[2]}
#define {ident.upper()}_INPUT_CHANNELS {shape[3]}
#define {ident.upper()}_OUTPUT_HEIGHT {oshape[1]}
#define {ident.upper()}_OUTPUT_WIDTH {oshape[2]}
#define {ident.upper()}_OUTPUT_CHANNELS {oshape[3]}
#define {ident.upper()}_NUM_LABELS {len(labels)}

// 16-byte alignment for the model bytes, in C11, C++11 and older GNU C alike.
#ifndef EDGESEG_ALIGN16
#if defined(__cplusplus)
#define EDGESEG_ALIGN16 alignas(16)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define EDGESEG_ALIGN16 _Alignas(16)
#elif defined(__GNUC__)
#define EDGESEG_ALIGN16 __attribute__((aligned(16)))
#else
#define EDGESEG_ALIGN16
#endif
#endif

#ifdef __cplusplus
extern "C" {{
#endif

extern const unsigned char {ident}_model[];
extern const unsigned int {ident}_model_len;
extern const float {ident}_input_scale;
extern const int {ident}_input_zero_point;
extern const float {ident}_output_scale;
extern const int {ident}_output_zero_point;
extern const char* const {ident}_labels[];

#ifdef __cplusplus
}}  // extern "C"
#endif

#endif  // {guard}
"""
    rows = []
    for i in range(0, len(data), _BYTES_PER_LINE):
        chunk = data[i:i + _BYTES_PER_LINE]
        rows.append("    " + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    label_rows = "\n".join(f"    {_c_string(s)}," for s in labels) or "    0,"
    source = f"""// {Path(model_path).name} as a C array, by `edgeseg export --c-array`.
#include "{ident}.h"

// 16-byte alignment: TFLite Micro and XNNPACK read the weights in place.
EDGESEG_ALIGN16 const unsigned char {ident}_model[] = {{
{chr(10).join(rows)}
}};
const unsigned int {ident}_model_len = {len(data)};

const float {ident}_input_scale = {in_s};
const int {ident}_input_zero_point = {in_z};
const float {ident}_output_scale = {out_s};
const int {ident}_output_zero_point = {out_z};

const char* const {ident}_labels[] = {{
{label_rows}
}};
"""
    out_dir = Path(out_dir)
    return (write_text(out_dir / f"{ident}.h", header),
            write_text(out_dir / f"{ident}.cc", source))
