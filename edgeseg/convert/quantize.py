"""Convert a trained .keras model to .tflite: float32, float16, dynamic-range or full int8."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

from edgeseg.config import ModelConfig, sidecar_path
from edgeseg.errors import EdgesegError

MODES = ("float32", "float16", "dynamic", "int8")
IO_TYPES = ("uint8", "int8", "float32")
TARGETS = ("cpu", "gpu", "edgetpu")


@dataclass(frozen=True)
class ConvertConfig:
    """How to convert; maps 1:1 to ``edgeseg convert`` options and is saved in the sidecar.

    Attributes:
        mode: float32, float16 (GPU delegate's format), dynamic (dynamic-range) or int8.
        io: Input/output tensor type of an int8 model.
        head: Deployment head: softmax, logits or argmax (in-graph uint8 class mask).
        target: cpu, gpu or edgetpu; picks defaults and graph changes for the target.
        calib: Calibration folder (None: the set shipped in edgeseg/assets/calibration/).
        calib_count: How many calibration images to sample.
        keep_float: Layer names left in float32 (selective quantization).
        resize_upsampling: Upsample with RESIZE_NEAREST_NEIGHBOR instead of TILE+RESHAPE.
        seed: Seed of the calibration sample.
    """

    mode: str = "float32"
    io: str = "uint8"
    head: Optional[str] = None  # softmax, or logits for the Edge TPU (its SOFTMAX is 1-D only)
    target: str = "cpu"
    calib: Optional[str] = None
    calib_count: int = 200
    keep_float: tuple[str, ...] = ()
    resize_upsampling: bool = True
    seed: int = 0

    def resolved(self) -> ConvertConfig:
        """Apply the target's defaults and check the combination."""
        c = self
        if c.target not in TARGETS:
            raise EdgesegError(f"--target {c.target!r} must be one of {', '.join(TARGETS)}.")
        if c.head is None:
            c = replace(c, head="logits" if c.target == "edgetpu" else "softmax")
        if c.target == "gpu" and c.mode == "float32":
            c = replace(c, mode="float16")
        if c.target == "edgetpu":
            if c.mode not in ("float32", "int8"):
                raise EdgesegError("--target edgetpu needs a full-integer model; drop --fp16/--dynamic.")
            if c.keep_float:
                raise EdgesegError("--keep-float leaves float ops, which the Edge TPU cannot run.")
            c = replace(c, mode="int8", io="uint8", resize_upsampling=True)
        if c.mode not in MODES:
            raise EdgesegError(f"mode {c.mode!r} must be one of {', '.join(MODES)}.")
        if c.io not in IO_TYPES:
            raise EdgesegError(f"--io {c.io!r} must be one of {', '.join(IO_TYPES)}.")
        if c.head not in ("softmax", "logits", "argmax"):
            raise EdgesegError(f"--head {c.head!r} must be softmax, logits or argmax.")
        if c.keep_float and c.mode != "int8":
            raise EdgesegError("--keep-float applies to --int8 conversions only.")
        return c

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["keep_float"] = list(self.keep_float)
        return d


@dataclass(frozen=True)
class ConvertResult:
    """What ``convert`` wrote."""

    path: Path
    sidecar: Path
    info: dict[str, Any]
    seconds: float
    extra_files: tuple[Path, ...] = ()


def _converter(model: Any, cfg: ModelConfig, ccfg: ConvertConfig,
               calib: Any, progress: Optional[Callable[[int], None]]) -> Any:
    from edgeseg.deps import tensorflow

    tf = tensorflow()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if ccfg.mode == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif ccfg.mode == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif ccfg.mode == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: calib.batches(cfg.preprocessing, progress)
        io = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[ccfg.io]
        conv.inference_input_type = io
        if ccfg.head != "argmax":  # argmax already outputs uint8 class ids
            conv.inference_output_type = io
        conv.target_spec.supported_ops = (
            [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            if ccfg.keep_float else [tf.lite.OpsSet.TFLITE_BUILTINS_INT8])
    return conv


def _op_outputs_for(model: Any, keep: tuple[str, ...]) -> list[str]:
    """Output tensor names of the ops that come from layers named in ``keep``.

    The names are read from a plain float conversion, which shares the calibrated
    model's tensor names (``model/dec_conv_4_1/convolution;...``).
    """
    import re

    from ai_edge_litert.interpreter import Interpreter

    from edgeseg.deps import tensorflow

    tf = tensorflow()
    interp = Interpreter(model_content=tf.lite.TFLiteConverter.from_keras_model(model).convert())
    outputs = {i for op in interp._get_ops_details() for i in op["outputs"]}
    names = [t["name"] for t in interp.get_tensor_details() if t["index"] in outputs]
    found, missing = [], []
    for layer in keep:
        pat = re.compile(rf"/{re.escape(layer)}(_\d+)?/")
        hits = [n for n in names if pat.search(n)]
        (found.extend(hits) if hits else missing.append(layer))
    if missing:
        raise EdgesegError(f"--keep-float {','.join(missing)}: no such layer in the model; use names "
                           "from `edgeseg compare --layers` (e.g. dec_conv_4).")
    return found


def _selective(conv: Any, model: Any, calib: Any, cfg: ModelConfig, keep: tuple[str, ...]) -> bytes:
    """Quantize everything but the layers in ``keep`` (TFLite's QuantizationDebugger)."""
    from edgeseg.deps import tensorflow

    tf = tensorflow()
    opts = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=_op_outputs_for(model, keep), fully_quantize=True)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=conv, debug_dataset=lambda: calib.batches(cfg.preprocessing), debug_options=opts)
    return bytes(debugger.get_nondebug_quantized_model())


