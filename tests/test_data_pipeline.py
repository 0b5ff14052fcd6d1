"""The ignore index in loss and metrics, errors inside tf.data, and train + evaluate on real VOC masks."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import EdgesegError
from edgeseg.verify.metrics import MetricAccumulator, SegMetrics, confusion_matrix

runner = CliRunner()
REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


# --- metrics --------------------------------------------------------------------------------


def test_confusion_leaves_out_the_ignore_index_only() -> None:
    truth = np.array([0, 1, 255, 1, 2])
    pred = np.array([0, 1, 2, 0, 2])
    cm = confusion_matrix(truth, pred, 3)
    assert cm.sum() == 4 and cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert confusion_matrix(np.array([0, 7]), np.array([0, 0]), 3, ignore_index=7).sum() == 1
    with pytest.raises(ValueError, match="ids 255 outside 0..2"):
        confusion_matrix(truth, pred, 3, ignore_index=None)
    with pytest.raises(ValueError, match="ids 5 outside"):
        confusion_matrix(np.array([5, 255]), np.array([0, 0]), 3)


def test_miou_convention() -> None:
    # class 0 right, class 1 in the truth but never predicted, class 2 in neither.
    acc = MetricAccumulator(3)
    acc.update(np.array([[0, 0, 1, 255]]), np.array([[0, 0, 0, 1]]))
    m = acc.result()
    assert m.per_class_iou[0] == pytest.approx(2 / 3) and m.per_class_iou[1] == 0.0
    assert np.isnan(m.per_class_iou[2])
    assert m.mean_iou == pytest.approx((2 / 3 + 0) / 2)  # the absent class is not averaged
    predicted_only = SegMetrics.from_confusion(np.array([[3, 1], [0, 0]]))
    assert predicted_only.per_class_iou == (0.75, 0.0) and predicted_only.mean_iou == 0.375


# --- the tf.data pipeline -------------------------------------------------------------------


def _voidy(root: Path, n: int = 3) -> list[tuple[Path, Path]]:
    """64×64 pairs: class 1 square in a 255 void band, background elsewhere."""
    from edgeseg.data.dataset import list_pairs

    for sub in ("images", "annotations"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        m = np.zeros((64, 64), np.uint8)
        m[8 + i:40 + i, 8:40] = 255
        m[12 + i:36 + i, 12:36] = 1
        cv2.imwrite(str(root / "images" / f"{i}.png"), np.full((64, 64, 3), 100, np.uint8))
        cv2.imwrite(str(root / "annotations" / f"{i}.png"), m)
    return list_pairs(root)


def test_training_batches_weigh_ignored_pixels_zero(tmp_path: Path) -> None:
    from edgeseg.config import ModelConfig
    from edgeseg.data.pipeline import Augment, make_dataset

    pairs = _voidy(tmp_path)
    cfg = ModelConfig(n_classes=2, height=64, width=64, alpha=0.25, head="spatial")
    still = Augment(flip=False, min_crop=1.0, brightness=0, contrast=0)
    (_, y, w), = make_dataset(pairs, cfg, 3, training=True, augment=still,
                              class_weights=np.array([0.5, 2.0], np.float32))
    # The expected labels, from the masks on disk (PIL + centre-sampled nearest, independent).
    truth = np.stack([cv2.resize(np.asarray(Image.open(m)), (32, 32), interpolation=cv2.INTER_NEAREST_EXACT)
                      for _, m in pairs])
    order = [int(np.argmax([(t == yy).mean() for t in np.minimum(truth, 1)])) for yy in y.numpy()]
    truth, y, w = truth[order], y.numpy(), w.numpy()
    assert (truth == 255).sum() > 100
    assert np.all(w[truth == 255] == 0) and np.all(w[truth == 1] == 2.0) and np.all(w[truth == 0] == 0.5)
    assert y.max() <= 1


def test_file_failing_inside_tf_data_is_one_line_naming_it(tmp_path: Path) -> None:
    from edgeseg.config import ModelConfig
    from edgeseg.data.pipeline import make_dataset, pipeline_errors

    pairs = _voidy(tmp_path)
    cfg = ModelConfig(n_classes=2, height=64, width=64, alpha=0.25)
    ds = make_dataset(pairs, cfg, 2, training=False)
    pairs[1][0].write_bytes(b"")  # broken after the check, e.g. by a sync client
    with pytest.raises(EdgesegError) as e, pipeline_errors():
        for _ in ds:
            pass
    assert str(e.value) == f"{pairs[1][0]} is empty (0 bytes); replace or delete it."


def test_mask_with_unchecked_class_id_fails_in_the_pipeline_by_name(tmp_path: Path) -> None:
    from edgeseg.config import ModelConfig
    from edgeseg.data.pipeline import make_dataset, pipeline_errors

    pairs = _voidy(tmp_path)
    cv2.imwrite(str(pairs[0][1]), np.full((64, 64), 3, np.uint8))
    ds = make_dataset(pairs, ModelConfig(n_classes=2, height=64, width=64, alpha=0.25), 3, training=False)
    with pytest.raises(EdgesegError, match=r"0\.png: class ids 3 \(4,096 px\) are >= --classes 2"), \
            pipeline_errors():
        next(iter(ds))


# --- real VOC masks, end to end -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not (REALDATA / "voc_labelme").is_dir(), reason="needs ../shared/realdata (CI has it)")
@pytest.mark.parametrize("folder", ["voc_labelme", "voc_labelme_palette"])
def test_train_and_evaluate_on_real_voc_masks(tmp_path: Path, folder: str) -> None:
    data = REALDATA / folder
    model = tmp_path / "voc.keras"
    res = runner.invoke(app, ["train", "--data", str(data), "--classes", "21", "--height", "64",
                              "--width", "64", "--alpha", "0.25", "--epochs", "1", "--batch-size", "2",
                              "-o", str(model)])
    assert res.exit_code == 0, res.output
    assert "training on 2 images, validating on 1" in res.output
    res = runner.invoke(app, ["evaluate", str(model), "--data", str(data), "--json"])
    assert res.exit_code == 0, res.output
    scored = np.array(json.loads(res.output.strip().splitlines()[-1])["confusion"]).sum()
    # Every non-void pixel at the output size (32×32) of the 3 masks, read by Pillow here.
    expected = sum(int((cv2.resize(np.asarray(Image.open(m)), (32, 32),
                                   interpolation=cv2.INTER_NEAREST_EXACT) != 255).sum())
                   for m in sorted((data / "annotations").glob("*.png")))
    assert scored == expected and expected < 3 * 32 * 32


# --- every other reader of files uses the same readers --------------------------------------


def test_calibration_reads_grey_rgba_and_cmyk_as_rgb(tmp_path: Path) -> None:
    from edgeseg.convert.calibration import read_calibration_image

    Image.new("L", (12, 8), 70).save(tmp_path / "grey.png")
    Image.new("RGBA", (12, 8), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    Image.new("RGB", (12, 8), (200, 100, 50)).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    assert read_calibration_image(tmp_path / "grey.png")[0, 0].tolist() == [70, 70, 70]
    assert read_calibration_image(tmp_path / "rgba.png")[0, 0].tolist() == [10, 20, 30]
    assert np.abs(read_calibration_image(tmp_path / "cmyk.jpg")[0, 0].astype(int) - (200, 100, 50)).max() <= 2
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(EdgesegError, match=r"^calibration image .*empty\.png is empty \(0 bytes\)"):
        read_calibration_image(tmp_path / "empty.png")


def test_run_image_folder_source_reads_like_training(tmp_path: Path) -> None:
    from edgeseg.data.readers import read_image
    from edgeseg.runtime.capture import ImageFolderSource

    stored = Image.new("RGB", (24, 16), (250, 10, 10))
    exif = stored.getexif()
    exif[0x0112] = 8
    stored.save(tmp_path / "a.jpg", exif=exif.tobytes(), quality=100)
    Image.new("L", (24, 16), 33).save(tmp_path / "b.png")
    (tmp_path / "c.png").write_bytes(b"")
    src = ImageFolderSource(tmp_path)
    src.open()
    a, b, end = src.read(), src.read(), src.read()
    assert a.shape == (24, 16, 3)  # turned upright, as training sees the same file
    assert np.array_equal(a, read_image(tmp_path / "a.jpg")[..., ::-1])  # BGR, like camera frames
    assert b[0, 0].tolist() == [33, 33, 33] and end is None and src.skipped == 1


@pytest.mark.slow
def test_evaluate_and_compare_thread_the_mask_options(trained, converted, tmp_path: Path) -> None:
    """0/255 masks: an error by default, class 1 with --binary, an error with another ignore index."""
    model, _ = trained
    for sub in ("images", "annotations"):
        (tmp_path / "d" / sub).mkdir(parents=True)
    for i in range(2):
        m = np.zeros((64, 64), np.uint8)
        m[16:48, 8 + i:40 + i] = 255
        cv2.imwrite(str(tmp_path / "d" / "images" / f"{i}.png"), np.full((64, 64, 3), 200, np.uint8))
        cv2.imwrite(str(tmp_path / "d" / "annotations" / f"{i}.png"), m)
    args = ["evaluate", str(model), "--data", str(tmp_path / "d"), "--json"]

    def scored(res) -> np.ndarray:
        assert res.exit_code == 0, res.output
        return np.array(json.loads(res.output.strip().splitlines()[-1])["confusion"])

    plain, binary = runner.invoke(app, args), scored(runner.invoke(app, args + ["--binary"]))
    assert plain.exit_code == 2 and "pass --binary" in plain.output  # as data check says
    assert binary.sum() == 2 * 32 * 32 and binary[1].sum() == 2 * 16 * 16
    res = runner.invoke(app, args + ["--ignore-index", "254"])
    assert res.exit_code == 2
    assert "0.png: class ids 255 (1,024 px) are >= 4 (the model predicts 4 classes)" in res.output
    res = runner.invoke(app, ["compare", str(model), str(converted["int8"]), "--data", str(tmp_path / "d"),
                              "--json", "--binary"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output.strip().splitlines()[-1])
    assert np.array(rep["float"]["confusion"]).sum() == 2 * 32 * 32


# --- evaluate/compare check the data like data check ----------------------------------------


class _FakePredictor:
    """Predicts class 1 everywhere at the mask size (stands in for a model)."""

    def __init__(self, path, *args, **kwargs) -> None:
        self.path, self.labels, self.head = Path(path), ("background", "person", "dog"), "softmax"

    def predict(self, rgbs, scores: bool = False):
        return [(np.ones(r.shape[:2], np.uint8), None) for r in rgbs]


def _masks_of(root: Path, value_block: int, fill: int = 0) -> Path:
    for sub in ("images", "annotations"):
        (root / sub).mkdir(parents=True)
    for i in range(2):
        m = np.full((16, 16), fill, np.uint8)
        m[4:12, 4:12] = value_block
        cv2.imwrite(str(root / "images" / f"{i}.png"), np.full((16, 16, 3), 200, np.uint8))
        cv2.imwrite(str(root / "annotations" / f"{i}.png"), m)
    return root


@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_evaluate_and_compare_stop_on_binary_masks_like_data_check(tmp_path: Path, monkeypatch,
                                                                   command: str) -> None:
    monkeypatch.setattr("edgeseg.verify.predict.load_predictor", _FakePredictor)
    data = _masks_of(tmp_path / "d", 255)
    models = ["m.tflite"] if command == "evaluate" else ["m.tflite", "q.tflite"]
    res = runner.invoke(app, [command, *models, "--data", str(data), "--json"])
    assert res.exit_code == 2, res.output
    assert "all 2 masks hold only 0 and 255" in res.output and "pass --binary" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, [command, *models, "--data", str(data), "--json", "--binary"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_evaluate_and_compare_refuse_masks_with_nothing_to_score(tmp_path: Path, monkeypatch,
                                                                  command: str) -> None:
    monkeypatch.setattr("edgeseg.verify.predict.load_predictor", _FakePredictor)
    data = _masks_of(tmp_path / "d", 255, fill=255)
    models = ["m.tflite"] if command == "evaluate" else ["m.tflite", "q.tflite"]
    res = runner.invoke(app, [command, *models, "--data", str(data), "--json"])
    assert res.exit_code == 2, res.output
    assert "no labelled pixels to score" in res.output and "nan" not in res.output.lower()
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_evaluate_names_the_models_classes_not_a_classes_option(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("edgeseg.verify.predict.load_predictor", _FakePredictor)
    data = _masks_of(tmp_path / "d", 3)
    res = runner.invoke(app, ["evaluate", "m.tflite", "--data", str(data), "--json"])
    assert res.exit_code == 2, res.output
    assert "class ids 3 (64 px) are >= 3 (the model predicts 3 classes)" in res.output
    assert "--classes" not in res.output
