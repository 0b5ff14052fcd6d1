"""The instance task end to end on a tiny model: heads, training, int8 conversion, runtime, compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="module")
def instance_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny instance model (64², 32 touching-object scenes, 4 epochs) and its int8 .tflite."""
    root = tmp_path_factory.mktemp("instance")
    data = root / "ds"
    assert runner.invoke(app, ["data", "synth", "--instances", "-o", str(data), "--count", "32",
                               "--height", "64", "--width", "64", "--classes", "3"]).exit_code == 0
    keras_path, tfl = root / "inst.keras", root / "inst.tflite"
    res = runner.invoke(app, ["train", "--data", str(data), "--task", "instance", "--epochs", "4",
                              "--batch-size", "8", "--backbone-weights", "none", "-o", str(keras_path)],
                        env=WIDE)
    assert res.exit_code == 0, res.output
    assert "thing classes ellipse, box" in res.output
    res = runner.invoke(app, ["convert", str(keras_path), "--int8", "--calib", str(data / "images"),
                              "-o", str(tfl)], env=WIDE)
    assert res.exit_code == 0, res.output
    return {"data": data, "keras": keras_path, "tflite": tfl}


@pytest.mark.slow
def test_model_and_tflite_describe_the_task_things_and_heads(instance_models: dict[str, Path]) -> None:
    side = json.loads(Path(str(instance_models["keras"]) + ".json").read_text())
    assert side["edgeseg"]["task"] == "instance" and side["edgeseg"]["things"] == [1, 2]
    assert side["instance"]["outputs"] == ["semantic", "center", "offset"]
    assert side["instance"]["stride"] == 2
    tside = json.loads(Path(str(instance_models["tflite"]) + ".json").read_text())
    inst = tside["tflite"]["instance"]
    assert sorted(inst["heads"].values()) == [0, 1, 2]
    outs = inst["outputs"]
    assert outs["semantic"]["shape"] == [1, 32, 32, 3]
    assert outs["center"]["shape"] == [1, 32, 32, 1] and outs["offset"]["shape"] == [1, 32, 32, 2]
    assert all(o["dtype"] == "uint8" for o in outs.values())  # every head quantized
    # train tuned the grouping on training scenes; convert carried it into the description.
    g = side["instance"]["grouping"]
    assert g["tuned_on"] == "training scenes" and g["scenes"] == 29  # 32 scenes, 3 held out
    assert inst["grouping"] == g
    from edgeseg.runtime.interpreter import make_interpreter

    details = make_interpreter(instance_models["tflite"], 1).get_output_details()
    for head, pos in inst["heads"].items():
        assert list(details[pos]["shape"]) == outs[head]["shape"]


@pytest.mark.slow
def test_segmenter_returns_class_mask_instance_ids_and_instances(instance_models: dict[str, Path]) -> None:
    import cv2

    from edgeseg.runtime import Segmenter

    seg = Segmenter(instance_models["tflite"], track=True)
    frame = cv2.imread(str(sorted((instance_models["data"] / "images").glob("*.png"))[0]))
    frame = cv2.resize(frame, (160, 120))
    r = seg.segment(frame)
    assert r.mask.shape == (120, 160) and r.instance_ids.shape == (120, 160)
    assert r.instance_ids.dtype == np.int32
    ids = set(np.unique(r.instance_ids)) - {0}
    assert ids == {i.id for i in r.instances}
    for i in r.instances:
        x0, y0, x1, y1 = i.bbox
        assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 120 and i.area > 0
        assert i.class_id in (1, 2) and 0.0 <= i.confidence <= 1.0
    assert r.timings.group_ms > 0


@pytest.mark.slow
def test_int8_heads_follow_the_float_heads(instance_models: dict[str, Path]) -> None:
    """compare: per-head agreement; the int8 offsets stay within a few quantization steps."""
    res = runner.invoke(app, ["compare", str(instance_models["keras"]), str(instance_models["tflite"]),
                              "--data", str(instance_models["data"]), "--limit", "12", "--json"], env=WIDE)
    assert res.exit_code == 0, res.output
    heads = json.loads(res.output.strip().splitlines()[-1])["instance_heads"]
    assert heads["images"] == 12
    assert heads["class_agreement"] > 0.9
    assert heads["center_mae"] < 0.05
    assert heads["offset_mae_px"] < 2 * heads["offset_scale_px"] + 0.05
    assert "pq_drop" in heads


