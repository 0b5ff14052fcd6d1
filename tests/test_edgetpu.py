"""Each target's upsampling, the Edge TPU pre-flight's rules, and the files read back op by op."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tiny_tflite as tt
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.convert.edgetpu import edgetpu_preflight
from edgeseg.tflite.flatbuffer import read_tflite

# The versions tensorflow/lite/tools/versioning/op_version.cc gives these ops with int8
# tensors and no newer feature (uint8 -> int8 QUANTIZE is version 1), written out here
# rather than read from the pre-flight's table so that a wrong table fails the test.
INT8_VERSIONS = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "PAD": 2, "QUANTIZE": 1, "DEQUANTIZE": 1,
                 "RESIZE_NEAREST_NEIGHBOR": 2, "CONCATENATION": 2, "RESHAPE": 1, "SOFTMAX": 2}
NEAREST_V2 = {"align_corners": False, "half_pixel_centers": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("tensorflow")
    return tt.build_models(tmp_path_factory.getbasetemp() / "convert_models")


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a .tflite with ``edit(model: ModelT)`` applied (the schema's object API)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    edit(schema, model)
    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), b"TFL3")
    dst.write_bytes(bytes(b.Output()))
    return dst


def _ops_named(schema, model, name):
    codes = [i for i, c in enumerate(model.operatorCodes)
             if max(c.builtinCode, c.deprecatedBuiltinCode) == getattr(schema.BuiltinOperator, name)]
    return codes, [op for op in model.subgraphs[0].operators if op.opcodeIndex in codes]


def _resize_v3(schema, model):
    """What Keras' Resizing(nearest) writes: half_pixel_centers=True, version 3."""
    codes, ops = _ops_named(schema, model, "RESIZE_NEAREST_NEIGHBOR")
    for i in codes:
        model.operatorCodes[i].version = 3
    for op in ops:
        op.builtinOptions.halfPixelCenters = True


def test_deployment_upsamplings_compute_the_same_values():
    """tile, resize (v2, no half-pixel centres) and concat_reshape: the same float logits."""
    pytest.importorskip("tensorflow")
    from edgeseg.config import ModelConfig
    from edgeseg.model.build import build_model, deployment_copy

    cfg = ModelConfig(n_classes=3, height=64, width=96, alpha=0.25)
    model = build_model(cfg)
    rng = np.random.default_rng(66)
    x = rng.normal(size=(1, 64, 96, 3)).astype("float32")
    outs = {k: np.asarray(deployment_copy(model, cfg, "logits", k)(x, training=False))
            for k in ("tile", "resize", "concat_reshape")}
    assert outs["tile"].shape == (1, 32, 48, 3)
    np.testing.assert_array_equal(outs["resize"], outs["tile"])
    np.testing.assert_array_equal(outs["concat_reshape"], outs["tile"])


def test_fast_decoder_edgetpu_resize_computes_keras_values():
    """The realtime preset's Edge TPU copy (RESIZE_BILINEAR v2 ×2N, then every 2nd sample)
    gives Keras' half-pixel-centre bilinear logits."""
    pytest.importorskip("tensorflow")
    from edgeseg.config import ModelConfig, preset
    from edgeseg.model.build import build_model, deployment_copy

    cfg = ModelConfig(n_classes=3, height=64, width=96, **{**preset("realtime"), "alpha": 0.25})
    model = build_model(cfg)
    x = np.random.default_rng(7).normal(size=(1, 64, 96, 3)).astype("float32")
    tpu = deployment_copy(model, cfg, "logits", "resize", edgetpu=True)
    keras_out = np.asarray(deployment_copy(model, cfg, "logits", "resize")(x))
    got = np.asarray(tpu(x))
    assert got.shape == keras_out.shape == (1, 32, 48, 3)
    assert "seg_upsample" in [layer.name for layer in tpu.layers]
    np.testing.assert_allclose(got, keras_out, rtol=0, atol=1e-6 * np.abs(keras_out).max())


