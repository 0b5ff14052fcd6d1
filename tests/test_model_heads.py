"""Heads of the fast decoders: the ``upsampled`` head (softmax at the tap, probabilities resized)
and what it does to the int8 graph's XNNPACK partitions."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.config import ModelConfig


def _keras_bilinear(x, factor):
    """Keras' Resizing(bilinear) of an h×w×C array by an integer factor, written out:
    half-pixel centres, clamped at the edges."""
    def axis(n):
        src = np.clip((np.arange(n * factor) + 0.5) / factor - 0.5, 0, n - 1)
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, n - 1), (src - i0)
    r0, r1, fr = axis(x.shape[0])
    c0, c1, fc = axis(x.shape[1])
    rows = x[r0] * (1 - fr)[:, None, None] + x[r1] * fr[:, None, None]
    return rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]


def test_upsampled_head_is_a_softmax_at_the_tap_whose_probabilities_are_resized():
    """``upsampled``: softmax over the 1/8 logits, then the bilinear resize; the softmax and
    argmax deployment heads keep that function, ``logits`` resizes the logits."""
    import keras

    from edgeseg.model.build import build_model, deployment_copy

    cfg = ModelConfig(n_classes=3, height=64, width=64, alpha=0.25, encoder_level=2,
                      decoder="fast", decoder_width=0.25, head="upsampled")
    m = build_model(cfg)
    order = [layer.name for layer in m.layers]
    assert order.index("seg_logits") < order.index("seg_softmax") < order.index("seg_upsample")
    assert m.output_shape == (None, 32, 32, 3)
    rng = np.random.default_rng(3)
    for layer in m.layers:
        layer.set_weights([np.abs(rng.normal(1, 0.1, w.shape)) if "variance" in w.path else
                           rng.normal(0, 0.3, w.shape) for w in layer.weights])
    x = rng.normal(size=(1, 64, 64, 3)).astype("float32")
    probs = np.asarray(m(x, training=False))[0]
    tap = np.asarray(keras.Model(m.input, m.get_layer("seg_logits").output)(x, training=False))[0]
    e = np.exp(tap - tap.max(-1, keepdims=True))
    np.testing.assert_allclose(probs, _keras_bilinear(e / e.sum(-1, keepdims=True), 4), atol=1e-5)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)  # still a distribution per pixel
    outs = {h: np.asarray(deployment_copy(m, cfg, h)(x, training=False))[0]
            for h in ("softmax", "argmax", "logits")}
    np.testing.assert_allclose(outs["softmax"], probs, atol=1e-6)
    top2 = np.sort(probs, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-5
    assert clear.mean() > 0.5 and (outs["argmax"][..., 0] == probs.argmax(-1))[clear].all()
    np.testing.assert_allclose(outs["logits"], _keras_bilinear(tap, 4), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("head", ["argmax", "softmax"])
@pytest.mark.parametrize("trained", ["upsampled", "spatial"])
def test_realtime_1core_int8_is_one_xnnpack_partition(tmp_path, head, trained):
    """The lean stem's strided depthwise and the separable decoder stay inside XNNPACK. With the
    preset's ``upsampled`` head the softmax at the tap runs in float32 inside the partition
    (convert's rewrite; int8 SOFTMAX has no XNNPACK kernel and split the graph in two); with
    ``--head spatial`` the builtin one at 1/2 runs after the one partition."""
    from edgeseg.config import PRESETS
    from edgeseg.convert.quantize import ConvertConfig, convert
    from edgeseg.model.io import build_and_save
    from edgeseg.runtime.interpreter import delegated_nodes, make_interpreter

    cfg = ModelConfig(n_classes=3, height=64, width=64,
                      **{**PRESETS["realtime_1core"], "head": trained})
    build_and_save(cfg, tmp_path / "m.keras")
    out = convert(tmp_path / "m.keras", tmp_path / "m.tflite",
                  ConvertConfig(mode="int8", head=head, calib_count=4), log=lambda _: None).path
    it = make_interpreter(out, 1)
    ops = [op["op_name"] for op in it._get_ops_details()]
    assert ops.count("DELEGATE") == 1, ops
    taken, total = delegated_nodes(it)
    # outside: the 1/2-resolution int8 SOFTMAX and its QUANTIZE, or ARG_MAX and what follows it
    assert total - taken == (0 if trained == "upsampled" and head == "softmax" else
                             2 if head == "softmax" else ops.index("DELEGATE") - ops.index("ARG_MAX")), ops
    # the graph holds only XNNPACK's int8 kernels and the I/O and head ops around them
    assert set(ops) <= {"DELEGATE", "PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "RESIZE_BILINEAR",
                        "QUANTIZE", "DEQUANTIZE", "ARG_MAX", "CAST", "RESHAPE", "SOFTMAX"}, ops
    assert "DEPTHWISE_CONV_2D" in ops and "RESIZE_BILINEAR" in ops
    assert ("SOFTMAX" in ops) == (head == "softmax" or trained == "upsampled")
