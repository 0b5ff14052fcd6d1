"""Per-layer quantization error of an int8 .tflite, re-made with the settings the file records."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

from edgeseg.convert.calibration import DEFAULT_DIR, CalibrationSet, load_calibration
from edgeseg.convert.quantize import ConvertConfig
from edgeseg.errors import EdgesegError


@dataclass(frozen=True)
class LayerErrorPlan:
    """What re-makes the int8 conversion a .tflite came from.

    Attributes:
        model: The int8 .tflite whose layers are ranked.
        keras: Its float .keras source.
        convert: The conversion settings the .tflite records (head, I/O types,
            upsampling, target, layers kept in float; weights are per-channel, the
            TFLite converter's only int8 scheme for convolutions).
        calibration: The calibration set it records, re-sampled and checked by hash.
    """

    model: Path
    keras: Path
    convert: ConvertConfig
    calibration: CalibrationSet

    def describe(self) -> str:
        """``calibration: 200 images of /data/calib (seed 0), as recorded in m.tflite``."""
        return (f"calibration: {len(self.calibration.files)} images of {self.calibration.folder} "
                f"(seed {self.convert.seed}), as recorded in {self.model.name}")


def plan_layer_errors(model: str | Path, keras: Optional[str | Path] = None) -> LayerErrorPlan:
    """Read and check what ``model`` records about its conversion; nothing is converted yet.

    Args:
        model: An int8 .tflite written by ``edgeseg convert --int8``.
        keras: Its float .keras source (None: the source path the .tflite records).

    Raises:
        EdgesegError: The file records no conversion settings or calibration set (a
            third-party model, or one from an older edgeseg), is not int8, or its source
            or calibration images are gone or changed; each names the fix.
    """
    from edgeseg.tflite import read_description

    model = Path(model)
    meta = read_description(model)
    tfl = (meta.description or {}).get("tflite") or {}
    redo = f"re-convert it (edgeseg convert MODEL.keras --int8 -o {model.name}) and compare again"
    if not tfl:
        raise EdgesegError(f"{model} does not record how it was converted (no edgeseg "
                           "description): per-layer errors re-make its int8 conversion, so they "
                           "need a .tflite from `edgeseg convert --int8`.")
    if tfl.get("mode") != "int8":
        raise EdgesegError(f"{model} is a {tfl.get('mode', '?')} model: per-layer quantization "
                           "errors are for int8 models (edgeseg convert --int8).")
    recorded, calib = tfl.get("convert"), tfl.get("calibration")
    if not isinstance(recorded, dict) or not isinstance(calib, dict) or "folder" not in calib:
        raise EdgesegError(f"{model} does not record its conversion settings and calibration "
                           f"set (an older edgeseg wrote it): {redo}.")
    known = {f.name for f in fields(ConvertConfig)}
    settings = {k: tuple(v) if k == "keep_float" else v for k, v in recorded.items() if k in known}
    ccfg = ConvertConfig(**settings).resolved()
    if ccfg.keep_float:
        # TFLite's QuantizationDebugger cannot re-run a selectively quantized graph (its int8
        # inputs refuse the float calibration batches).
        raise EdgesegError(f"{model.name} was converted with --keep-float {','.join(ccfg.keep_float)}: "
                           "per-layer errors need a fully int8 file; run `edgeseg compare --layers` "
                           "on a conversion without --keep-float to choose the layers to keep.")
    source = Path(keras) if keras is not None else Path(str(tfl.get("source", "")))
    if source.suffix != ".keras" or not source.is_file():
        raise EdgesegError(f"per-layer errors need the float .keras model {model.name} was "
                           f"converted from ({tfl.get('source') or 'not recorded'}); pass it as "
                           "FLOAT.")
    count = int(calib.get("count") or ccfg.calib_count)
    folder = Path(calib["folder"])
    if not folder.is_dir() and calib.get("sha256") and folder.name == DEFAULT_DIR.name:
        # The default set moved (edgeseg/assets/calibration -> calibration/, or another
        # install): the same images, by hash, are the same set.
        moved = load_calibration(None, count, ccfg.seed, warn=lambda s: None)
        folder = DEFAULT_DIR if moved.sha256 == calib["sha256"] else folder
    try:
        calibration = load_calibration(folder, count, ccfg.seed, warn=lambda s: None)
    except EdgesegError as e:
        raise EdgesegError(f"the calibration set {model.name} records ({calib['folder']}) cannot "
                           f"be read ({e}); restore it or {redo}.") from None
    if calib.get("sha256") and calibration.sha256 != calib["sha256"]:
        raise EdgesegError(f"the calibration images in {calib['folder']} changed since {model.name} "
                           f"was converted (their hash differs): the errors would describe "
                           f"another graph; restore them or {redo}.")
    return LayerErrorPlan(model, source, ccfg, calibration)


def layer_errors(plan: LayerErrorPlan, top: int = 15) -> list[dict[str, Any]]:
    """Rank the int8 graph's tensors by quantization error relative to their scale.

    Re-makes the conversion ``plan`` describes (same graph, settings and calibration
    images) and runs TFLite's QuantizationDebugger on it, with the calibration images
    as the debug set: RMSE/scale ≈ 0.3 is the floor of rounding noise (uniform error
    over one step: 1/√12 ≈ 0.29); much larger means that layer's range is hurting.

    Returns:
        Up to ``top`` rows, worst first: ``layer`` (the Keras layer name), ``op``,
        ``rmse_over_scale``, ``max_abs_error`` and ``scale`` (float units).
    """
    names, stats = _layer_statistics(plan)
    rows = []
    for r in stats:
        scale = float(r["scale"]) or 1.0
        rmse = float(r["mean_squared_error"]) ** 0.5
        tensor = r["tensor_name"]
        layer = next((n for n in sorted(names, key=len, reverse=True) if n in tensor), tensor[:60])
        rows.append({"layer": layer, "op": r["op_name"], "rmse_over_scale": round(rmse / scale, 4),
                     "max_abs_error": round(float(r["max_abs_error"]), 6), "scale": scale})
    rows.sort(key=lambda d: d["rmse_over_scale"], reverse=True)
    return rows[:top]


def _layer_statistics(plan: LayerErrorPlan) -> tuple[list[str], list[dict[str, str]]]:
    import csv
    import io

    from edgeseg.convert.quantize import (
        _converter,
        _op_outputs_for,
        deployment_graph,
        quantization_debugger,
    )
    from edgeseg.deps import quiet_tensorflow
    from edgeseg.model.io import load_model

    model, cfg = load_model(plan.keras)
    deploy, cfg = deployment_graph(model, cfg, plan.convert)
    conv = _converter(deploy, cfg, plan.convert, plan.calibration, None)
    keep = tuple(_op_outputs_for(deploy, plan.convert.keep_float)) if plan.convert.keep_float else ()
    with quiet_tensorflow():
        debugger = quantization_debugger(conv, plan.calibration, cfg, keep)
        debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    buf.seek(0)
    return [layer.name for layer in deploy.layers], list(csv.DictReader(buf))
