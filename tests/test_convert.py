"""Conversion: quantized outputs against the float model that was actually trained."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import EdgesegError

pytestmark = pytest.mark.slow  # every test here trains (the fixture) or converts


def test_int8_and_fp16_segment_like_float(trained, converted, synth_data):
    from edgeseg.verify.compare import compare

    path, result = trained
    assert result.best_miou > 0.5  # a model that learned something, so agreement means something
    int8 = compare(path, converted["int8"], synth_data)
    assert int8.pixel_agreement >= 0.98, int8.to_dict()
    assert int8.miou_drop <= 1.0, int8.to_dict()
    assert int8.prob_max_error is not None and int8.prob_mean_error < 0.02
    fp16 = compare(path, converted["float16"], synth_data)
    assert fp16.pixel_agreement >= 0.995
    f32 = compare(path, converted["float32"], synth_data)
    assert f32.pixel_agreement >= 0.999 and abs(f32.miou_drop) < 0.1


def test_int8_file_is_small_and_takes_pixels(converted):
    ratio = converted["int8"].stat().st_size / converted["float32"].stat().st_size
    assert ratio <= 0.30
    side = json.loads(converted["int8"].with_name("tiny_int8.tflite.json").read_text())["tflite"]
    assert side["input"]["dtype"] == "uint8" and side["input"]["shape"] == [1, 64, 64, 3]
    # the uint8 input is exactly the pixel: scale 1/128, zero point 128
    assert side["input"]["scale"] == pytest.approx(1 / 128) and side["input"]["zero_point"] == 128
    assert side["output"]["shape"] == [1, 32, 32, 4]
    assert side["calibration"]["count"] == 100 and len(side["calibration"]["sha256"]) == 64


def test_metadata_is_embedded(converted):
    from edgeseg.tflite.metadata import read_standard_metadata

    meta = read_standard_metadata(converted["float32"])
    assert list(meta["labels"]) == ["dark", "red", "green", "blue"]
    assert list(meta["mean"]) == [128.0] * 3 and list(meta["std"]) == [128.0] * 3


def test_heads_agree_on_the_float_model(trained, synth_data, tmp_path):
    from edgeseg.convert.quantize import ConvertConfig, convert
    from edgeseg.data.dataset import list_pairs
    from edgeseg.data.readers import read_image
    from edgeseg.verify.predict import TFLitePredictor

    path, _ = trained
    rgb = [read_image(p) for p, _ in list_pairs(synth_data / "val")[:8]]
    masks = {}
    for head in ("softmax", "logits", "argmax"):
        out = convert(path, tmp_path / f"{head}.tflite", ConvertConfig(head=head), log=lambda s: None).path
        masks[head] = np.stack([ids for ids, _ in TFLitePredictor(out).predict(rgb)])
    assert (masks["softmax"] == masks["logits"]).mean() > 0.999
    assert (masks["softmax"] == masks["argmax"]).mean() > 0.999


def test_edgetpu_graph_has_no_tile_and_no_float_ops(trained, synth_data, tmp_path):
    from edgeseg.convert.quantize import ConvertConfig, convert
    from edgeseg.tflite.flatbuffer import read_tflite

    path, _ = trained
    r = convert(path, tmp_path / "tpu.tflite",
                ConvertConfig(target="edgetpu", calib=str(synth_data / "train"), calib_count=20),
                log=lambda s: None)
    m = read_tflite(r.path)
    ops = {op.name for op in m.ops}
    assert "TILE" not in ops and "RESIZE_NEAREST_NEIGHBOR" in ops
    float_tensors = [t.name for t in m.tensors if t.dtype == "float32"]
    assert not float_tensors
    assert any(p.name.endswith("_edgetpu_preflight.md") for p in r.extra_files)


def test_compare_gate_exit_codes(trained, converted, synth_data):
    path, _ = trained
    ok = CliRunner().invoke(app, ["compare", str(path), str(converted["int8"]), "--data", str(synth_data),
                                  "--max-miou-drop", "5", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output.strip().splitlines()[-1])["passed"] is True
    bad = CliRunner().invoke(app, ["compare", str(path), str(converted["int8"]), "--data", str(synth_data),
                                   "--max-miou-drop", "-100"])
    assert bad.exit_code == 1 and "FAIL" in bad.output and "--keep-float" in bad.output


@pytest.mark.parametrize("case", ["missing", "not_keras", "empty_calib", "broken_calib", "bad_flags"])
def test_convert_bad_input_is_a_clear_error(case, trained, tmp_path):
    import cv2

    path, _ = trained
    args = ["convert", str(path), "-o", str(tmp_path / "out.tflite")]
    needle = {"missing": "no such model", "not_keras": "not a readable Keras model",
              "empty_calib": "has no images (.jpg/.jpeg/.png/.bmp/.webp/.tif/.tiff)",
              "broken_calib": "g.png is empty (0 bytes)",
              "bad_flags": "pick one"}[case]
    if case == "missing":
        args[1] = str(tmp_path / "nope.keras")
    elif case == "not_keras":
        fake = tmp_path / "fake.keras"
        fake.write_text("not a model")
        args[1] = str(fake)
    elif case == "empty_calib":
        (tmp_path / "empty").mkdir()
        args += ["--int8", "--calib", str(tmp_path / "empty")]
    elif case == "broken_calib":  # grey/RGBA images are converted (tests/test_data_pipeline.py)
        (tmp_path / "broken").mkdir()
        cv2.imwrite(str(tmp_path / "broken" / "a.png"), np.zeros((64, 64, 3), np.uint8))
        (tmp_path / "broken" / "g.png").write_bytes(b"")
        args += ["--int8", "--calib", str(tmp_path / "broken")]
    else:
        args += ["--int8", "--fp16"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out.tflite").exists()


def test_config_errors():
    from edgeseg.convert.quantize import ConvertConfig

    with pytest.raises(EdgesegError, match="edgetpu"):
        ConvertConfig(mode="float16", target="edgetpu").resolved()
    assert ConvertConfig(target="gpu").resolved().mode == "float16"
    tpu = ConvertConfig(target="edgetpu").resolved()
    assert (tpu.mode, tpu.io, tpu.head, tpu.upsampling) == ("int8", "uint8", "logits", "resize")
    assert ConvertConfig().resolved().upsampling == "concat_reshape"  # XNNPACK runs it
    with pytest.raises(EdgesegError, match="drop --upsampling tile"):
        ConvertConfig(target="edgetpu", upsampling="tile").resolved()
