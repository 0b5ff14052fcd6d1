"""keras_segmentation checkpoints in: against checkpoints the real package (0.3.0) wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pip_cache import cached, pip_install_or_skip
from typer.testing import CliRunner

from edgeseg.cli import app

HERE = Path(__file__).resolve().parent
PHOTOS = HERE.parents[1] / "shared" / "realdata" / "photos"
# Photos the project's bilinear resize shrinks by less than 2x (see the report on INTER_AREA).
PHOTO_NAMES = ("opencv_messi5.jpg", "skimage_chelsea.png", "skimage_coffee.png")
KS_VERSION = "0.3.0"
runner = CliRunner()


def _ks_site() -> Path:
    """keras-segmentation installed --no-deps into the test cache (its deps pin h5py<=2.10)."""
    return cached(f"keras-segmentation-{KS_VERSION}", [KS_VERSION, sys.version],
                  lambda site: pip_install_or_skip(
                      sys.executable, "--no-deps", "--target", str(site),
                      f"keras-segmentation=={KS_VERSION}", what="keras-segmentation"))


def _versions() -> str:
    from importlib.metadata import version

    return " ".join(f"{p}={version(p)}" for p in ("tensorflow", "tf-keras", "numpy", "h5py"))


@pytest.fixture(scope="session")
def ks_run() -> tuple[Path, list[Path]]:
    """keras_segmentation trains its own mobilenet_segnet (2 epochs x 100 steps) and predicts.

    200 steps: int8-vs-float agreement is only meaningful on a trained model. After 60
    steps (train accuracy 0.83) many pixels are near-ties and int8 agreed on 0.93-0.96;
    after 200 (train accuracy 1.0) on 0.980-0.996 per image. The run (about 3 minutes on
    2 cores) is kept in the test cache, keyed by the reference script, the photos and the
    TensorFlow/tf_keras/numpy/h5py versions; the tests only read it.
    """
    photos = [PHOTOS / n for n in PHOTO_NAMES] if PHOTOS.is_dir() else []
    site = _ks_site()

    def run(out: Path) -> None:
        images = [out / "data" / "images" / f"{i:03d}.png" for i in range(8)] + photos
        proc = subprocess.run([sys.executable, str(HERE / "keras_segmentation_reference.py"),
                               str(site), str(out), "100", *map(str, images)], capture_output=True,
                              text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert proc.returncode == 0, proc.stderr[-3000:]

    out = cached("keras-segmentation-reference", [HERE / "keras_segmentation_reference.py",
                                                  KS_VERSION, _versions(), "100", *photos], run)
    return out, [out / "data" / "images" / f"{i:03d}.png" for i in range(8)] + photos


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a == b).mean())


@pytest.mark.slow
def test_import_matches_keras_segmentation_predictions(ks_run, tmp_path: Path) -> None:
    from edgeseg.data.readers import read_image
    from edgeseg.preprocess import preprocess
    from edgeseg.verify.predict import load_predictor

    out, images = ks_run
    target = tmp_path / "imported.keras"
    res = runner.invoke(app, ["import", "keras-segmentation", str(out / "checkpoints" / "mobilenet_segnet"),
                              "-o", str(target)])
    assert res.exit_code == 0, res.output
    # The newest of .0 and .1, as find_latest_checkpoint picks it.
    assert "mobilenet_segnet.1 (epoch 1, tf format): 55 layers, 141 tensors" in " ".join(res.output.split())
    pred = load_predictor(target)
    assert pred.cfg.mean == (123.68, 116.779, 103.939) and pred.cfg.std == (1.0, 1.0, 1.0)
    ref = np.load(out / "reference.npz")
    for i, path in enumerate(images):
        x = preprocess(read_image(path), pred.cfg.preprocessing)
        mask = np.argmax(np.asarray(pred.model(x[None], training=False)), -1).reshape(112, 112)
        assert len(np.unique(ref[f"mask{i}"])) > 1  # a model whose masks depend on the image
        assert _agreement(mask, ref[f"mask{i}"]) >= 0.999, path.name


@pytest.mark.slow
def test_h5_weights_and_old_epoch(ks_run, tmp_path: Path) -> None:
    """HDF5 weights (save_weights('.h5')) give the same model; epoch 0 is another model."""
    out, _ = ks_run
    cfg = out / "checkpoints" / "mobilenet_segnet_config.json"
    res = runner.invoke(app, ["import", "keras-segmentation", str(out / "weights.h5"), "--config", str(cfg),
                              "-o", str(tmp_path / "h5.keras")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["import", "keras-segmentation", str(out / "checkpoints" / "mobilenet_segnet.0.index"),
                              "-o", str(tmp_path / "e0.keras")])
    assert res.exit_code == 0 and "epoch 0" in res.output, res.output
    from edgeseg.data.readers import read_image
    from edgeseg.model.io import load_model
    from edgeseg.verify.predict import load_predictor

    ref = np.load(out / "reference.npz")["mask0"]
    x = read_image(out / "data" / "images" / "000.png")
    assert _agreement(load_predictor(tmp_path / "h5.keras").predict([x])[0][0], ref) >= 0.999

    def head(path: Path) -> np.ndarray:
        return load_model(path)[0].get_layer("seg_logits").get_weights()[0]

    # weights.h5 was saved after the last epoch: it and epoch 1 are one model, epoch 0 another.
    runner.invoke(app, ["import", "keras-segmentation", str(out / "checkpoints" / "mobilenet_segnet"),
                        "-o", str(tmp_path / "newest.keras")])
    np.testing.assert_array_equal(head(tmp_path / "h5.keras"), head(tmp_path / "newest.keras"))
    assert np.abs(head(tmp_path / "e0.keras") - head(tmp_path / "newest.keras")).max() > 1e-3
    wrong = tmp_path / "wrong_config.json"
    wrong.write_text(cfg.read_text().replace('"n_classes": 4', '"n_classes": 3'))
    res = runner.invoke(app, ["import", "keras-segmentation", str(out / "checkpoints" / "mobilenet_segnet"),
                              "--config", str(wrong), "-o", str(tmp_path / "w.keras")])
    assert res.exit_code == 2
    assert "edgeseg's seg_logits expects (3, 3, 64, 3); does the config's n_classes match" in \
        " ".join(res.output.split())
    assert not (tmp_path / "w.keras").exists()


@pytest.mark.slow
def test_convert_int8_takes_raw_pixels_and_agrees(ks_run, tmp_path: Path) -> None:
    from edgeseg.data.readers import read_image
    from edgeseg.runtime.segmenter import Segmenter
    from edgeseg.verify.predict import load_predictor

    out, _ = ks_run
    tfl = tmp_path / "ks_int8.tflite"
    res = runner.invoke(app, ["convert", str(out / "checkpoints" / "mobilenet_segnet"), "--int8", "--calib",
                              str(out / "data" / "images"), "--calib-count", "16", "-o", str(tfl)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "converting the imported model" in text and (tmp_path / "mobilenet_segnet.keras").is_file()
    assert "folded the per-channel normalization" in text
    seg = Segmenter(tfl, rgb=True)
    assert seg.input["quantization"] == (1.0, 0) and seg.feeds_pixels  # raw RGB in
    flt = load_predictor(tmp_path / "mobilenet_segnet.keras")
    agree = []
    for i in range(8, 16):
        rgb = read_image(out / "data" / "images" / f"{i:03d}.png")
        ref = flt.predict([rgb])[0][0]
        agree.append(_agreement(seg.segment(rgb).mask[::2, ::2], ref))
    assert np.mean(agree) >= 0.98, agree  # measured 0.989 (0.980-0.996 per image)


def test_refuses_other_model_class(tmp_path: Path) -> None:
    (tmp_path / "vgg_segnet_config.json").write_text(
        '{"model_class": "vgg_segnet", "n_classes": 3, "input_height": 224, "input_width": 224}')
    (tmp_path / "vgg_segnet.3").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(8))
    res = runner.invoke(app, ["import", "keras-segmentation", str(tmp_path / "vgg_segnet"), "-o",
                              str(tmp_path / "m.keras")])
    assert res.exit_code == 2
    assert "model_class 'vgg_segnet' is not supported; edgeseg imports 'mobilenet_segnet' only" in \
        " ".join(res.output.split())


def test_newest_epoch_is_numeric_and_missing_config_named(tmp_path: Path) -> None:
    from edgeseg.errors import EdgesegError
    from edgeseg.model.keras_segmentation import find_checkpoint

    for n in (2, 10, 9):
        (tmp_path / f"m.{n}.index").write_bytes(b"")
        (tmp_path / f"m.{n}.data-00000-of-00001").write_bytes(b"")
    (tmp_path / "m.txt").write_text("not a checkpoint")
    with pytest.raises(EdgesegError, match=r"m_config.json: no such file.*--config"):
        find_checkpoint(tmp_path / "m")
    (tmp_path / "m_config.json").write_text(
        '{"model_class": "mobilenet_segnet", "n_classes": 3, "input_height": 224, "input_width": 224}')
    ck = find_checkpoint(tmp_path / "m")
    assert (ck.epoch, ck.weights.name, ck.fmt) == (10, "m.10", "tf")
