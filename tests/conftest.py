"""Shared fixtures: a synthetic dataset and a tiny model actually trained on it, built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TINY_CLASSES = 4
TINY_SIZE = 64


def colour_blocks(out: Path, count: int, seed: int) -> None:
    """Scenes of 8-px colour blocks labelled dark / red / green / blue by dominant channel.

    A per-pixel task a 64-px model learns in seconds on 2 cores, so the quantized
    vs float comparisons run on a model with real, non-trivial decision
    boundaries. (The shape scenes of ``edgeseg data synth`` need minutes at 128 px.)
    """
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True)
    (out / "annotations").mkdir()
    for i in range(count):
        small = rng.integers(0, 256, (TINY_SIZE // 8, TINY_SIZE // 8, 3)).astype(np.uint8)
        rgb = cv2.resize(small, (TINY_SIZE, TINY_SIZE), interpolation=cv2.INTER_NEAREST)
        mask = np.where(rgb.max(-1) < 96, 0, 1 + rgb.argmax(-1)).astype(np.uint8)
        noisy = np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(out / "images" / f"{i:04d}.png"), cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / "annotations" / f"{i:04d}.png"), mask)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small learnable dataset (train/ + val/, 4 classes, 64×64)."""
    root = tmp_path_factory.mktemp("blocks")
    colour_blocks(root / "train", 256, seed=11)
    colour_blocks(root / "val", 32, seed=12)
    (root / "labels.txt").write_text("dark\nred\ngreen\nblue\n")
    return root


@pytest.fixture(scope="session")
def trained(synth_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tiny model (alpha 0.25, 64×64, decoder tap at 1/8) trained briefly: (path, TrainResult)."""
    from edgeseg.config import ModelConfig
    from edgeseg.train import TrainConfig, train

    out = tmp_path_factory.mktemp("trained") / "tiny.keras"
    cfg = ModelConfig(n_classes=TINY_CLASSES, height=TINY_SIZE, width=TINY_SIZE, alpha=0.25,
                      encoder_level=2, labels=("dark", "red", "green", "blue"))
    # No augmentation: brightness jitter would move pixels across the colour thresholds.
    tcfg = TrainConfig(data=str(synth_data), output=str(out), epochs=16, batch_size=16, lr=3e-3,
                       warmup_epochs=0.3, augment=False, seed=0)
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
