"""run with instances: per-instance overlay, json-log records, /stats and /metrics counts, stable ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tflite_fixtures
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.runtime.health import Health, prometheus_text
from edgeseg.runtime.instances import Instance
from edgeseg.runtime.tracking import InstanceCounter

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tflite_fixtures.build_cached(tmp_path_factory)


def test_run_components_logs_instances_with_ids_stable_across_frames(models: Path, tmp_path: Path) -> None:
    video = tflite_fixtures.video(tmp_path / "in.mp4", 8, (320, 240))
    out, log = tmp_path / "out.mp4", tmp_path / "frames.jsonl"
    r = runner.invoke(app, ["run", str(models / "int8_softmax.tflite"), "--source", str(video),
                            "--no-display", "--max-frames", "6", "--save", str(out),
                            "--json-log", str(log), "--instances", "components"], env=WIDE)
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 6
    for rec in records:
        classes = sorted(i["class"] for i in rec["instances"])
        # Left half red, right half blue, a green square moving down the middle.
        assert classes == ["blue", "green", "red"], classes
        assert rec["group_ms"] >= 0
        assert rec["instance_kind"] == "components"  # said, so nobody takes them for model instances
        for i in rec["instances"]:
            assert set(i) == {"id", "class", "class_id", "area", "bbox", "centre", "confidence"}
    ids = [{i["class"]: i["id"] for i in rec["instances"]} for rec in records]
    assert all(d == ids[0] for d in ids), ids  # the square moves 8 px a frame: its id stays
    assert out.is_file()


def test_run_draws_instances_beside_a_legend_panel_on_small_frames(models: Path, tmp_path: Path) -> None:
    # A small frame gets the class legend as a panel beside it: instances go on the frame part.
    video = tflite_fixtures.video(tmp_path / "small.mp4", 4, (128, 96))
    out = tmp_path / "out.mp4"
    r = runner.invoke(app, ["run", str(models / "int8_softmax.tflite"), "--source", str(video),
                            "--no-display", "--max-frames", "3", "--save", str(out),
                            "--instances", "components"], env=WIDE)
    assert r.exit_code == 0, r.output
    assert out.is_file() and out.stat().st_size > 0


def test_stats_and_metrics_count_objects_per_class_and_distinct_ids(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    h = Health(str(model))
    counter = InstanceCounter(["background", "person", "car"], "heads")
    h.instances = counter

    def inst(i: int, c: int) -> Instance:
        return Instance(i, c, 10, (0, 0, 2, 2), (1.0, 1.0), 0.9)

    counter.update([inst(1, 1), inst(2, 1), inst(3, 2)])
    counter.update([inst(1, 1), inst(4, 1)])  # person 2 left, person 4 came
    snap = h.snapshot()["instances"]
    assert snap == {"kind": "heads", "current": {"person": 2}, "seen": {"person": 3, "car": 1}}
    text = prometheus_text(h).decode()
    assert 'edgeseg_instances{class="person",kind="heads"} 2.0' in text
    assert 'edgeseg_instances{class="car",kind="heads"} 0.0' in text
    assert 'edgeseg_instances_seen_total{class="person",kind="heads"} 3.0' in text


def test_instance_overlay_draws_each_instance_in_its_own_colour() -> None:
    from edgeseg.runtime.instance_draw import draw_instances

    frame = np.zeros((40, 60, 3), np.uint8)
    ids = np.zeros((40, 60), np.int32)
    ids[5:20, 5:25], ids[5:20, 25:45] = 1, 2
    insts = [Instance(1, 1, 300, (5, 5, 25, 20), (15.0, 12.0), 0.9),
             Instance(2, 1, 300, (25, 5, 45, 20), (35.0, 12.0), 0.9)]
    out = draw_instances(frame, ids, insts, ["bg", "box"])
    a, b = out[15, 10].astype(int), out[15, 40].astype(int)
    assert a.sum() > 0 and b.sum() > 0 and np.abs(a - b).sum() > 60  # two touching, two colours
    assert (out[0:4, 46:] == 0).all()  # no instance or text there: the frame untouched
