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

    from edgeseg.data.dataset import list_pairs
    from edgeseg.data.readers import read_image, read_mask
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
def test_resume_from_the_best_model_names_the_checkpoint(trained, synth_data, tmp_path):
    """The best model's JSON records the training state, so it passed every check and Keras' fit()
    then stopped with a traceback ("You must call `compile()`"): it holds no optimizer."""
    from edgeseg.config import ModelConfig
    from edgeseg.train import TrainConfig, train

    path, result = trained
    cfg = ModelConfig(n_classes=4, height=64, width=64, alpha=0.25, encoder_level=2)
    with pytest.raises(EdgesegError, match="no optimizer state") as e:
        train(cfg, TrainConfig(data=str(synth_data), output=str(tmp_path / "m.keras"),
                               epochs=result.epochs_run + 1, resume=str(path)), log=lambda s: None)
    assert str(path.with_name("tiny.last.keras")) in str(e.value)
    assert not (tmp_path / "m.keras").exists()


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
    from edgeseg.train.fit import TrainConfig, max_epochs

    assert max_epochs(TrainConfig(data="d", output="m.keras")) == 30
    assert max_epochs(TrainConfig(data="d", output="m.keras", epochs=5, time_limit=10)) == 5
    assert max_epochs(TrainConfig(data="d", output="m.keras", time_limit=10)) > 1000


def test_train_takes_classes_and_names_from_labels_txt_or_the_colour_map(tmp_path):
    from edgeseg.cli.train import _classes_and_names
    from edgeseg.data.readers import MaskEncoding

    plain = MaskEncoding()
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "labels.txt").write_text("background\nellipse\nbox\nbar\n")
    assert _classes_and_names(tmp_path, 4, (), plain) == (4, ("background", "ellipse", "box", "bar"), None)
    assert _classes_and_names(tmp_path, None, (), plain)[:2] == (4, ("background", "ellipse", "box", "bar"))
    (tmp_path / "labels.txt").write_text("bg\na\nb\n")
    assert _classes_and_names(tmp_path, None, (), plain) == (3, ("bg", "a", "b"), None)  # not 2
    n, names, note = _classes_and_names(tmp_path, 5, (), plain)  # said, not silent
    assert (n, names) == (5, ()) and note == (f"note: --classes 5 but {tmp_path / 'labels.txt'} names 3 "
                                              "classes; the model's classes are named class0..class4.")
    colours = MaskEncoding(colors=(("background", (0, 0, 0)), ("cat", (255, 0, 0)), ("dog", (0, 255, 0))),
                           colors_source="labelmap.txt")
    bare = tmp_path / "bare"
    bare.mkdir()
    assert _classes_and_names(bare, None, (), colours) == (3, ("background", "cat", "dog"), None)
    assert _classes_and_names(bare, 3, (), colours) == (3, ("background", "cat", "dog"), None)
    assert _classes_and_names(bare, None, (), plain) == (2, (), None)


def test_train_refuses_zero_epochs_and_batch_size(tmp_path):
    for opt in ("--epochs", "--batch-size"):
        r = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "-o", str(tmp_path / "m.keras"),
                                     opt, "0"])
        assert r.exit_code == 2 and f"Invalid value for '{opt}'" in r.output and "Traceback" not in r.output
        assert "greater than or equal to 1" in r.output


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


@pytest.mark.parametrize("change,needle", [
    ({"alpha": 0.5}, "alpha 0.25 -> 0.5"),
    ({"decoder": "lite", "decoder_width": 0.5}, "decoder seed -> lite"),
    ({"decoder": "fast", "decoder_width": 0.5, "head": "spatial"}, "decoder seed -> fast"),
])
@pytest.mark.parametrize("sidecar", [True, False])
@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_architecture(trained, synth_data, tmp_path, change,
                                                           needle, sidecar):
    """It used to check classes and size only, and train on with layers left random."""
    import shutil

    from edgeseg.config import ModelConfig
    from edgeseg.train import TrainConfig, train

    path, _ = trained
    ckpt = tmp_path / "c.last.keras"
    shutil.copy(path.with_name("tiny.last.keras"), ckpt)
    if sidecar:  # without it, the architecture is read from the layers
        shutil.copy(path.with_name("tiny.last.keras.json"), tmp_path / "c.last.keras.json")
    base = dict(n_classes=4, height=64, width=64, alpha=0.25, encoder_level=2)
    with pytest.raises(EdgesegError, match=needle) as e:
        train(ModelConfig(**{**base, **change}),
              TrainConfig(data=str(synth_data), output=str(tmp_path / "m.keras"), epochs=30,
                          resume=str(ckpt)), log=lambda s: None)
    assert str(ckpt) in str(e.value) and not (tmp_path / "m.keras").exists()


