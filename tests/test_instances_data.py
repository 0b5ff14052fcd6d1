"""Instance masks (Cityscapes encoding), their check, and the touching-object scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.data.instances import (
    agreement,
    check_instances,
    decode,
    encode,
    read_instances,
    write_instances,
)
from edgeseg.data.readers import read_mask
from edgeseg.data.synth_instances import (
    instance_video_frames,
    render_instance_scene,
    synthesize_instances,
)

runner = CliRunner()


def test_encode_decode_round_trip_and_16_bit_png(tmp_path: Path) -> None:
    classes = np.array([[0, 2, 2, 3], [255, 2, 5, 3]], np.uint8)
    objects = np.array([[0, 1, 2, 0], [0, 1, 0, 1]], np.int32)
    inst = encode(classes, objects)
    assert inst.tolist() == [[0, 2001, 2002, 3], [255, 2001, 5, 3001]]
    write_instances(tmp_path / "a.png", inst)
    back = read_instances(tmp_path / "a.png")
    assert back.tolist() == inst.tolist()
    c, ids = decode(back)
    assert c.tolist() == classes.tolist()
    assert ids.tolist() == [[0, 2001, 2002, 0], [0, 2001, 0, 3001]]
    with pytest.raises(ValueError, match="16-bit"):
        encode(np.full((1, 1), 70, np.uint8), np.ones((1, 1), np.int32))


def test_agreement_says_where_instances_and_classes_differ() -> None:
    classes = np.zeros((3, 4), np.uint8)
    classes[1, 1:3] = 1
    inst = encode(classes, (classes == 1).astype(np.int32))
    assert agreement(inst, classes) is None
    wrong = inst.copy()
    wrong[2, 3] = 2001
    why = agreement(wrong, classes)
    assert why is not None and "1 pixels disagree" in why and "x=3, y=2" in why
    ignored = classes.copy()
    ignored[2, 3] = 255  # crowd/ignore in the class mask: anything goes in instances
    assert agreement(wrong, ignored) is None
    assert "differs" in agreement(inst[:2], classes)


def test_scenes_have_touching_objects_of_one_class() -> None:
    touching = 0
    for i in range(20):
        _, inst = render_instance_scene(np.random.default_rng((3, i)), 4, 128, 128)
        # Two different objects of one class side by side (horizontally adjacent pixels).
        a, b = inst[:, :-1].astype(int), inst[:, 1:].astype(int)
        same_class_other_object = (a >= 1000) & (b >= 1000) & (a != b) & (a // 1000 == b // 1000)
        touching += bool(same_class_other_object.any())
    assert touching >= 12


def test_synthesize_instances_writes_agreeing_files_and_is_deterministic(tmp_path: Path) -> None:
    r = synthesize_instances(tmp_path / "a", 4, count=4, height=64, width=64, seed=5)
    synthesize_instances(tmp_path / "b", 4, count=4, height=64, width=64, seed=5)
    for i in range(4):
        name = f"{i:05d}.png"
        inst = read_instances(tmp_path / "a" / "instances" / name)
        assert agreement(inst, read_mask(tmp_path / "a" / "annotations" / name)) is None
        assert (inst == read_instances(tmp_path / "b" / "instances" / name)).all()
    found = check_instances((tmp_path / "a",), read_mask)
    assert found is not None and not found.problems
    assert found.n_files == 4 and sum(found.instances.values()) >= 8
    assert set(found.things) <= {1, 2, 3} and r.labels[0] == "background"


def test_video_keeps_each_object_number() -> None:
    frames = list(instance_video_frames(4, 8, 64, 64, seed=2))
    first = set(np.unique(frames[0][1])) - {0}
    assert len(first) >= 2
    assert all(set(np.unique(f[1])) - {0} <= first for _, f in frames)
    assert not np.array_equal(frames[0][1], frames[-1][1])  # they move


def test_data_check_reports_instances_and_fails_on_disagreement(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    res = runner.invoke(app, ["data", "synth", "--instances", "-o", str(ds), "--count", "3",
                              "--height", "64", "--width", "64"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["data", "check", str(ds)])
    assert res.exit_code == 0, res.output
    assert "Instances (3 masks" in res.output and "thing classes" in res.output
    inst = read_instances(ds / "instances" / "00001.png")
    inst[0, 0] = 3001  # background in the class mask
    write_instances(ds / "instances" / "00001.png", inst)
    (ds / "instances" / "00002.png").unlink()
    res = runner.invoke(app, ["data", "check", str(ds)])
    assert res.exit_code == 1
    assert "00001.png: 1 pixels disagree" in res.output
    assert "without instances/NAME.png (00002)" in res.output


def test_train_instance_task_without_instances_is_one_line(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    assert runner.invoke(app, ["data", "synth", "-o", str(ds), "--count", "4", "--height", "64",
                               "--width", "64"]).exit_code == 0  # semantic only: no instances/
    res = runner.invoke(app, ["train", "--data", str(ds), "--task", "instance", "--epochs", "1",
                              "-o", str(tmp_path / "m.keras")])
    assert res.exit_code == 2
    assert "has no instances/ folder" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train", "--data", str(ds), "--task", "panoptic", "--epochs", "1",
                              "-o", str(tmp_path / "m.keras")])
    assert res.exit_code == 2 and "--task 'panoptic' must be one of semantic, instance" in res.output
