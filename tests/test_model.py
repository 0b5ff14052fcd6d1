"""The mobilenet_segnet builder: exact seed figures, options, weights by name, round-trip."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeseg.config import ModelConfig
from edgeseg.errors import EdgesegError


def _build(**kw):
    from edgeseg.deps import keras

    keras()
    from edgeseg.model.build import build_model

    return build_model(ModelConfig(**kw))


def test_seed_model_matches_published_summary():
    from edgeseg.model.build import count_params

    m = _build(n_classes=2, height=416, width=416)
    assert count_params(m) == (5_541_378, 5_524_738, 16_640)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in m.layers}
    assert shapes["conv1"] == (208, 208, 32)
    assert shapes["conv_pw_11_relu"] == (26, 26, 512)
    assert shapes["dec_conv_1"] == (26, 26, 512)
    assert shapes["dec_conv_4"] == (208, 208, 64)  # the conv after the last upsampling
    assert shapes["seg_logits"] == (208, 208, 2)
    assert m.output_shape == (None, 43264, 2)
    assert "conv_pw_12" not in shapes  # blocks past the tap are not in the graph
    # ReLU6 as layers, no Lambda: the file loads in safe mode anywhere
    assert not any(type(layer).__name__ == "Lambda" for layer in m.layers)
    assert {type(layer).__name__ for layer in m.layers if "relu" in layer.name} == {"ReLU"}


@pytest.mark.parametrize("h,w", [(96, 160), (64, 64), (128, 96)])
def test_non_square_sizes(h, w):
    m = _build(n_classes=3, height=h, width=w, alpha=0.25)
    assert m.output_shape == (None, (h // 2) * (w // 2), 3)
    s = _build(n_classes=3, height=h, width=w, alpha=0.25, head="spatial")
    assert s.output_shape == (None, h // 2, w // 2, 3)


@pytest.mark.parametrize("kw,needle", [
    ({"height": 100}, "multiple of 32"), ({"width": 16}, "multiple of 32"),
    ({"alpha": 0.3}, "--alpha"), ({"encoder_level": 5}, "--encoder-level"),
    ({"head": "round"}, "--head"), ({"n_classes": 1}, "at least 2"),
    ({"head": "upsampled", "decoder": "seed"}, "--head upsampled needs a fast decoder"),
    ({"labels": ("a",), "n_classes": 2}, "labels"),
])
def test_bad_config_is_a_clear_error(kw, needle):
    with pytest.raises(EdgesegError, match=needle.replace("-", r"\-")):
        ModelConfig(**kw)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.75, 1.0])
def test_alpha_scales_the_encoder(alpha):
    m = _build(n_classes=2, height=64, width=64, alpha=alpha)
    assert m.get_layer("conv1").filters == int(32 * alpha)
    assert m.get_layer("conv_pw_11").filters == int(512 * alpha)


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_encoder_level_keeps_output_at_half_size(level):
    m = _build(n_classes=2, height=128, width=64, alpha=0.25, encoder_level=level, head="spatial")
    assert m.output_shape == (None, 64, 32, 2)
    ups = [layer for layer in m.layers if layer.name.startswith("dec_up_")]
    assert len(ups) == level


def test_lite_decoder_costs_far_less():
    from edgeseg.model.macs import count_macs

    seed = count_macs(_build(n_classes=4, height=128, width=128, alpha=0.5))
    lite = count_macs(_build(n_classes=4, height=128, width=128, alpha=0.5, decoder="lite",
                             decoder_width=0.5))
    assert lite["decoder"] * 4 <= seed["decoder"]
    assert lite["encoder"] == seed["encoder"]


def test_weights_load_by_name_from_a_keras_mobilenet_h5(tmp_path):
    from edgeseg.deps import keras
    from edgeseg.model.weights import load_backbone_weights

    k = keras()
    net = k.applications.MobileNet(input_shape=(128, 128, 3), alpha=0.25, include_top=False,
                                   weights=None)
    h5 = tmp_path / "mobilenet_2_5_128_tf_no_top.h5"
    net.save(h5)  # the by-name HDF5 layout of the published weight files
    cfg = ModelConfig(n_classes=3, height=64, width=64, alpha=0.25)
    m = _build(**{k_: getattr(cfg, k_) for k_ in ("n_classes", "height", "width", "alpha")})
    rep = load_backbone_weights(m, str(h5), cfg)
    # conv1 + bn, then 11 blocks x (dw, dw_bn, pw, pw_bn) up to conv_pw_11
    assert len(rep.matched) == 2 + 11 * 4
    for name in ("conv1", "conv_dw_7", "conv_pw_11_bn"):
        for a, b in zip(m.get_layer(name).get_weights(), net.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    # a model of another width matches nothing -> clear error
    wide = ModelConfig(n_classes=3, height=64, width=64, alpha=1.0)
    with pytest.raises(EdgesegError, match="no layer"):
        load_backbone_weights(_build(n_classes=3, height=64, width=64, alpha=1.0), str(h5), wide)
    # Keras 3 .weights.h5 stores weights by position: refused with the reason
    w3 = tmp_path / "x.weights.h5"
    net.save_weights(w3)
    with pytest.raises(EdgesegError, match="by layer name"):
        load_backbone_weights(m, str(w3), cfg)
    with pytest.raises(EdgesegError, match="no such file"):
        load_backbone_weights(m, str(tmp_path / "nope.h5"), cfg)


def test_keras_file_round_trip_in_safe_mode(tmp_path):
    from edgeseg.deps import keras
    from edgeseg.model.io import build_and_save

    cfg = ModelConfig(n_classes=3, height=64, width=96, alpha=0.25, labels=("bg", "a", "b"))
    model, _ = build_and_save(cfg, tmp_path / "m.keras")
    loaded = keras().models.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(66).normal(size=(1, 64, 96, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-5)
    side = json.loads((tmp_path / "m.keras.json").read_text())["edgeseg"]
    assert side["labels"] == ["bg", "a", "b"] and side["alpha"] == 0.25
    assert side["preprocessing"]["mean"] == [128.0] * 3 and side["output_size"] == [32, 48]


def test_deployment_copy_has_4d_heads_that_agree():
    from edgeseg.model.build import deployment_copy

    cfg = ModelConfig(n_classes=3, height=64, width=64, alpha=0.25)
    m = _build(n_classes=3, height=64, width=64, alpha=0.25)
    rng = np.random.default_rng(66)
    for layer in m.layers:  # random weights everywhere, so classes are not tied
        layer.set_weights([np.abs(rng.normal(1, 0.1, w.shape)) if "variance" in w.path else
                           rng.normal(0, 0.3, w.shape) for w in layer.weights])
    x = rng.normal(size=(1, 64, 64, 3)).astype("float32")
    flat = np.asarray(m(x, training=False)).reshape(1, 32, 32, 3)
    # training=False matters: Keras 3 runs BatchNorm in training mode by default in a
    # model that contains a Resizing layer (the converter passes training=False too).
    outs = {h: np.asarray(deployment_copy(m, cfg, h, resize)(x, training=False))
            for h, resize in (("softmax", True), ("logits", False), ("argmax", True))}
    assert outs["softmax"].shape == (1, 32, 32, 3) and outs["argmax"].shape == (1, 32, 32, 1)
    np.testing.assert_allclose(outs["softmax"], flat, atol=1e-5)
    am = flat.argmax(-1)
    top2 = np.sort(flat, axis=-1)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 1e-6  # an untrained model has float ties
    assert clear.mean() > 0.5
    assert (outs["logits"].argmax(-1) == am)[clear].all()
    assert (outs["argmax"][..., 0] == am)[clear].all() and outs["argmax"].dtype == np.uint8


def test_cli_build_prints_params_and_rejects_bad_size(tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    r = CliRunner().invoke(app, ["build", "--classes", "2", "--height", "64", "--width", "96",
                                 "--alpha", "0.25", "--labels", "bg,fg", "-o", str(tmp_path / "m.keras")])
    assert r.exit_code == 0, r.output
    assert "parameters" in r.output and (tmp_path / "m.keras").exists()
    r = CliRunner().invoke(app, ["build", "--height", "100", "-o", str(tmp_path / "x.keras")])
    assert r.exit_code == 2 and "multiple of 32" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.keras").exists()


BLOCK_TF = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, _Block())
"""