def tensor_info(model_bytes: bytes) -> dict[str, Any]:
    """Shapes, dtypes and quantization of the model's input and output tensors."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)

    def one(d: dict[str, Any]) -> dict[str, Any]:
        scale, zp = d["quantization"]
        return {"name": d["name"], "shape": [int(x) for x in d["shape"]],
                "dtype": d["dtype"].__name__, "scale": float(scale), "zero_point": int(zp)}

    return {"input": one(interp.get_input_details()[0]),
            "output": one(interp.get_output_details()[0])}


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("edgeseg", "tensorflow", "keras", "ai-edge-litert"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def convert(model_path: str | Path, output: str | Path, ccfg: ConvertConfig,
            log: Callable[[str], None] = print,
            progress: Optional[Callable[[str, int, int], None]] = None) -> ConvertResult:
    """Convert a .keras model to a .tflite file with a JSON sidecar and embedded metadata.

    The model is rebuilt with batch 1 and a 4-D deployment head (the converter fails
    on a dynamic batch with this graph; MediaPipe and the Task Library want 4-D),
    with the trained weights copied by layer name.

    Args:
        model_path: A .keras model saved by edgeseg build/train.
        output: The .tflite to write (atomically).
        ccfg: Conversion settings.
        log: Receives one-line messages.
        progress: Called as ``progress(stage, done, total)`` while calibrating.
    """
    from edgeseg.atomic import write_bytes, write_json
    from edgeseg.model.build import deployment_copy
    from edgeseg.model.io import load_model

    t0 = time.monotonic()
    ccfg = ccfg.resolved()
    output = Path(output)
    if output.suffix != ".tflite":
        raise EdgesegError(f"-o {output}: name the output {output.stem}.tflite")
    model, cfg = load_model(model_path)
    calib = None
    if ccfg.mode == "int8":
        from edgeseg.convert.calibration import load_calibration

        calib = load_calibration(ccfg.calib, ccfg.calib_count, ccfg.seed, warn=log)
        log(f"calibrating on {len(calib.files)} images from {calib.folder}")
    deploy = deployment_copy(model, cfg, ccfg.head, ccfg.resize_upsampling)
    total = len(calib.files) if calib else 0
    step = (lambda i: progress("calibrating", i, total)) if progress and calib else None
    conv = _converter(deploy, cfg, ccfg, calib, step)
    from edgeseg.deps import quiet_tensorflow

    try:
        with quiet_tensorflow():
            if ccfg.keep_float:
                # The debugger's model keeps int8 I/O whatever --io says; say so.
                flat = _selective(conv, deploy, calib, cfg, ccfg.keep_float)
                if ccfg.io != "int8":
                    log(f"note: with --keep-float the model has int8 inputs/outputs, not {ccfg.io}")
                    ccfg = replace(ccfg, io="int8")
            else:
                flat = conv.convert()
    except EdgesegError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise EdgesegError(f"the TFLite converter failed for {model_path} ({first}).") from None
    info: dict[str, Any] = {
        "edgeseg": cfg.to_dict(),
        "tflite": {
            "mode": ccfg.mode, "head": ccfg.head, "target": ccfg.target,
            "io": ccfg.io if ccfg.mode == "int8" else "float32",
            **tensor_info(flat),
            "calibration": calib.to_dict() if calib else None,
            "source": str(Path(model_path).resolve()),
            "convert": ccfg.to_dict(),
            "versions": _versions(),
        },
    }
    from edgeseg.convert.confidence import confidence_reference
    from edgeseg.convert.metadata import embed_metadata

    info["tflite"]["confidence"] = confidence_reference(flat, info, calib, log,
                                                        folder=ccfg.calib, seed=ccfg.seed)
    data = embed_metadata(flat, info)
    write_bytes(output, data)
    side = write_json(sidecar_path(output), info)
    extra: tuple[Path, ...] = ()
    if ccfg.target == "edgetpu":
        extra = _edgetpu_step(output, log)
    size_kb = len(data) / 1024
    log(f"wrote {output} ({ccfg.mode}, {size_kb:,.0f} KiB) and {side.name}")
    return ConvertResult(output, side, info, time.monotonic() - t0, extra)


def _edgetpu_step(path: Path, log: Callable[[str], None]) -> tuple[Path, ...]:
    """Compile for the Edge TPU when the compiler exists; otherwise write the pre-flight report."""
    from edgeseg.convert.edgetpu import compile_edgetpu, edgetpu_preflight

    compiled = compile_edgetpu(path, path.parent)
    if compiled is not None:
        # The compiler keeps neither the sidecar nor the appended zip: give it its own.
        import shutil

        side = sidecar_path(compiled)
        shutil.copyfile(sidecar_path(path), side)
        log(f"edgetpu_compiler wrote {compiled}")
        return (compiled, side)
    report = edgetpu_preflight(path)
    md, js = report.save(path.parent)
    log(f"edgetpu_compiler is not installed; pre-flight: {report.summary()} -> {md}")
    return (md, js)