@pytest.mark.slow
def test_predict_writes_instances_that_evaluate_scores_as_pq(instance_models: dict[str, Path],
                                                             tmp_path: Path) -> None:
    out = tmp_path / "pred"
    res = runner.invoke(app, ["predict", str(instance_models["tflite"]), "--source",
                              str(instance_models["data"] / "images"), "-o", str(out)], env=WIDE)
    assert res.exit_code == 0, res.output
    assert len(list((out / "instances").glob("*.png"))) == 32
    res = runner.invoke(app, ["evaluate", str(out), "--data", str(instance_models["data"]),
                              "--task", "instance", "--json"], env=WIDE)
    assert res.exit_code == 0, res.output
    direct = runner.invoke(app, ["evaluate", str(instance_models["tflite"]), "--data",
                                 str(instance_models["data"]), "--task", "instance", "--json"], env=WIDE)
    a = json.loads(res.output.strip().splitlines()[-1])["panoptic"]
    b = json.loads(direct.output.strip().splitlines()[-1])["panoptic"]
    # The folder and the model are scored the same way: the same PQ (to rounding of resizes).
    assert a["things"]["pq"] == pytest.approx(b["things"]["pq"], abs=0.02)


@pytest.mark.slow
def test_resume_continues_an_instance_model_and_keeps_the_best_pq_things_epoch(
        instance_models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    # A copy of the run: the resumed one writes its own history and checkpoints.
    src = instance_models["keras"]
    for suffix in (".keras", ".keras.json", ".last.keras", ".last.keras.json", ".history.csv"):
        shutil.copy(src.with_name(src.stem + suffix), tmp_path / ("inst" + suffix))
    out = tmp_path / "inst.keras"
    res = runner.invoke(app, ["train", "--data", str(instance_models["data"]), "--task", "instance",
                              "--epochs", "5", "--batch-size", "8", "--backbone-weights", "none",
                              "--resume", str(tmp_path / "inst.last.keras"), "-o", str(out)], env=WIDE)
    assert res.exit_code == 0, res.output
    assert "resuming from" in res.output and "after epoch 4" in res.output
    assert "epoch 5/5" in res.output and "epoch 4/" not in res.output  # one more epoch only
    lines = (tmp_path / "inst.history.csv").read_text().splitlines()
    keys = lines[0].split(",")
    rows = [dict(zip(keys, map(float, ln.split(",")))) for ln in lines[1:]]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5] and "val_pq_things" in keys
    state = json.loads((tmp_path / "inst.last.keras.json").read_text())["train"]["state"]
    assert state["epoch"] == 5 and state["best_by"] == "val_pq_things"
    best = max(rows, key=lambda r: (r["val_pq_things"], r["val_miou"]))
    assert state["best_epoch"] == best["epoch"]
    assert state["best_pq_things"] == pytest.approx(best["val_pq_things"], abs=1e-5)
    assert f"best val PQ things {best['val_pq_things']:.4f}" in res.output
    assert "grouping tuned on 29 training scenes" in res.output
    assert json.loads((tmp_path / "inst.keras.json").read_text())["instance"]["grouping"]["scenes"] == 29


@pytest.mark.slow
def test_edgetpu_conversion_maps_every_op_and_keeps_the_instances(instance_models: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    tpu = tmp_path / "tpu.tflite"
    res = runner.invoke(app, ["convert", str(instance_models["keras"]), "--target", "edgetpu", "--calib",
                              str(instance_models["data"] / "images"), "-o", str(tpu)], env=WIDE)
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "tpu_edgetpu_preflight.json").read_text())
    assert report["edgetpu_ops"] == report["total_ops"], [o for o in report["ops"] if not o["supported"]]
    assert [o["version"] for o in report["ops"] if o["op"] == "RESIZE_BILINEAR"] == [2, 2, 2]
    pq = {}
    for name, model in (("cpu", instance_models["tflite"]), ("edgetpu", tpu)):
        r = runner.invoke(app, ["evaluate", str(model), "--data", str(instance_models["data"]),
                                "--task", "instance", "--json"], env=WIDE)
        assert r.exit_code == 0, r.output
        pq[name] = json.loads(r.output.strip().splitlines()[-1])["panoptic"]["things"]["pq"]
    # The same float model through the two resizes (same values) and two int8 calibrations.
    assert pq["edgetpu"] == pytest.approx(pq["cpu"], abs=0.1)
