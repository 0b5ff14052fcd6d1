"""A model that says when it is unsure: per-frame statistics, the convert-time reference,
drift over a rolling window, and --collect."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tflite_fixtures
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.runtime.confidence import WINDOW, ConfidenceMonitor, frame_confidence
from edgeseg.runtime.segmenter import Segmenter
from edgeseg.runtime.sinks import FrameCollector

runner = CliRunner()


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tflite_fixtures.build_cached(tmp_path_factory)


def red_blue(h: int = 48, w: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (0, 0, 255)  # BGR red
    img[:, w // 2:] = (255, 0, 0)  # BGR blue
    return img


def test_frame_statistics_for_each_head(models: Path) -> None:
    got = {}
    for name in ("float_softmax", "float_logits", "int8_softmax", "float_argmax",
                 "float_sigmoid"):
        seg = Segmenter(models / f"{name}.tflite")
        seg.segment(red_blue())
        got[name] = frame_confidence(seg)
    # the fixture models put red pixels in class 1 and blue in class 3, half each
    for name in ("float_softmax", "float_logits", "int8_softmax", "float_argmax"):
        assert got[name].shares.tolist() == [0.0, 0.5, 0.0, 0.5], name
    soft = got["float_softmax"]
    assert 0.25 < soft.top1 <= 1.0 and 0.0 < soft.margin < soft.top1
    # a logits head gets the softmax applied: the same numbers as the softmax head
    assert got["float_logits"].top1 == pytest.approx(soft.top1, abs=1e-4)
    assert got["float_logits"].margin == pytest.approx(soft.margin, abs=1e-4)
    assert got["int8_softmax"].top1 == pytest.approx(soft.top1, abs=0.02)  # quantized
    # an argmax head gives ids only: area statistics, no probabilities
    assert got["float_argmax"].top1 is None and got["float_argmax"].margin is None
    sig = got["float_sigmoid"]  # foreground where red beats green: the red half
    assert sig.shares.tolist() == [0.5, 0.5] and 0.5 <= sig.top1 <= 1.0
    assert sig.margin == pytest.approx(2 * sig.top1 - 1, abs=1e-5)


def reference(top1_p05: float, red_share: tuple[float, float]) -> dict:
    lo, hi = red_share
    return {"frames": 50, "top1": {"p05": top1_p05}, "margin": {"p05": 0.0},
            "shares": {"p05": [0.0, lo, 0.0, 0.0], "p95": [1.0, hi, 1.0, 1.0]}}


def feed(monitor: ConfidenceMonitor, seg: Segmenter, frame: np.ndarray, n: int) -> dict:
    stats = {}
    for _ in range(n):
        result = seg.segment(frame)
        stats = monitor.update(result, frame)
    return stats


def test_drift_is_flagged_once_with_the_reason_and_cleared(models: Path) -> None:
    seg = Segmenter(models / "float_softmax.tflite")
    seg.segment(red_blue())
    usual_top1 = frame_confidence(seg).top1
    notes: list[str] = []
    monitor = ConfidenceMonitor(reference(usual_top1 - 0.05, (0.3, 0.7)), seg.labels,
                                notes.append)
    monitor.seg = seg
    stats = feed(monitor, seg, red_blue(), WINDOW)
    assert stats["drift"] is False and notes == [] and stats["unsure_frames"] == 0
    assert stats["shares"] == {"background": 0.0, "red": 0.5, "green": 0.0, "blue": 0.5}
    # all blue: red's share leaves its usual 30-70 % (widened by 5 points)
    blue = np.full((48, 64, 3), (255, 0, 0), np.uint8)
    stats = feed(monitor, seg, blue, WINDOW)
    assert stats["drift"] is True and stats["drift_events"] == 1
    assert stats["drift_reasons"] == ["red covers 0% (usual 25%-75%)"]
    # logged when the rolling share first drops below 25 %: after 16 blue frames of 30
    assert notes == ["warning: the model is unsure of what it sees (red covers 23% (usual "
                     "25%-75%) over the last 30 frames): a dirty lens, the dark, or a scene "
                     "unlike its training data?"]
    stats = feed(monitor, seg, red_blue(), WINDOW)
    assert stats["drift"] is False and notes[-1] == ("the model's confidence is back within "
                                                     "its convert-time range.")
    assert len(notes) == 2  # one line per start and end, not per frame


def test_low_top1_frames_are_unsure_and_collected(models: Path, tmp_path: Path) -> None:
    seg = Segmenter(models / "float_softmax.tflite")
    notes: list[str] = []
    collector = FrameCollector(tmp_path / "unsure", max_files=100, min_interval_s=0)
    monitor = ConfidenceMonitor(reference(0.999, (0.0, 1.0)), seg.labels, notes.append,
                                collector)
    monitor.seg = seg
    stats = feed(monitor, seg, red_blue(), 12)
    assert stats["unsure_frames"] == 12 and stats["collected"] == 12
    assert stats["drift_reasons"][0].startswith("mean top1 ")
    from edgeseg.data.dataset import list_pairs

    pairs = list_pairs(tmp_path / "unsure")
    assert len(pairs) == 12
    mask = cv2.imread(str(pairs[0][1]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (48, 64) and set(np.unique(mask).tolist()) == {1, 3}
    assert (mask[:, :32] == 1).all() and (mask[:, 32:] == 3).all()


def test_argmax_head_flags_area_drift_and_collects_while_drifting(models: Path,
                                                                  tmp_path: Path) -> None:
    seg = Segmenter(models / "float_argmax.tflite")
    collector = FrameCollector(tmp_path / "c", min_interval_s=0)
    monitor = ConfidenceMonitor(reference(0.9, (0.4, 0.6)), seg.labels, lambda m: None,
                                collector)
    monitor.seg = seg
    stats = feed(monitor, seg, red_blue(), 15)
    assert stats["top1"] is None and stats["drift"] is False and stats["collected"] == 0
    stats = feed(monitor, seg, np.full((48, 64, 3), (255, 0, 0), np.uint8), WINDOW)
    assert stats["drift"] is True and stats["collected"] > 0


def test_collector_keeps_the_newest_within_count_and_size(tmp_path: Path) -> None:
    frame = np.random.default_rng(3).integers(0, 255, (120, 160, 3), np.uint8)
    mask = np.zeros((120, 160), np.uint8)
    c = FrameCollector(tmp_path / "d", max_files=3, min_interval_s=0)
    for _ in range(5):
        assert c(frame, mask)
    assert (c.saved, c.evicted) == (5, 2)
    images = sorted(p.stem for p in (tmp_path / "d" / "images").iterdir())
    masks = sorted(p.stem for p in (tmp_path / "d" / "annotations").iterdir())
    assert images == masks and len(images) == 3
    one_pair = sum(p.stat().st_size for p in (tmp_path / "d").rglob("*") if p.is_file()) / 3
    small = FrameCollector(tmp_path / "e", max_files=100, max_mb=2.5 * one_pair / 1e6,
                           min_interval_s=0)
    for _ in range(4):
        small(frame, mask)
    assert len(list((tmp_path / "e" / "images").iterdir())) == 2 and small.evicted == 2
    # the rate limit: one bad minute is not 1,800 copies of itself
    limited = FrameCollector(tmp_path / "f", min_interval_s=60)
    assert limited(frame, mask) and not limited(frame, mask)


def test_run_collect_saves_unsure_frames_and_logs_the_drift(models: Path,
                                                           tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    shutil.copyfile(models / "float_softmax.tflite", model)
    side = json.loads((models / "float_softmax.tflite.json").read_text())
    side["tflite"]["confidence"] = reference(0.999, (0.0, 1.0))
    (tmp_path / "m.tflite.json").write_text(json.dumps(side))
    video = tflite_fixtures.video(tmp_path / "in.mp4", 40, (64, 48))
    r = runner.invoke(app, ["run", str(model), "--source", str(video), "--no-display",
                            "--collect", str(tmp_path / "relabel")], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "warning: the model is unsure of what it sees (mean top1 " in r.output
    images = list((tmp_path / "relabel" / "images").glob("*.jpg"))
    assert len(images) >= 1  # rate-limited to one a second
    assert all((tmp_path / "relabel" / "annotations" / f"{p.stem}.png").is_file()
               for p in images)


@pytest.mark.slow
def test_convert_stores_the_reference_in_sidecar_and_metadata(converted: dict[str, Path],
                                                              synth_data: Path) -> None:
    from edgeseg.tflite.metadata import read_standard_metadata

    for mode in ("float32", "int8"):
        side = json.loads(converted[mode].with_name(converted[mode].name + ".json").read_text())
        ref = side["tflite"]["confidence"]
        assert ref["frames"] == 64 and ref["source"].startswith("64 calibration images from")
        top1 = ref["top1"]
        assert 0.25 <= top1["p05"] <= top1["p50"] <= top1["p95"] <= 1.0
        assert sum(ref["shares"]["mean"]) == pytest.approx(1.0, abs=1e-3)
        # the trained model is sure of its training-like images
        assert top1["p50"] > 0.8, ref
        embedded = read_standard_metadata(converted[mode])["edgeseg"]
        assert embedded["tflite"]["confidence"] == ref  # model and description agree


@pytest.mark.slow
def test_trained_model_is_sure_of_its_scenes_and_flags_grey_ones(converted: dict[str, Path],
                                                                 synth_data: Path) -> None:
    from edgeseg.data.readers import read_image

    seg = Segmenter(converted["int8"], rgb=True)
    notes: list[str] = []
    monitor = ConfidenceMonitor.for_segmenter(seg, notes.append, None, 0, 0)
    assert monitor.reference is not None
    for p in sorted((synth_data / "val" / "images").iterdir())[:WINDOW]:
        rgb = read_image(p)
        stats = monitor.update(seg.segment(rgb), rgb)
    assert stats["drift"] is False, stats
    # flat grey at the dark/colour threshold, all channels equal: the classes tie
    grey = np.full((64, 64, 3), 96, np.uint8)
    for _ in range(WINDOW):
        stats = monitor.update(seg.segment(grey), grey)
    assert stats["drift"] is True, stats
    assert len(notes) == 1 and "the model is unsure" in notes[0]
