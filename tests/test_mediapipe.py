"""MediaPipe compatibility is checked, not claimed: ImageSegmenter runs what convert marks for it.

MediaPipe pins its own numpy/protobuf, so it runs in its own virtual environment:
``EDGESEG_MEDIAPIPE_PYTHON`` names its python, else one is made (once) in the test cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pip_cache import cached, pip_install_or_skip

HERE = Path(__file__).resolve().parent
MEDIAPIPE = "mediapipe==0.10.14"


def _mediapipe_python() -> str:
    given = os.environ.get("EDGESEG_MEDIAPIPE_PYTHON")
    if given:
        return given

    def make(venv: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip_install_or_skip(venv / "bin" / "python", MEDIAPIPE, what=MEDIAPIPE)

    # Kept in the test cache, keyed by MediaPipe's pin and this Python.
    return str(cached("venv-mediapipe", [MEDIAPIPE, sys.version], make) / "bin" / "python")


def _mediapipe_masks(model: Path, images: list[Path], out: Path) -> dict:
    proc = subprocess.run([_mediapipe_python(), str(HERE / "mediapipe_segment.py"), str(out), str(model),
                           *map(str, images)], capture_output=True, text=True)
    assert proc.returncode == 0, f"MediaPipe crashed on {model.name} (rc {proc.returncode})"
    return dict(np.load(out))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["float32", "float16", "int8-float-io"])
def test_image_segmenter_claims_hold(converted, trained, synth_data: Path, tmp_path: Path, mode: str) -> None:
    from edgeseg.data.readers import read_image
    from edgeseg.runtime.segmenter import Segmenter
    from edgeseg.tflite.metadata import read_standard_metadata

    if mode == "int8-float-io":
        from edgeseg.convert.quantize import ConvertConfig, convert

        ccfg = ConvertConfig(mode="int8", io="float32", calib=str(synth_data / "train"), calib_count=100)
        model = convert(trained[0], tmp_path / "tiny_int8_fio.tflite", ccfg, log=lambda s: None).path
    else:
        model = converted[mode]
    import json

    assert json.loads(model.with_name(model.name + ".json").read_text())["tflite"]["mediapipe_image_segmenter"]
    assert read_standard_metadata(model.read_bytes())["subgraph"] == "ImageSegmenter"
    images = sorted((synth_data / "val" / "images").glob("*.png"))[:8]
    masks = _mediapipe_masks(model, images, tmp_path / "mp.npz")
    assert "error" not in masks, str(masks.get("error"))
    seg = Segmenter(model, rgb=True)
    agree = [float((masks[f"mask{i}"] == seg.segment(read_image(p)).mask).mean()) for i, p in enumerate(images)]
    assert np.mean(agree) >= 0.95, agree


@pytest.mark.slow
def test_no_claim_where_mediapipe_misreads(converted) -> None:
    """The int8 model's uint8 scores: MediaPipe 0.10.14 mis-reads them (52 % agreement measured)."""
    import json

    from edgeseg.tflite.metadata import read_standard_metadata

    model = converted["int8"]
    side = json.loads(model.with_name(model.name + ".json").read_text())
    assert side["tflite"]["mediapipe_image_segmenter"] is False
    meta = read_standard_metadata(model.read_bytes())
    assert meta["subgraph"] == "Segmentation"
    assert "Not for MediaPipe's ImageSegmenter: it does not read a quantized uint8 score output" in \
        meta["description"]