def test_keras_resizing_v3_is_where_the_preflight_stops(tiny):
    report = edgetpu_preflight(tiny["int8_keras_resize_logits"])
    stop = report.ops[report.fallback_at].support
    assert stop.op == "RESIZE_NEAREST_NEIGHBOR" and stop.version == 3
    assert stop.options["half_pixel_centers"] is True
    assert "version 3 > 2" in stop.reason and "half_pixel_centers" in stop.reason
    assert not report.fully_mapped and "falls back to the CPU" in report.summary()
    # the same graph with the project's resize maps whole
    ok = edgetpu_preflight(tiny["int8_resize_logits"])
    resize = [p.support for p in ok.ops if p.support.op == "RESIZE_NEAREST_NEIGHBOR"]
    assert ok.fully_mapped and [(s.version, s.options) for s in resize] == [(2, NEAREST_V2)]


@pytest.mark.parametrize("case", ["dilation", "dynamic", "version", "align_corners", "rank"])
def test_preflight_reads_versions_options_and_shapes(tiny, tmp_path, case):
    """One broken rule in an otherwise mappable file: the op it hits, and why."""

    def edit(schema, model):
        sg = model.subgraphs[0]
        conv_codes, convs = _ops_named(schema, model, "CONV_2D")
        if case == "dilation":
            convs[1].builtinOptions.dilationHFactor = 2
        elif case == "dynamic":
            sg.tensors[sg.inputs[0]].shapeSignature = [-1, 32, 32, 3]
        elif case == "version":
            model.operatorCodes[conv_codes[0]].version = 4  # int16 activations
        elif case == "align_corners":
            _, (resize,) = _ops_named(schema, model, "RESIZE_NEAREST_NEIGHBOR")
            resize.builtinOptions.alignCorners = True
        else:
            out = sg.tensors[convs[2].outputs[0]]
            out.shape = out.shapeSignature = [2, 1, 16, 16, 8]

    path = _rewrite(tiny["int8_resize_logits"], tmp_path / f"{case}.tflite", edit)
    report = edgetpu_preflight(path)
    stop = report.ops[report.fallback_at].support if report.fallback_at is not None else None
    want = {"dilation": ("CONV_2D", "dilation 2×1"), "version": ("CONV_2D", "version 4 > 3"),
            "align_corners": ("RESIZE_NEAREST_NEIGHBOR", "align_corners=True"),
            "rank": ("CONV_2D", "5-D tensor [2, 1, 16, 16, 8]")}
    if case == "dynamic":  # the input QUANTIZE reads the -1 tensor: nothing maps before it
        first = report.ops[0].support
        assert first.op == "QUANTIZE" and not first.supported and "dynamic shape" in first.reason
        return
    assert stop is not None and (stop.op, stop.supported) == (want[case][0], False)
    assert want[case][1] in stop.reason, stop.reason
    assert all(p.device == "CPU" for p in report.ops[report.fallback_at:])


@pytest.mark.parametrize("op, version, top", [("RESIZE_NEAREST_NEIGHBOR", 3, 2),
                                               ("CONV_2D", 4, 3)])
def test_inspect_says_the_op_its_version_the_highest_mapped_and_the_fix(tiny, tmp_path, op,
                                                                        version, top):
    def edit(schema, model):
        codes, _ = _ops_named(schema, model, op)
        for i in codes:
            model.operatorCodes[i].version = version

    path = _rewrite(tiny["int8_resize_logits"], tmp_path / "v.tflite", edit)
    r = CliRunner().invoke(app, ["inspect", str(path), "--ops"], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())  # the table may wrap a cell
    want = (f"op version {version} > {top} (the Edge TPU compiler maps {op} up to version "
            f"{top} [ver]; later versions add")
    assert want in text, text
    fix = "--target edgetpu" if op.startswith("RESIZE") else "8-bit (int8/uint8) tensors"
    assert "); fix: " in text and fix in text
    assert "(:" not in text and "()" not in text  # no field lost to Rich markup


