"""Convert a trained .keras model to .tflite: float32, float16, dynamic-range or full int8."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

from edgeseg.config import ModelConfig, save_sidecar
from edgeseg.errors import EdgesegError
from edgeseg.model.decoder import UPSAMPLING

MODES = ("float32", "float16", "dynamic", "int8")
IO_TYPES = ("uint8", "int8", "float32")
TARGETS = ("cpu", "gpu", "edgetpu")
# The ×2 upsampling each target's graph gets (see edgeseg.model.decoder.UPSAMPLING):
# XNNPACK has no RESIZE_NEAREST_NEIGHBOR but runs CONCATENATION + RESHAPE (int8 and
# float32); the GPU delegate and the Edge TPU run RESIZE_NEAREST_NEIGHBOR.
_TARGET_UPSAMPLING = {"cpu": "concat_reshape", "gpu": "resize", "edgetpu": "resize"}


@dataclass(frozen=True)
class ConvertConfig:
    """How to convert; maps 1:1 to ``edgeseg convert`` options and is saved in the sidecar.

    Attributes:
        mode: float32, float16 (GPU delegate's format), dynamic (dynamic-range) or int8.
        io: Input/output tensor type of an int8 model.
        head: Deployment head: softmax, logits or argmax (in-graph uint8 class mask).
        target: cpu, gpu or edgetpu; picks defaults and graph changes for the target.
        calib: Calibration folder (None: the set shipped in calibration/).
        calib_count: How many calibration images to sample.
        keep_float: Layer names left in float32 (selective quantization).
        upsampling: The ×2 upsampling ops (``edgeseg.model.decoder.UPSAMPLING``); ``auto``
            picks the target's: concat_reshape on the CPU (XNNPACK runs it, so the
            graph is one delegate partition), resize (RESIZE_NEAREST_NEIGHBOR v2) for
            the GPU and the Edge TPU.
        seed: Seed of the calibration sample.
    """

    mode: str = "float32"
    io: str = "uint8"
    head: Optional[str] = None  # softmax, or logits for the Edge TPU (its SOFTMAX is 1-D only)
    target: str = "cpu"
    calib: Optional[str] = None
    calib_count: int = 200
    keep_float: tuple[str, ...] = ()
    upsampling: str = "auto"
    seed: int = 0

    def resolved(self) -> ConvertConfig:
        """Apply the target's defaults and check the combination."""
        c = self
        if c.target not in TARGETS:
            raise EdgesegError(f"--target {c.target!r} must be one of {', '.join(TARGETS)}.")
        if c.upsampling not in ("auto", *UPSAMPLING):
            raise EdgesegError(f"--upsampling {c.upsampling!r} must be auto or one of "
                               f"{', '.join(UPSAMPLING)}.")
        if c.head is None:
            c = replace(c, head="logits" if c.target == "edgetpu" else "softmax")
        if c.target == "gpu" and c.mode == "float32":
            c = replace(c, mode="float16")
        if c.target == "edgetpu":
            if c.mode not in ("float32", "int8"):
                raise EdgesegError("--target edgetpu needs a full-integer model; drop --fp16/--dynamic.")
            if c.keep_float:
                raise EdgesegError("--keep-float leaves float ops, which the Edge TPU cannot run.")
            if c.upsampling not in ("auto", "resize"):
                raise EdgesegError(f"--target edgetpu upsamples with resize (RESIZE_NEAREST_NEIGHBOR "
                                   f"version 2, which edgetpu_compiler maps); drop --upsampling "
                                   f"{c.upsampling}.")
            c = replace(c, mode="int8", io="uint8")
        if c.upsampling == "auto":
            c = replace(c, upsampling=_TARGET_UPSAMPLING[c.target])
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

    @classmethod
    def from_options(cls, int8: bool = False, fp16: bool = False, dynamic: bool = False,
                     upsampling: str = "auto", keep_float: Optional[str] = None,
                     verify: bool = False, **kw: Any) -> ConvertConfig:
        """The checked config for ``edgeseg convert``'s flags (the CLI only parses).

        Raises:
            EdgesegError: Conflicting or invalid flags, naming the fix.
        """
        modes = [m for m, on in (("int8", int8), ("float16", fp16), ("dynamic", dynamic)) if on]
        if len(modes) > 1:
            raise EdgesegError("pick one of --int8, --fp16, --dynamic.")
        keep = tuple(s.strip() for s in keep_float.split(",") if s.strip()) if keep_float else ()
        c = cls(mode=modes[0] if modes else "float32", keep_float=keep,
                upsampling=upsampling, **kw).resolved()
        if verify and c.mode == "float32":
            raise EdgesegError("--verify compares a quantized model with its float source; add "
                               "--int8, --fp16 or --dynamic.")
        return c


