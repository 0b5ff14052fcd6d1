"""Shared fixtures: a synthetic dataset and a tiny model actually trained on it, built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TINY_CLASSES = 4
TINY_SIZE = 64


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset (train/ + val/, 4 classes, 64×64)."""
    from edgeseg.data.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root / "train", n_classes=TINY_CLASSES, count=192, height=TINY_SIZE, width=TINY_SIZE,
               seed=11)
    synthesize(root / "val", n_classes=TINY_CLASSES, count=32, height=TINY_SIZE, width=TINY_SIZE,
               seed=12)
    (root / "labels.txt").write_text((root / "train" / "labels.txt").read_text())
    return root


@pytest.fixture(scope="session")
def trained(synth_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tiny model (alpha 0.25, 64×64) trained for a few epochs: (path, TrainResult)."""
    from edgeseg.config import ModelConfig
    from edgeseg.train import TrainConfig, train

    out = tmp_path_factory.mktemp("trained") / "tiny.keras"
    cfg = ModelConfig(n_classes=TINY_CLASSES, height=TINY_SIZE, width=TINY_SIZE, alpha=0.25,
                      labels=("background", "ellipse", "box", "bar"))
    tcfg = TrainConfig(data=str(synth_data), output=str(out), epochs=8, batch_size=16, lr=3e-3,
                       warmup_epochs=0.5, seed=0)
    result = train(cfg, tcfg, log=lambda s: None)
    return out, result


@pytest.fixture(scope="session")
def converted(trained, synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trained tiny model as float32, float16 and int8 .tflite files."""
    from edgeseg.convert.quantize import ConvertConfig, convert

    src, _ = trained
    out = tmp_path_factory.mktemp("converted")
    paths = {}
    for mode in ("float32", "float16", "int8"):
        ccfg = ConvertConfig(mode=mode, calib=str(synth_data / "train"), calib_count=100)
        paths[mode] = convert(src, out / f"tiny_{mode}.tflite", ccfg, log=lambda s: None).path
    return paths
