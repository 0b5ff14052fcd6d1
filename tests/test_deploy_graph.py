"""What ``convert`` hands LiteRT: the two-class softmax as a LOGISTIC, and the uint8 <-> int8
I/O conversions inside XNNPACK's partition (one partition, nothing on the builtin kernels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeseg.config import ModelConfig, preset


def _random_weights(model, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([np.abs(rng.normal(1, 0.1, w.shape)) if "variance" in w.path else
                           rng.normal(0, 0.3, w.shape) for w in layer.weights])


@pytest.mark.parametrize("name", ["seed", "realtime", "realtime_1core"])
def test_two_class_softmax_head_is_the_logistic_of_the_logit_difference(name: str) -> None:
    """With 2 classes the deployment copy computes the same probabilities with a sigmoid
    (seg_logits then outputs l0 - l1, l1 - l0); with 3 it keeps the softmax."""
    from edgeseg.model.build import build_model, deployment_copy

    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype("float32")
    for classes in (2, 3):
        cfg = ModelConfig(**{**preset(name), "n_classes": classes, "height": 64, "width": 64,
                             "alpha": 0.25, "encoder_level": 2})
        m = build_model(cfg)
        _random_weights(m)
        want = np.asarray(m(x, training=False))
        copy = deployment_copy(m, cfg, "softmax")
        got = np.asarray(copy(x, training=False)).reshape(want.shape)
        names = [layer.name for layer in copy.layers]
        assert ("seg_pair_logistic" in names) == (classes == 2), names
        assert ("seg_softmax" in names) == (classes == 3), names
        np.testing.assert_allclose(got, want, atol=5e-5)  # float32 rounding of large logits
        assert np.abs(want - 1 / classes).max() > 0.05  # the weights make a real decision
        # the argmax head is left alone: the same classes from the untouched logits
        arg = np.asarray(deployment_copy(m, cfg, "argmax")(x, training=False))[..., 0]
        top2 = np.sort(want.reshape(arg.shape + (classes,)), -1)[..., -2:]
        clear = top2[..., 1] - top2[..., 0] > 1e-5
        assert (arg == want.reshape(arg.shape + (classes,)).argmax(-1))[clear].all()


@pytest.mark.slow
@pytest.mark.parametrize("classes", [2, 4])
def test_int8_file_is_one_xnnpack_partition_with_its_io(tmp_path: Path, classes: int) -> None:
    """`convert --int8` (uint8 I/O) of the realtime preset: every node in XNNPACK's one partition
    for 2 classes (LOGISTIC instead of SOFTMAX, the I/O conversions as DEQUANTIZE + QUANTIZE);
    with 4 the builtin SOFTMAX and the QUANTIZE after it are the only nodes outside, at the end."""
    from edgeseg.convert.quantize import ConvertConfig, convert
    from edgeseg.model.io import build_and_save
    from edgeseg.runtime.interpreter import delegated_nodes, make_interpreter

    cfg = ModelConfig(**{**preset("realtime"), "n_classes": classes, "height": 64, "width": 64})
    build_and_save(cfg, tmp_path / "m.keras")
    out = convert(tmp_path / "m.keras", tmp_path / "m.tflite",
                  ConvertConfig(mode="int8", calib_count=4), log=lambda _: None).path
    it = make_interpreter(out, 2)
    ops = [op["op_name"] for op in it._get_ops_details()]
    taken, total = delegated_nodes(it)
    assert ops.count("DELEGATE") == 1, ops
    assert ("LOGISTIC" in ops, "SOFTMAX" in ops) == (classes == 2, classes != 2), ops
    assert total - taken == (0 if classes == 2 else 2), ops
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    assert (inp["dtype"], outp["dtype"]) == (np.uint8, np.uint8)
    assert outp["quantization"] == pytest.approx((1 / 256, 0))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "rewrites"), [("realtime", {"io": 1, "softmax": 0}),
                                                ("realtime_1core", {"io": 2, "softmax": 1})])
def test_rewrites_compute_the_same_bytes_in_fewer_partitions(name: str, rewrites: dict) -> None:
    """The converter's file against the rewritten one (4 classes): bit-identical outputs.
    realtime: the input's QUANTIZE only (its builtin SOFTMAX at 1/2 precedes the output's);
    realtime_1core: both QUANTIZE and the tap's SOFTMAX, so every node is in one partition."""
    from edgeseg.convert.calibration import load_calibration
    from edgeseg.convert.quantize import ConvertConfig, _converter, deployment_graph
    from edgeseg.convert.xnnpack_rewrite import one_partition
    from edgeseg.model.build import build_model
    from edgeseg.runtime.interpreter import delegated_nodes, make_interpreter

    cfg = ModelConfig(**{**preset(name), "n_classes": 4, "height": 64, "width": 64})
    m = build_model(cfg)
    _random_weights(m, seed=5)
    ccfg = ConvertConfig(mode="int8", calib_count=8).resolved()
    deploy, cfg = deployment_graph(m, cfg, ccfg)
    raw = _converter(deploy, cfg, ccfg, load_calibration(None, 8, 0, warn=lambda _: None),
                     None).convert()
    new, n = one_partition(raw)
    assert n == rewrites and one_partition(new)[0] == new
    before, after = make_interpreter(raw, 1), make_interpreter(new, 1)
    delegates = [sum(op["op_name"] == "DELEGATE" for op in it._get_ops_details())
                 for it in (before, after)]
    (_, total0), (taken1, total1) = delegated_nodes(before), delegated_nodes(after)
    assert total1 == total0 + rewrites["io"] + 2 * rewrites["softmax"]
    if name == "realtime_1core":
        assert delegates == [2, 1] and taken1 == total1
    else:
        assert delegates == [1, 1] and total1 - taken1 == 2  # SOFTMAX and its QUANTIZE
    x = np.random.default_rng(1).integers(0, 256, (4, 1, 64, 64, 3), dtype=np.uint8)
    outs = []
    for it in (before, after):
        i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
        got = []
        for frame in x:
            it.set_tensor(i, frame)
            it.invoke()
            got.append(it.get_tensor(o).copy())
        outs.append(np.stack(got))
    assert len(np.unique(outs[0])) > 20  # real probabilities, not a constant
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.fixture(scope="module")
def two_class_data(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The colour blocks as 2 classes: red-dominant blocks against everything else."""
    import shutil

    from edgeseg.data.readers import read_mask

    root = tmp_path_factory.mktemp("red")
    for split in ("train", "val"):
        shutil.copytree(synth_data / split / "images", root / split / "images")
        (root / split / "annotations").mkdir(parents=True)
        for mask in sorted((synth_data / split / "annotations").glob("*.png")):
            import cv2

            cv2.imwrite(str(root / split / "annotations" / mask.name),
                        (read_mask(mask) == 1).astype(np.uint8))
    (root / "labels.txt").write_text("other\nred\n")
    return root


@pytest.mark.slow
def test_trained_two_class_int8_file_agrees_with_float(two_class_data: Path, tmp_path: Path) -> None:
    """The LOGISTIC head through the runtime's Segmenter: a trained 2-class realtime model's
    int8 file segments like the float model (the issue's bar: 99 % of pixels)."""
    from edgeseg.convert.quantize import ConvertConfig, convert
    from edgeseg.train import TrainConfig, train
    from edgeseg.verify.compare import compare

    cfg = ModelConfig(**{**preset("realtime"), "n_classes": 2, "height": 64, "width": 64,
                         "alpha": 0.25, "labels": ("other", "red")})
    path = tmp_path / "red.keras"
    tcfg = TrainConfig(data=str(two_class_data / "train"), val=str(two_class_data / "val"),
                       output=str(path), epochs=12, batch_size=16, lr=1e-2, warmup_epochs=0.3,
                       augment=False, seed=0)
    result = train(cfg, tcfg, log=lambda s: None)
    assert result.best_miou > 0.8, result.best_miou
    int8 = convert(path, tmp_path / "red.tflite",
                   ConvertConfig(mode="int8", calib=str(two_class_data / "train"), calib_count=64),
                   log=lambda s: None).path
    rep = compare(path, int8, two_class_data / "val")
    print(f"2 classes: int8 agreement {rep.pixel_agreement:.4f}, float mIoU "
          f"{rep.float_metrics.mean_iou:.3f}, drop {rep.miou_drop:+.2f} points")
    assert rep.pixel_agreement >= 0.99 and rep.miou_drop <= 1.0, rep.to_dict()


def test_keep_float_of_an_unknown_layer_names_the_models_layers() -> None:
    """The hint used to name dec_conv_4, a layer realtime models do not have."""
    from edgeseg.convert.quantize import _op_outputs_for
    from edgeseg.errors import EdgesegError
    from edgeseg.model.build import build_model

    cfg = ModelConfig(**{**preset("realtime"), "n_classes": 2, "height": 64, "width": 64})
    with pytest.raises(EdgesegError, match=r"--keep-float seg_softmax: no such layer .* conv1 … "
                                           r"dec_conv_1, dec_bn_1, seg_logits"):
        _op_outputs_for(build_model(cfg, batch_size=1, head="softmax", pair_logistic=True),
                        ("seg_softmax",))