def test_warmup_cosine_schedule():
    from edgeseg.train.loop import WarmupCosine

    s = WarmupCosine(peak=1e-2, warmup_steps=10, total_steps=110)
    assert s(0) == pytest.approx(1e-3) and s(9) == pytest.approx(1e-2)  # linear warm-up
    assert s(60) == pytest.approx(1e-2 * (0.01 + 0.99 * 0.5))  # half-way down the cosine
    assert s(110) == pytest.approx(1e-4) and s(500) == pytest.approx(1e-4)  # floor: 1 % of peak


def test_time_budget_fits_the_epochs_and_refits_after_a_slow_first_epoch():
    from edgeseg.train.loop import TimeBudget

    b = TimeBudget(seconds=100.0, max_epochs=50, planned=50)
    assert not b.after_epoch(1, elapsed=30.0, epoch_seconds=30.0)
    assert b.planned == 1 + 70 // 30  # 3: the first epoch's 30 s is all it knows
    assert not b.after_epoch(2, elapsed=40.0, epoch_seconds=10.0)
    assert b.planned == 2 + 60 // 10  # 8: later epochs timed alone (10 s), not the slow first
    assert b.after_epoch(8, elapsed=101.0, epoch_seconds=10.0) and b.planned == 8
    capped = TimeBudget(seconds=1e6, max_epochs=5, planned=5)
    capped.after_epoch(1, elapsed=1.0, epoch_seconds=1.0)
    assert capped.planned == 5  # --epochs caps what the budget allows
    unlimited = TimeBudget(seconds=None, max_epochs=7, planned=7)
    assert not unlimited.after_epoch(1, elapsed=1e9, epoch_seconds=1.0) and unlimited.planned == 7


@pytest.mark.parametrize("hw,expect", [((100, 150), (96, 160)), ((375, 500), (320, 416)),
                                       ((64, 64), (64, 64)), ((20, 40), (32, 32))])
def test_train_input_size_defaults_to_the_images(tmp_path, hw, expect):
    import cv2

    from edgeseg.train.fit import input_size_of

    for sub in ("images", "annotations"):
        (tmp_path / sub).mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((*hw, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "annotations" / "a.png"), np.zeros(hw, np.uint8))
    h, w, note = input_size_of(tmp_path, None)
    assert (h, w) == expect and f"{h}×{w} (H×W)" in note and f"({hw[0]}×{hw[1]}" in note
    assert input_size_of(tmp_path, None, height=128)[:2] == (128, expect[1])  # a given side is kept


@pytest.mark.slow
def test_train_defaults_offline_say_so_and_train_the_realtime_preset(synth_data, tmp_path, monkeypatch):
    """No --preset, no size, no weights given: realtime at the images' size, ImageNet tried first."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    monkeypatch.setattr("edgeseg.model.weights._KERAS_URL", "http://127.0.0.1:9/")  # offline
    out = tmp_path / "m.keras"
    r = CliRunner().invoke(app, ["train", "--data", str(synth_data), "--classes", "4", "--epochs", "1",
                                 "--batch-size", "32", "-o", str(out)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())  # Rich wraps long lines
    assert "input size 64×64 (H×W), from the training images (64×64)" in text
    assert "--preset realtime (default) -> alpha 0.5, fast decoder at 1/8" in text
    assert ("no ImageNet MobileNet weights (mobilenet_5_0_128_tf_no_top.h5 is not in Keras' cache"
            in text)
    assert "Training from scratch with the fast decoder tapped at 1/8" in text
    assert "Downloading data" not in text  # Keras' own line is not left to say it twice
    side = json.loads(out.with_name("m.keras.json").read_text())
    assert (side["edgeseg"]["decoder"], side["edgeseg"]["alpha"], side["edgeseg"]["height"]) == (
        "fast", 0.5, 64)
    assert side["train"]["backbone_weights"] == "imagenet" and side["train"]["state"]["epoch"] == 1


@pytest.mark.slow
def test_resume_with_a_corrupt_history_csv_is_one_line(trained, synth_data, tmp_path):
    import shutil

    from edgeseg.config import ModelConfig
    from edgeseg.train import TrainConfig, train

    path, _ = trained
    for name in ("tiny.last.keras", "tiny.last.keras.json"):
        shutil.copy(path.with_name(name), tmp_path / name.replace("tiny", "m"))
    (tmp_path / "m.history.csv").write_text("epoch,loss\n1,0.5\n2,oops\n")
    cfg = ModelConfig(n_classes=4, height=64, width=64, alpha=0.25, encoder_level=2)
    with pytest.raises(EdgesegError, match=r"m\.history\.csv is not a readable history"):
        train(cfg, TrainConfig(data=str(synth_data), output=str(tmp_path / "m.keras"), epochs=30,
                               resume=str(tmp_path / "m.last.keras")), log=lambda s: None)
