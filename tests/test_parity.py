"""int8 against float on trained models, through the runtime's Segmenter (the Pi's path)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app

pytestmark = pytest.mark.slow  # trains (the fixtures) and converts


def convert_quiet(src: Path, out: Path, **kw: object) -> Path:
    from edgeseg.convert.quantize import ConvertConfig, convert

    return convert(src, out, ConvertConfig(**kw), log=lambda s: None).path


def test_int8_agrees_with_float_on_each_shipped_configuration(shipped, synth_data: Path) -> None:
    from edgeseg.verify.compare import compare

    name, path, int8 = shipped
    rep = compare(path, int8, synth_data)
    print(f"{name}: int8 agreement {rep.pixel_agreement:.4f}, float mIoU "
          f"{rep.float_metrics.mean_iou:.3f}, drop {rep.miou_drop:+.2f} points")
    assert rep.pixel_agreement >= 0.98, rep.to_dict()
    assert rep.miou_drop <= 1.0 and rep.passes(1.0) and not rep.passes(rep.miou_drop - 0.01)


def test_edgetpu_target_file_segments_like_float(trained, synth_data: Path,
                                                 tmp_path: Path) -> None:
    from edgeseg.runtime import Segmenter
    from edgeseg.verify.compare import compare

    path, _ = trained
    tpu = convert_quiet(path, tmp_path / "tpu.tflite", target="edgetpu",
                        calib=str(synth_data / "train"), calib_count=100)
    seg = Segmenter(tpu)
    assert seg.describe()["input_dtype"] == "uint8" and seg.feeds_pixels
    rep = compare(path, tpu, synth_data)
    assert rep.pixel_agreement >= 0.98 and rep.miou_drop <= 1.0, rep.to_dict()


@pytest.mark.parametrize("shipped", ["realtime"], indirect=True)  # seed: the test above
def test_realtime_edgetpu_file_maps_whole_and_segments_like_float(shipped, synth_data: Path,
                                                                  tmp_path: Path) -> None:
    """The fast decoder's bilinear resize as RESIZE_BILINEAR v2 (no half-pixel centres)."""
    from edgeseg.convert.edgetpu import edgetpu_preflight
    from edgeseg.convert.quantize import ConvertConfig, convert
    from edgeseg.model.build import build_model, copy_weights_by_name
    from edgeseg.model.io import load_model, save_model
    from edgeseg.tflite.flatbuffer import read_tflite
    from edgeseg.verify.compare import compare

    name, path, _ = shipped
    assert name == "realtime"
    said: list[str] = []
    tpu = convert(path, tmp_path / "rt_tpu.tflite", ConvertConfig(
        target="edgetpu", calib=str(synth_data / "train"), calib_count=100), log=said.append).path
    resize = [op for op in read_tflite(tpu).ops if op.name == "RESIZE_BILINEAR"]
    assert [(op.version, op.options["half_pixel_centers"]) for op in resize] == [(2, False)]
    report = edgetpu_preflight(tpu)
    assert report.fully_mapped, report.summary()
    # A softmax at the 1/8 tap (--head upsampled) the Edge TPU does not map: the copy resizes
    # logits, and convert says so. Against the same weights with the softmax after the resize
    # (the function the copy computes) it must agree as any int8 copy does.
    model, cfg = load_model(path)
    ref = path
    assert any("head upsampled" in line for line in said) == (cfg.head == "upsampled"), said
    if cfg.head == "upsampled":
        spatial = cfg.with_(head="spatial")
        net = build_model(spatial)
        copy_weights_by_name(model, net)
        ref = save_model(net, spatial, tmp_path / "rt_spatial.keras")
    rep = compare(ref, tpu, synth_data)
    print(f"realtime edgetpu: int8 agreement {rep.pixel_agreement:.4f}, "
          f"drop {rep.miou_drop:+.2f} points")
    assert rep.pixel_agreement >= 0.98 and rep.miou_drop <= 1.0, rep.to_dict()


@pytest.mark.parametrize("io", ["int8", "float32"])
def test_int8_model_with_other_io_types(trained, synth_data: Path, tmp_path: Path,
                                        io: str) -> None:
    from edgeseg.runtime import Segmenter
    from edgeseg.verify.compare import compare

    path, _ = trained
    out = convert_quiet(path, tmp_path / f"io_{io}.tflite", mode="int8", io=io,
                        calib=str(synth_data / "train"), calib_count=100)
    d = Segmenter(out).describe()
    assert (d["input_dtype"], d["output_dtype"]) == (io, io)
    rep = compare(path, out, synth_data)
    assert rep.pixel_agreement >= 0.98 and rep.miou_drop <= 1.0, rep.to_dict()


def test_keep_float_leaves_the_layer_in_float_and_still_agrees(trained, synth_data: Path,
                                                               tmp_path: Path) -> None:
    from edgeseg.tflite.flatbuffer import read_tflite
    from edgeseg.verify.compare import compare

    path, _ = trained
    out = convert_quiet(path, tmp_path / "keep.tflite", mode="int8", keep_float=("dec_conv_3",),
                        calib=str(synth_data / "train"), calib_count=50)
    m = read_tflite(out)
    layer = re.compile(r"/dec_conv_3(_\d+)?/")  # Keras may suffix the layer's scope: _1
    kept = [op for op in m.ops if op.name == "CONV_2D"
            and any(layer.search(m.tensors[t].name) for t in op.outputs)]  # the last stage
    assert kept and all(m.tensors[t].dtype == "float32" for op in kept for t in op.outputs)
    others = [op for op in m.ops if op.name == "CONV_2D" and op not in kept]
    assert others and all(m.tensors[op.outputs[0]].dtype == "int8" for op in others)
    rep = compare(path, out, synth_data)
    assert rep.pixel_agreement >= 0.98, rep.to_dict()


def test_compare_layers_ranks_the_models_own_layers(trained, converted, synth_data: Path) -> None:
    from edgeseg.model.io import load_model

    path, _ = trained
    r = CliRunner().invoke(app, ["compare", str(path), str(converted["int8"]), "--data",
                                 str(synth_data), "--layers", "--json", "--limit", "8"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    rows = out["layers"]
    # The calibration set the .tflite records (train/, 100 images), not one guessed from --data.
    assert out["layers_calibration"] == (f"calibration: 100 images of {synth_data / 'train'} "
                                         "(seed 0), as recorded in tiny_int8.tflite")
    model, _ = load_model(path)
    names = {layer.name for layer in model.layers}
    assert 5 <= len(rows) <= 15
    assert sum(row["layer"] in names for row in rows) >= len(rows) - 1  # real layer names
    errs = [row["rmse_over_scale"] for row in rows]
    assert errs == sorted(errs, reverse=True) and errs[0] > 0


def test_debug_prints_the_cause_a_converter_failure_wraps(trained, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import edgeseg.convert.quantize as q

    class Broken:
        def convert(self) -> bytes:
            raise KeyError("edgeseg-internal-bug")

    monkeypatch.setattr(q, "_converter", lambda *a, **k: Broken())
    path, _ = trained
    args = ["convert", str(path), "-o", str(tmp_path / "x.tflite")]
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 2 and "the TFLite converter failed" in plain.output
    assert "edgeseg-internal-bug" in plain.output and "Traceback" not in plain.output
    debug = CliRunner().invoke(app, ["--debug", *args])
    assert debug.exit_code == 2 and "Traceback" in debug.output
    assert "KeyError: 'edgeseg-internal-bug'" in debug.output
