"""edgeseg predict: any model over a folder, written as a dataset that evaluate scores."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tflite_fixtures
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.data.instances import read_instances
from edgeseg.data.readers import read_mask

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tflite_fixtures.build_cached(tmp_path_factory)


def scene(h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BGR image: two separate red squares and a blue bar on black; class ids; instances."""
    img = np.zeros((h, w, 3), np.uint8)
    ids = np.zeros((h, w), np.uint8)
    inst = np.zeros((h, w), np.uint16)
    for k, (y, x) in enumerate(((8, 8), (8, 72)), start=1):
        img[y:y + 32, x:x + 32] = (0, 0, 255)
        ids[y:y + 32, x:x + 32] = 1
        inst[y:y + 32, x:x + 32] = 1000 + k
    img[64:88, 16:112] = (255, 0, 0)
    ids[64:88, 16:112] = 3
    inst[64:88, 16:112] = 3001
    return img, ids, inst


def dataset(root: Path, n: int = 3) -> Path:
    for sub in ("images", "annotations", "instances"):
        (root / sub).mkdir(parents=True)
    img, ids, inst = scene()
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"im{i}.png"), img)
        cv2.imwrite(str(root / "annotations" / f"im{i}.png"), ids)
        cv2.imwrite(str(root / "instances" / f"im{i}.png"), inst)
    (root / "labels.txt").write_text("background\nred\ngreen\nblue\n")
    return root


def test_predict_writes_masks_at_the_image_size_that_evaluate_scores(models: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "ds")
    out = tmp_path / "out"
    res = runner.invoke(app, ["predict", str(models / "float_softmax.tflite"), "--source",
                              str(data), "-o", str(out), "--overlay"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "Wrote 3 predictions" in res.output
    _, truth, _ = scene()
    for i in range(3):
        mask = read_mask(out / "annotations" / f"im{i}.png")
        assert mask.shape == (96, 128)  # the image's size, not the model's 32×32
        assert (mask == truth).mean() > 0.95
        overlay = cv2.imread(str(out / "overlays" / f"im{i}.jpg"))
        assert overlay.shape == (96, 128, 3)
    assert not (out / "instances").exists()  # a semantic model, no --instances
    assert (out / "labels.txt").read_text().split() == ["background", "red", "green", "blue"]
    res = runner.invoke(app, ["evaluate", str(out), "--data", str(data), "--json"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert '"mean_iou": 0.9' in res.output or '"mean_iou": 1.0' in res.output


def test_components_give_every_model_instances_and_evaluate_scores_them(
        models: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "ds", n=1)
    out = tmp_path / "out"
    res = runner.invoke(app, ["predict", str(models / "int8_softmax.tflite"), "--source",
                              str(data / "images" / "im0.png"), "-o", str(out),
                              "--instances", "components"], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "objects (components): 1 blue, 2 red" in res.output
    inst = read_instances(out / "instances" / "im0.png")
    assert inst.shape == (96, 128)
    objects = sorted(int(v) for v in np.unique(inst) if v >= 1000)
    assert [v // 1000 for v in objects] == [1, 1, 3]
    res = runner.invoke(app, ["evaluate", str(out), "--data", str(data), "--task", "instance",
                              "--json"], env=WIDE)
    assert res.exit_code == 0, res.output
    import json

    pq = json.loads(res.output.strip().splitlines()[-1])["panoptic"]
    # Separate objects: components find each; the int8 model's edges cost a little IoU.
    assert pq["things"]["rq"] == 1.0 and pq["things"]["pq"] > 0.85


def test_evaluate_instance_task_needs_instances(models: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "ds", n=1)
    res = runner.invoke(app, ["evaluate", str(models / "float_softmax.tflite"), "--data", str(data),
                              "--task", "instance"], env=WIDE)
    assert res.exit_code == 2
    assert "gives no instances" in res.output and "--instances components" in res.output
    assert "Traceback" not in res.output


def test_predict_errors_are_one_line(models: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["predict", str(models / "float_softmax.tflite"), "--source",
                              str(tmp_path / "nothing"), "-o", str(tmp_path / "o")], env=WIDE)
    assert res.exit_code == 2 and "no such file or folder" in res.output
    (tmp_path / "imgs").mkdir()
    img, _, _ = scene()
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), img)
    cv2.imwrite(str(tmp_path / "imgs" / "a.jpg"), img)
    res = runner.invoke(app, ["predict", str(models / "float_softmax.tflite"), "--source",
                              str(tmp_path / "imgs"), "-o", str(tmp_path / "o")], env=WIDE)
    assert res.exit_code == 2 and "share the name a" in res.output
    (tmp_path / "imgs" / "a.jpg").unlink()
    (tmp_path / "afile").write_text("x")
    res = runner.invoke(app, ["predict", str(models / "float_softmax.tflite"), "--source",
                              str(tmp_path / "imgs"), "-o", str(tmp_path / "afile")], env=WIDE)
    assert res.exit_code == 2 and "afile is a file" in res.output
    assert "Traceback" not in res.output
    data = dataset(tmp_path / "ds", n=1)
    res = runner.invoke(app, ["evaluate", str(tmp_path / "imgs"), "--data", str(data)], env=WIDE)
    assert res.exit_code == 2 and "without annotations/" in res.output


def test_evaluate_says_which_predictions_it_did_not_score(models: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "ds", n=2)
    out = tmp_path / "out"
    res = runner.invoke(app, ["predict", str(models / "float_softmax.tflite"), "--source",
                              str(data), "-o", str(out)], env=WIDE)
    assert res.exit_code == 0, res.output
    (out / "annotations" / "im1.png").rename(out / "annotations" / "other.png")  # a stem the data lacks
    (data / "annotations" / "im1.png").unlink()
    (data / "images" / "im1.png").unlink()
    res = runner.invoke(app, ["evaluate", str(out), "--data", str(data)], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "1 prediction(s) have no mask in the scored data and are not scored (e.g. other.png); 1 are." in res.output


def test_evaluate_on_a_file_given_as_the_dataset_says_it_is_a_file(models: Path, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "data.txt"
    not_a_folder.write_text("x")
    res = runner.invoke(app, ["evaluate", str(models / "float_softmax.tflite"), "--data", str(not_a_folder)],
                        env=WIDE)
    assert res.exit_code != 0
    assert f"{not_a_folder} is a file; give the dataset folder" in res.output
    assert "Traceback" not in res.output
