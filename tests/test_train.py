"""Training, metrics and evaluation on a tiny model actually trained on synthetic scenes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import EdgesegError
from edgeseg.verify.metrics import SegMetrics, confusion_matrix


def test_confusion_and_scores_by_hand():
    truth = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = confusion_matrix(truth, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    m = SegMetrics.from_confusion(cm)
    # IoU: class0 1/(2+2-1)=1/3, class1 2/(2+3-2)=2/3, class2 1/(2+1-1)=1/2
    np.testing.assert_allclose(m.per_class_iou, [1 / 3, 2 / 3, 1 / 2])
    assert m.mean_iou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m.pixel_accuracy == pytest.approx(4 / 6)
    assert m.fw_iou == pytest.approx((2 / 6) * (1 / 3) + (2 / 6) * (2 / 3) + (2 / 6) * (1 / 2))
    # a class absent from truth and prediction is NaN and left out of the mean
    m4 = SegMetrics.from_confusion(confusion_matrix(truth, pred, 4))
    assert np.isnan(m4.per_class_iou[3]) and m4.mean_iou == pytest.approx(m.mean_iou)
    # ignore label 255 is skipped
    assert confusion_matrix(np.array([0, 255]), np.array([0, 1]), 2).sum() == 1


@pytest.mark.slow
def test_training_learns(trained):
    path, result = trained
    lines = result.history_csv.read_text().splitlines()
    keys = lines[0].split(",")
    hist = [dict(zip(keys, map(float, ln.split(",")))) for ln in lines[1:]]
    assert len(hist) == result.epochs_run >= 3
    assert hist[-1]["loss"] < 0.8 * hist[0]["loss"]  # the loss goes down
    # far better than any constant prediction (~0.1 here)
    assert result.best_miou > 0.5
    assert result.history_png and result.history_png.stat().st_size > 1000
    side = json.loads(path.with_name(path.name + ".json").read_text())
    assert side["train"]["state"]["best_epoch"] == result.best_epoch
    assert path.with_name("tiny.last.keras").exists()


@pytest.mark.slow
def test_evaluate_matches_a_hand_computed_confusion(trained, synth_data):
    import cv2

    from edgeseg.data.dataset import list_pairs, read_image, read_mask
    from edgeseg.model.io import load_model
    from edgeseg.preprocess import preprocess

    path, _ = trained
    r = CliRunner().invoke(app, ["evaluate", str(path), "--data", str(synth_data), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output.strip().splitlines()[-1])
    model, cfg = load_model(path)
    cm = np.zeros((4, 4), np.int64)
    for img, mask in list_pairs(synth_data / "val"):
        probs = np.asarray(model(preprocess(read_image(img), cfg.preprocessing)[None], training=False))
        pred = probs.reshape(32, 32, 4).argmax(-1)
        truth = cv2.resize(read_mask(mask), (32, 32), interpolation=cv2.INTER_NEAREST)
        for t, p in zip(truth.ravel(), pred.ravel()):  # deliberately the slow, obvious way
            cm[t, p] += 1
    assert got["confusion"] == cm.tolist()
    assert got["mean_iou"] == pytest.approx(SegMetrics.from_confusion(cm).mean_iou, abs=1e-6)
    assert set(got) >= {"mean_iou", "per_class_iou", "fw_iou", "pixel_accuracy", "confusion"}


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(trained, synth_data, tmp_path):
    from edgeseg.config import ModelConfig
    from edgeseg.train import TrainConfig, train

    path, result = trained
    out = tmp_path / "more.keras"
    cfg = ModelConfig(n_classes=4, height=64, width=64, alpha=0.25, encoder_level=2)
    logs: list[str] = []
    r = train(cfg, TrainConfig(data=str(synth_data), output=str(out), epochs=result.epochs_run + 1,
                               resume=str(path.with_name("tiny.last.keras"))), log=logs.append)
    assert any("resuming" in line for line in logs)
    assert r.epochs_run == 1  # only the one remaining epoch ran
    with pytest.raises(EdgesegError, match="already trained"):
        train(cfg, TrainConfig(data=str(synth_data), output=str(out), epochs=1,
                               resume=str(path.with_name("tiny.last.keras"))))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["mirrored"])
def test_time_limit_and_strategy(synth_data, tmp_path, strategy):
    from edgeseg.config import ModelConfig
    from edgeseg.train import TrainConfig, train

    logs: list[str] = []
    r = train(ModelConfig(n_classes=4, height=64, width=64, alpha=0.25),
              TrainConfig(data=str(synth_data), output=str(tmp_path / "t.keras"), epochs=50,
                          time_limit=0.001, strategy=strategy), log=logs.append)
    assert r.epochs_run == 1 and any("time limit" in line for line in logs)
    assert (tmp_path / "t.keras").exists()


def test_train_cli_errors(tmp_path):
    r = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "nope"), "-o", str(tmp_path / "m.keras")])
    assert r.exit_code == 2 and "does not exist" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "m.keras"), "--data", str(tmp_path)])
    assert r.exit_code == 2 and "no such model" in r.output


def test_time_limit_decides_the_epochs_unless_they_are_given():
    from edgeseg.train import TrainConfig, max_epochs

    assert max_epochs(TrainConfig(data="d", output="m.keras")) == 30
    assert max_epochs(TrainConfig(data="d", output="m.keras", epochs=5, time_limit=10)) == 5
    assert max_epochs(TrainConfig(data="d", output="m.keras", time_limit=10)) > 1000


def test_train_takes_class_names_from_labels_txt_of_the_dataset_or_its_train_split(tmp_path):
    from edgeseg.cli.train import _labels_from

    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "labels.txt").write_text("background\nellipse\nbox\nbar\n")
    assert _labels_from(tmp_path, 4) == ("background", "ellipse", "box", "bar")
    assert _labels_from(tmp_path, 3) == ()  # a different class count: not these names
    (tmp_path / "labels.txt").write_text("bg\na\nb\nc\n")
    assert _labels_from(tmp_path, 4) == ("bg", "a", "b", "c")


def test_training_and_evaluation_see_the_same_labels(tmp_path):
    """Both resample masks to the output size with one function (centre-sampled nearest)."""
    import cv2

    from edgeseg.config import ModelConfig
    from edgeseg.data.dataset import list_pairs
    from edgeseg.data.pipeline import make_dataset
    from edgeseg.verify.evaluate import iter_batches

    rng = np.random.default_rng(3)
    for sub in ("images", "annotations"):
        (tmp_path / sub).mkdir()
    for i in range(3):  # per-pixel random ids: a one-pixel shift changes most labels
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), rng.integers(0, 256, (64, 64, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "annotations" / f"{i}.png"), rng.integers(0, 4, (64, 64), np.uint8))
    cfg = ModelConfig(n_classes=4, height=64, width=64, alpha=0.25, head="spatial")
    pairs = list_pairs(tmp_path)
    (_, y_train), = make_dataset(pairs, cfg, 3, training=False)
    (_, y_eval), = iter_batches(pairs, cfg, batch_size=3)
    assert y_eval.shape == (3, 32, 32)
    np.testing.assert_array_equal(y_train.numpy(), y_eval)