@pytest.mark.slow
def test_edgetpu_file_obeys_the_rules_op_by_op(trained, synth_data, tmp_path):
    """Every op's version and options read back from a converted file, checked independently."""
    r = CliRunner().invoke(app, ["convert", str(trained[0]), "--target", "edgetpu", "--calib",
                                 str(synth_data / "train"), "--calib-count", "20",
                                 "-o", str(tmp_path / "tpu.tflite")])
    assert r.exit_code == 0, r.output
    assert "was not run" in r.output and "all" in r.output
    m = read_tflite(tmp_path / "tpu.tflite")
    names = [op.name for op in m.ops]
    assert names.count("RESIZE_NEAREST_NEIGHBOR") == 2  # encoder level 2: two ×2 stages
    for op in m.ops:
        assert op.version == INT8_VERSIONS[op.name], (op.name, op.version)
        if op.name == "RESIZE_NEAREST_NEIGHBOR":
            assert op.options == NEAREST_V2
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            assert op.options["dilation_w_factor"] == op.options["dilation_h_factor"] == 1
        for t in (m.tensors[i] for i in op.inputs + op.outputs if not m.tensors[i].constant):
            assert t.dtype in ("int8", "uint8") and t.shape[0] == 1 and min(t.shape) > 0
    report = json.loads((tmp_path / "tpu_edgetpu_preflight.json").read_text())
    assert report["edgetpu_ops"] == len(names) and report["compiler_run"] is False
    assert [(o["op"], o["version"]) for o in report["ops"]] == [(op.name, op.version)
                                                                   for op in m.ops]
    md = (tmp_path / "tpu_edgetpu_preflight.md").read_text()
    assert "was **not** run" in md and "| RESIZE_NEAREST_NEIGHBOR | 2 | align_corners=False, " \
        "half_pixel_centers=False | yes | Edge TPU |" in md


@pytest.mark.slow
def test_cpu_int8_file_is_one_xnnpack_partition(converted):
    """The CPU target's int8 file: no builtin-kernel op between the first and last delegated op."""
    from ai_edge_litert.interpreter import Interpreter

    r = CliRunner().invoke(app, ["inspect", str(converted["int8"]), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    xnn = info["targets"]["xnnpack"]
    assert xnn["partitions"] == 1
    ops = xnn["ops"]
    names = [o["op"] for o in ops]  # two ×2 stages, each 2 CONCATENATION + 2 RESHAPE
    assert names.count("CONCATENATION") == names.count("RESHAPE") == 4
    assert "RESIZE_NEAREST_NEIGHBOR" not in names
    for o in ops:
        assert o["version"] == INT8_VERSIONS[o["op"]], o
    it = Interpreter(model_path=str(converted["int8"]))
    it.allocate_tensors()  # applies XNNPACK: one DELEGATE node per partition
    assert sum(d["op_name"] == "DELEGATE" for d in it._get_ops_details()) == 1


@pytest.mark.slow
def test_upsampling_choice_does_not_change_the_masks(trained, synth_data, tmp_path):
    """Same calibration, both deployment lowerings, and the old half-pixel flag: identical masks.

    (``tile``, the training graph's lowering, is checked against them in float above.)
    """
    from edgeseg.convert.quantize import ConvertConfig, convert
    from edgeseg.data.dataset import list_pairs
    from edgeseg.data.readers import read_image
    from edgeseg.runtime.segmenter import Segmenter

    paths = {}
    for kind in ("resize", "concat_reshape"):
        ccfg = ConvertConfig(mode="int8", head="logits", upsampling=kind,
                             calib=str(synth_data / "train"), calib_count=20)
        paths[kind] = convert(trained[0], tmp_path / f"{kind}.tflite", ccfg, log=lambda s: None).path
    paths["resize_v3"] = _rewrite(paths["resize"], tmp_path / "resize_v3.tflite", _resize_v3)
    assert {op.version for op in read_tflite(paths["resize_v3"]).ops
            if op.name == "RESIZE_NEAREST_NEIGHBOR"} == {3}
    frames = [read_image(p) for p, _ in list_pairs(synth_data / "val")[:8]]
    masks = {k: np.stack([Segmenter(p, threads=1, rgb=True).segment(f).mask for f in frames])
             for k, p in paths.items()}
    assert len(np.unique(masks["resize"])) >= 3  # a trained model: several classes per batch
    for k in ("concat_reshape", "resize_v3"):
        np.testing.assert_array_equal(masks[k], masks["resize"], err_msg=k)
