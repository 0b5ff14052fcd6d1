"""The demo's account of its int8 model's confidence on its own clip (issue 25, item 12)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest
import tflite_fixtures

from edgeseg.demo.confidence import clip_confidence, explain


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tflite_fixtures.build_cached(tmp_path_factory)


def with_reference(models: Path, tmp_path: Path, p05: float, p50: float) -> Path:
    """The int8 fixture with a convert-time confidence reference in its sidecar."""
    model = tmp_path / "m.tflite"
    shutil.copy(models / "int8_softmax.tflite", model)
    side = json.loads((models / "int8_softmax.tflite.json").read_text())
    side["tflite"]["confidence"] = {"top1": {"p05": p05, "p50": p50, "p95": 1.0},
                                    "source": "64 calibration images from calib/"}
    (tmp_path / "m.tflite.json").write_text(json.dumps(side))
    return model


def decoded(video: Path) -> list:
    """The clip's frames as read back: given as the 'before encoding' frames, no codec loss."""
    cap, frames = cv2.VideoCapture(str(video)), []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def test_clip_confidence_measures_the_clip_against_the_models_reference(models: Path,
                                                                        tmp_path: Path) -> None:
    video = tflite_fixtures.video(tmp_path / "clip.avi", 6, (64, 64))
    frames = decoded(video)
    sure = clip_confidence(with_reference(models, tmp_path, 0.3, 0.5), video, frames, None)
    assert sure["frames"] == 6 and sure["below_p05"] is False
    assert 0.3 < sure["top1"]["min"] <= sure["top1"]["mean"] <= sure["top1"]["max"] <= 1.0
    assert abs(sure["raw_top1"] - sure["top1"]["mean"]) < 0.01  # the same frames
    assert "within that range: no 'unsure' warning" in explain(sure)
    unsure = clip_confidence(with_reference(models, tmp_path, 0.999, 0.9995), video, frames,
                             "warning: the model is unsure of what it sees (mean top1 0.9 < 0.999 "
                             "over the last 10 frames): a dirty lens…")
    assert unsure["below_p05"] is True
    text = explain(unsure)
    assert "it fired on: mean top1 0.9 < 0.999 over the last 10 frames" in text
    assert "a single scene, and one in this model's lowest 5 %" in text
    assert "mp4 encoding" not in text  # nothing lost to a codec here
    # a model without a reference: nothing to say
    assert clip_confidence(models / "int8_softmax.tflite", video, frames, None) is None
    assert explain(None) is None


def test_the_explanation_names_the_codec_when_it_is_what_crossed_the_line() -> None:
    c = {"frames": 90, "top1": {"mean": 0.523, "min": 0.449, "max": 0.682}, "raw_top1": 0.564,
         "reference": {"p05": 0.553, "p50": 0.656, "source": "64 calibration images"},
         "below_p05": True, "warning": None}  # the demo's clip, measured on a 4-min model
    text = explain(c)
    assert "0.523 (0.449-0.682 over 90 frames)" in text and "0.656 (median), 0.553" in text
    assert "harder than most calibration scenes for this model (0.564" in text
    assert "the clip's mp4 encoding takes 0.041 off" in text