@dataclass(frozen=True)
class ConvertResult:
    """What ``convert`` wrote."""

    path: Path
    sidecar: Path
    info: dict[str, Any]
    seconds: float
    extra_files: tuple[Path, ...] = ()


def deployment_graph(model: Any, cfg: ModelConfig, ccfg: ConvertConfig,
                     log: Callable[[str], None] = lambda s: None) -> tuple[Any, ModelConfig]:
    """The Keras graph ``convert`` hands the converter for ``ccfg`` (head, upsampling, target,
    folded normalization), and the config that describes it."""
    from edgeseg.convert.fold import fold_normalization, needs_folding
    from edgeseg.model.build import deployment_copy

    deploy = deployment_copy(model, cfg, ccfg.head, ccfg.upsampling,
                             edgetpu=ccfg.target == "edgetpu")
    if needs_folding(cfg, ccfg.mode, ccfg.io):
        # Per-channel means (keras_segmentation's) can't ride on one input scale/zero point.
        folded, new_cfg = fold_normalization(deploy, cfg)
        log(f"folded the per-channel normalization (mean {list(cfg.mean)}, std "
            f"{list(cfg.std)}) into the graph: the {ccfg.io} input takes raw RGB pixels")
        return folded, new_cfg
    return deploy, cfg


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

    from edgeseg.deps import tensorflow
    from edgeseg.runtime.interpreter import make_interpreter

    tf = tensorflow()
    interp = make_interpreter(tf.lite.TFLiteConverter.from_keras_model(model).convert(), 1,
                              allocate=False)
    outputs = {i for op in interp._get_ops_details() for i in op["outputs"]}
    names = [t["name"] for t in interp.get_tensor_details() if t["index"] in outputs]
    found, missing = [], []
    for layer in keep:
        pat = re.compile(rf"/{re.escape(layer)}(_\d+)?/")
        hits = [n for n in names if pat.search(n)]
        (found.extend(hits) if hits else missing.append(layer))
    if missing:
        weighted = [layer.name for layer in model.layers if layer.weights]
        raise EdgesegError(f"--keep-float {','.join(missing)}: no such layer with its own op in the "
                           f"model; its layers with weights are {weighted[0]} … "
                           f"{', '.join(weighted[-3:])} (`edgeseg compare --layers` ranks them).")
    return found


def quantization_debugger(conv: Any, calib: Any, cfg: ModelConfig,
                          denylisted_nodes: tuple[str, ...] = ()) -> Any:
    """The one TFLite QuantizationDebugger set-up, for ``--keep-float`` and ``compare --layers``.

    Args:
        conv: An int8 converter from :func:`_converter` (the one ``convert`` uses).
        calib: The CalibrationSet that feeds both the calibration and the debug run.
        cfg: The model's config (its preprocessing feeds the images).
        denylisted_nodes: Op output tensor names to leave in float32.
    """
    from edgeseg.deps import tensorflow

    tf = tensorflow()
    opts = None
    if denylisted_nodes:
        opts = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=list(denylisted_nodes), fully_quantize=True)
    return tf.lite.experimental.QuantizationDebugger(
        converter=conv, debug_dataset=lambda: calib.batches(cfg.preprocessing),
        debug_options=opts)


def _selective(conv: Any, model: Any, calib: Any, cfg: ModelConfig, keep: tuple[str, ...]) -> bytes:
    """Quantize everything but the layers in ``keep`` (TFLite's QuantizationDebugger)."""
    debugger = quantization_debugger(conv, calib, cfg, tuple(_op_outputs_for(model, keep)))
    return bytes(debugger.get_nondebug_quantized_model())