@pytest.mark.parametrize("code", [
    "import edgeseg, edgeseg.config, edgeseg.preprocess, edgeseg.verify.metrics",
    "import edgeseg.runtime",
    "from edgeseg.cli import app; from typer.testing import CliRunner; "
    "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output",
    "from edgeseg.cli import app; from typer.testing import CliRunner; "
    "r = CliRunner().invoke(app, ['build', '-o', '/tmp/x.keras']); "
    "assert r.exit_code == 2 and 'edgeseg[full]' in r.output, r.output",
])
def test_imports_work_without_tensorflow(code):
    proc = subprocess.run([sys.executable, "-c", BLOCK_TF + code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("preset,extra", [
    ("seed", {}), ("realtime", {}), ("realtime", {"decoder": "lite", "decoder_width": 0.25, "head": "spatial"}),
    ("seed", {"encoder_level": 4, "head": "spatial"}), ("realtime", {"encoder_level": 1}),
    ("realtime", {"stem": "mobilenet", "decoder_width": 0.5}),
    ("realtime", {"decoder": "fast_dw", "decoder_width": 1.0}), ("seed", {"stem": "lean"}),
    ("realtime", {"head": "upsampled"}), ("realtime", {"head": "spatial"}),
])
def test_a_keras_file_without_its_sidecar_loads_with_its_own_config(tmp_path, preset, extra):
    """The config is recovered from the layers; it used to be off by one encoder level."""
    from edgeseg.config import PRESETS
    from edgeseg.model.io import build_and_save, load_model

    cfg = ModelConfig(n_classes=3, height=64, width=96, **{**PRESETS[preset], **extra})
    build_and_save(cfg, tmp_path / "m.keras")
    (tmp_path / "m.keras.json").unlink()
    _, got = load_model(tmp_path / "m.keras")
    assert got == cfg


def test_presets_in_build_and_explicit_options_override_them(tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    def side(*args: str) -> dict:
        out = tmp_path / "m.keras"
        r = CliRunner().invoke(app, ["build", "--classes", "3", *args, "-o", str(out)])
        assert r.exit_code == 0, r.output
        return json.loads((tmp_path / "m.keras.json").read_text())["edgeseg"]

    seed = side()  # the default is the published model at 416x416
    assert (seed["alpha"], seed["encoder_level"], seed["decoder"], seed["head"],
            seed["height"], seed["width"]) == (1.0, 3, "seed", "flat", 416, 416)
    rt = side("--preset", "realtime", "--height", "64", "--width", "64")
    assert (rt["alpha"], rt["encoder_level"], rt["decoder"], rt["decoder_width"], rt["head"],
            rt["stem"]) == (0.5, 2, "fast", 0.5, "spatial", "mobilenet")
    one = side("--preset", "realtime_1core", "--height", "64", "--width", "64")
    assert (one["decoder"], one["decoder_width"], one["stem"], one["head"]) == (
        "fast_dw", 0.5, "lean", "upsampled")
    mixed = side("--preset", "realtime", "--alpha", "0.25", "--decoder", "seed", "--height", "64",
                 "--width", "64")
    assert (mixed["alpha"], mixed["encoder_level"], mixed["decoder"], mixed["decoder_width"],
            mixed["head"]) == (0.25, 2, "seed", 1.0, "spatial")  # upsampled needs a fast decoder
    fast = side("--preset", "realtime", "--stem", "lean", "--head", "upsampled", "--height", "64",
                "--width", "64")
    assert (fast["stem"], fast["head"], fast["decoder"]) == ("lean", "upsampled", "fast")
    r = CliRunner().invoke(app, ["build", "--preset", "turbo", "-o", str(tmp_path / "x.keras")])
    assert r.exit_code == 2 and "--preset 'turbo' must be one of seed, realtime" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "x.keras").exists()


def test_realtime_decoder_decodes_at_the_tap_and_resizes_the_logits_once():
    from edgeseg.config import PRESETS
    from edgeseg.model.macs import count_macs

    m = _build(n_classes=4, height=416, width=416, **PRESETS["realtime"])
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in m.layers}
    assert shapes["conv_pw_5_relu"] == (52, 52, 128)  # 1/8 tap of alpha 0.5
    assert shapes["dec_conv_1"] == (52, 52, 64) and shapes["seg_logits"] == (52, 52, 4)
    assert shapes["seg_upsample"] == (208, 208, 4) and m.output_shape == (None, 208, 208, 4)
    assert not any(n.startswith("dec_up_") for n in shapes)
    seed = count_macs(_build(n_classes=4, height=416, width=416, **PRESETS["seed"]))
    # 52*52*(9*128*64 + 64*4) decoder MACs against the seed decoder's 10.5 G
    assert count_macs(m)["decoder"] == 52 * 52 * (9 * 128 * 64 + 64 * 4)
    assert count_macs(m)["total"] * 20 < seed["total"]
    one = _build(n_classes=4, height=416, width=416, **PRESETS["realtime_1core"])
    assert one.get_layer("conv1").output.shape[1:] == (208, 208, 8)  # the lean stem
    assert one.get_layer("conv_pw_1").output.shape[1:] == (104, 104, 32)
    assert one.get_layer("dec_dw_1").output.shape[1:] == (52, 52, 128)
    assert one.get_layer("dec_pw_1").output.shape[1:] == (52, 52, 64)
    assert count_macs(one)["decoder"] == 52 * 52 * (9 * 128 + 128 * 64 + 64 * 4)


def test_imagenet_weights_come_from_keras_cache(tmp_path, monkeypatch):
    """The file Keras' downloader would fetch, placed in $KERAS_HOME/models: no download."""
    from edgeseg.deps import keras
    from edgeseg.model.weights import load_backbone_weights

    k = keras()
    k.utils.set_random_seed(5)
    net = k.applications.MobileNet(input_shape=(128, 128, 3), alpha=0.25, include_top=False,
                                   weights=None)
    (tmp_path / "models").mkdir()
    net.save(tmp_path / "models" / "mobilenet_2_5_128_tf_no_top.h5")  # Keras' name and layout
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr("edgeseg.model.weights._KERAS_URL", "http://127.0.0.1:9/")  # no network
    cfg = ModelConfig(n_classes=3, height=96, width=96, alpha=0.25, encoder_level=2)
    m = _build(n_classes=3, height=96, width=96, alpha=0.25, encoder_level=2)
    fresh = m.get_layer("conv_pw_5").get_weights()[0].copy()
    rep = load_backbone_weights(m, "imagenet", cfg)
    assert len(rep.matched) == 2 + 5 * 4  # conv1 + bn, blocks 1..5 (dw, dw_bn, pw, pw_bn)
    got = m.get_layer("conv_pw_5").get_weights()[0]
    np.testing.assert_array_equal(got, net.get_layer("conv_pw_5").get_weights()[0])
    assert not np.allclose(got, fresh)  # loaded, not the model's own random init
    (tmp_path / "models" / "mobilenet_2_5_128_tf_no_top.h5").unlink()
    with pytest.raises(EdgesegError, match=r"no ImageNet MobileNet weights \(mobilenet_2_5_128_tf_no_top"):
        load_backbone_weights(m, "imagenet", cfg)


def test_traffic_counts_macs_and_int8_bytes_by_hand():
    """The two inputs of the Pi estimate (benchmarks/pi_estimate.py), on a graph small enough to count."""
    from edgeseg.deps import keras
    from edgeseg.model.macs import count_traffic

    k = keras()
    x = k.Input((8, 8, 3))
    y = k.layers.Conv2D(4, 3, padding="same", use_bias=False)(x)  # 8*8*9*3*4 MACs
    y = k.layers.BatchNormalization()(y)  # folds into the conv: no traffic
    y = k.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(y)  # 8*8*9*4 MACs
    y = k.layers.Resizing(16, 16)(y)  # moves 8*8*4 in, 16*16*4 out
    got = count_traffic(k.Model(x, y))
    assert got["macs"] == 8 * 8 * 9 * 3 * 4 + 8 * 8 * 9 * 4
    conv = 8 * 8 * 3 + 8 * 8 * 4 + 3 * 3 * 3 * 4  # input, output, kernel
    dw = 8 * 8 * 4 + 8 * 8 * 4 + 3 * 3 * 4
    assert got["bytes"] == conv + dw + 8 * 8 * 4 + 16 * 16 * 4


def test_lean_stem_moves_the_first_downsampling_and_keeps_every_later_shape():
    from edgeseg.model.macs import count_macs

    kw = {"n_classes": 4, "height": 320, "width": 320, "alpha": 0.5, "encoder_level": 2,
          "decoder": "fast", "decoder_width": 0.5, "head": "spatial"}
    lean, full = _build(stem="lean", **kw), _build(stem="mobilenet", **kw)
    ls = {layer.name: tuple(layer.output.shape[1:]) for layer in lean.layers}
    fs = {layer.name: tuple(layer.output.shape[1:]) for layer in full.layers}
    assert ls["conv1"] == (160, 160, 8) and fs["conv1"] == (160, 160, 16)
    assert ls["conv_pw_1"] == (80, 80, 32) and fs["conv_pw_1"] == (160, 160, 32)
    assert ls["conv_pw_2"] == fs["conv_pw_2"] == (80, 80, 64)
    assert all(ls[n] == fs[n] for n in fs if n.startswith(("conv_pw_3", "conv_pw_4", "conv_pw_5", "dec_", "seg_")))
    # conv1 loses 8 filters; block 1 runs at 80² on 8 channels; block 2's depthwise, now at
    # stride 1 on 80², makes the same 80² outputs as before
    saved = count_macs(full)["encoder"] - count_macs(lean)["encoder"]
    assert saved == (160 * 160 * 27 * 8 + 160 * 160 * 9 * 16 - 80 * 80 * 9 * 8
                     + 160 * 160 * 16 * 32 - 80 * 80 * 8 * 32)


def test_fast_dw_decoder_is_depthwise_separable_at_the_tap():
    from edgeseg.model.macs import count_macs

    m = _build(n_classes=4, height=320, width=320, alpha=0.5, encoder_level=2, decoder="fast_dw",
               decoder_width=0.5, head="spatial")
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in m.layers}
    assert shapes["dec_dw_1"] == (40, 40, 128) and shapes["dec_pw_1"] == (40, 40, 64)
    assert "dec_conv_1" not in shapes and m.output_shape == (None, 160, 160, 4)
    assert count_macs(m)["decoder"] == 40 * 40 * (9 * 128 + 128 * 64 + 64 * 4)


def test_weights_of_another_layout_are_a_one_line_error_naming_the_layer():
    """A layer saved by another layout of edgeseg (same name, other shapes) used to surface as
    Keras' ValueError from set_weights, a traceback in convert."""
    from edgeseg.model.build import copy_weights_by_name

    old = _build(n_classes=3, height=64, width=64, alpha=0.25, encoder_level=2, decoder="fast",
                 decoder_width=0.5, head="spatial")
    new = _build(n_classes=3, height=64, width=64, alpha=0.25, encoder_level=2, decoder="fast",
                 decoder_width=0.25, head="spatial")
    with pytest.raises(EdgesegError, match=r"layer dec_conv_1 holds weights of shapes "
                                           r"\[\(3, 3, 64, 64\)\] where this edgeseg builds "
                                           r"\[\(3, 3, 64, 32\)\]"):
        copy_weights_by_name(old, new)
    assert copy_weights_by_name(old, old) > 10  # same layout: every layer with weights