def tensor_info(model_bytes: bytes) -> dict[str, Any]:
    """Shapes, dtypes and quantization of the model's input and output tensors."""
    from edgeseg.runtime.interpreter import make_interpreter

    interp = make_interpreter(model_bytes, 1, allocate=False)

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
    from edgeseg.atomic import write_bytes
    from edgeseg.model.io import load_model

    t0 = time.monotonic()
    ccfg = ccfg.resolved()
    if ccfg.target == "gpu" and ccfg.head == "argmax":
        # Measured with ai-edge-litert 2.3 (benchmarks/RESULTS.md §11).
        log("note: LiteRT's GPU accelerator does not run the argmax head (TensorFlow's ARG_MAX "
            "writes int64): it and the ops next to it run on the CPU; --head softmax runs whole.")
    output = Path(output)
    if output.suffix != ".tflite":
        raise EdgesegError(f"-o {output}: name the output {output.stem}.tflite")
    model, cfg = load_model(model_path)
    if cfg.head == "upsampled" and ccfg.head == "logits":
        # Measured on a 128² realtime model: 97.5 % agreement, 1 point of mIoU (RESULTS §6e).
        log(f"note: {Path(model_path).name} was trained with its softmax at the 1/8 tap (head "
            "upsampled); the logits head resizes logits instead of probabilities, so class "
            "borders move a little (`edgeseg compare` says how much). For an exact "
            f"{'Edge TPU ' if ccfg.target == 'edgetpu' else ''}copy train with --head spatial.")
    calib = None
    if ccfg.mode == "int8":
        from edgeseg.convert.calibration import load_calibration

        calib = load_calibration(ccfg.calib, ccfg.calib_count, ccfg.seed, warn=log)
        log(f"calibrating on {len(calib.files)} images from {calib.folder}")
    source_cfg = cfg
    try:
        deploy, cfg = deployment_graph(model, cfg, ccfg, log)
    except EdgesegError as e:  # it sees the model, not its file: name the file here
        raise EdgesegError(f"{model_path}: {e}") from None
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
        if ccfg.mode == "int8" and ccfg.target == "cpu":
            from edgeseg.convert.xnnpack_rewrite import one_partition

            flat, _ = one_partition(flat)
    except EdgesegError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        # Keep the cause: `edgeseg --debug convert ...` prints it (it may be edgeseg's bug).
        raise EdgesegError(f"the TFLite converter failed for {model_path} ({first}); "
                           "`edgeseg --debug convert ...` shows the cause.") from e
    info: dict[str, Any] = {
        "edgeseg": cfg.to_dict(),
        "tflite": {
            **({"folded_normalization": {"mean": list(source_cfg.mean), "std": list(source_cfg.std)}}
               if cfg is not source_cfg else {}),
            "mode": ccfg.mode, "head": ccfg.head, "target": ccfg.target,
            "io": ccfg.io if ccfg.mode == "int8" else "float32",
            **tensor_info(flat),
            "calibration": calib.to_dict() if calib else None,
            "source": str(Path(model_path).resolve()),
            "convert": ccfg.to_dict(),
            "versions": _versions(),
        },
    }
    if cfg.task == "instance":  # which output is which head; "output" is the class scores'
        from edgeseg.convert.instance_layout import head_layout

        info["tflite"]["instance"] = layout = head_layout(flat, cfg)
        from edgeseg.config import read_sidecar

        grouping = ((read_sidecar(model_path) or {}).get("instance") or {}).get("grouping")
        if grouping:  # the centre threshold and window train tuned: the runtime reads them here
            layout["grouping"] = grouping
        info["tflite"]["output"] = layout["outputs"]["semantic"]
    from edgeseg.convert.confidence import confidence_reference
    from edgeseg.tflite.metadata import embed_metadata, mediapipe_blocker

    blocker = mediapipe_blocker(info)
    info["tflite"]["mediapipe_image_segmenter"] = blocker is None
    if blocker:
        log(f"note: no MediaPipe ImageSegmenter metadata: {blocker}")
    info["tflite"]["confidence"] = confidence_reference(flat, info, calib, log,
                                                        folder=ccfg.calib, seed=ccfg.seed)
    data = embed_metadata(flat, info)
    write_bytes(output, data)
    side = save_sidecar(output, info)  # names the model's hash: a stale pair is detected
    extra: tuple[Path, ...] = ()
    if ccfg.target == "edgetpu":
        extra = _edgetpu_step(output, info, log)
    size_kb = len(data) / 1024
    log(f"wrote {output} ({ccfg.mode}, {size_kb:,.0f} KiB) and {side.name}")
    return ConvertResult(output, side, info, time.monotonic() - t0, extra)


def _edgetpu_step(path: Path, info: dict[str, Any],
                  log: Callable[[str], None]) -> tuple[Path, ...]:
    """Compile for the Edge TPU when the compiler exists; otherwise write the pre-flight report."""
    from edgeseg.convert.edgetpu import compile_edgetpu, edgetpu_preflight

    compiled = compile_edgetpu(path, path.parent)
    if compiled is not None:
        # The compiler keeps neither the sidecar nor the appended zip: give it its own.
        side = save_sidecar(compiled, info)
        log(f"edgetpu_compiler wrote {compiled}")
        return (compiled, side)
    report = edgetpu_preflight(path)
    md, js = report.save(path.parent)
    log(f"edgetpu_compiler is not installed and was not run; pre-flight by Coral's published "
        f"rules: {report.summary()} -> {md}")
    return (md, js)
