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


# Fixtures that train or convert: a test using one must be marked slow (checked below).
TRAINING_FIXTURES = {"trained", "converted", "shipped"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [i.nodeid for i in items if TRAINING_FIXTURES & set(getattr(i, "fixturenames", ()))
                and i.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError("these tests train or convert a model but are not marked "
                                "@pytest.mark.slow: " + ", ".join(unmarked))


@pytest.fixture(autouse=True)
def _training_needs_the_slow_marker(request: pytest.FixtureRequest,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that trains or converts (directly, via the CLI or a fixture) must be marked slow.

    Calls that stop on bad input (the CLI's error tests) are fine; one that finishes
    fails the test.
    """
    if request.node.get_closest_marker("slow") is not None:
        return
    import edgeseg.convert.quantize
    import edgeseg.train

    def refusing(fn):  # noqa: ANN001, ANN202
        def run(*args: object, **kwargs: object) -> object:
            fn(*args, **kwargs)  # bad input raises here, before any training
            raise AssertionError(f"{request.node.nodeid} trains or converts a model: mark it "
                                 "@pytest.mark.slow")

        return run

    monkeypatch.setattr(edgeseg.train, "train", refusing(edgeseg.train.train))
    monkeypatch.setattr(edgeseg.convert.quantize, "convert",
                        refusing(edgeseg.convert.quantize.convert))


def constant_miou(data: Path) -> float:
    """mIoU of the best constant predictor (the most frequent class everywhere) on ``data``."""
    import numpy as np

    from edgeseg.data.dataset import list_pairs
    from edgeseg.data.readers import read_mask

    counts = np.zeros(TINY_CLASSES, np.int64)
    for _, mask in list_pairs(data):
        counts += np.bincount(read_mask(mask).ravel(), minlength=TINY_CLASSES)[:TINY_CLASSES]
    return float(counts.max() / counts.sum() / TINY_CLASSES)


def shipped_configs() -> dict[str, object]:
    """The configurations people ship, at the tiny fixture size.

    ``seed``: the published decoder (tapped at 1/8, which learns in seconds at 64 px).
    ``realtime``: the trainer's ``--preset realtime`` when ``edgeseg.config.PRESETS``
    has it; until then the ``lite`` decoder it builds on.
    """
    from edgeseg.config import ModelConfig

    tiny = {"n_classes": TINY_CLASSES, "height": TINY_SIZE, "width": TINY_SIZE, "alpha": 0.25,
            "labels": ("dark", "red", "green", "blue")}
    configs: dict[str, object] = {"seed": ModelConfig(encoder_level=2, **tiny)}
    try:
        from edgeseg.config import PRESETS  # type: ignore[attr-defined]
    except ImportError:
        PRESETS = {}  # noqa: N806
    preset = PRESETS.get("realtime")
    if preset is None:
        configs["lite"] = ModelConfig(encoder_level=2, decoder="lite", **tiny)
    else:
        fields = preset if isinstance(preset, dict) else preset.to_dict()
        keep = {k: v for k, v in fields.items() if k in ModelConfig.__dataclass_fields__
                and k not in ("extra", "mean", "std") and k not in tiny}
        configs["realtime"] = ModelConfig(**{**keep, **tiny})
    return configs


def train_tiny(cfg: object, data: Path, out: Path, lr: float = 3e-3):
    """Train ``cfg`` briefly on the colour blocks (no augmentation: brightness jitter would
    move pixels across the colour thresholds) and print the mIoU it reached."""
    from edgeseg.train import TrainConfig, train

    tcfg = TrainConfig(data=str(data), output=str(out), epochs=16, batch_size=16, lr=lr,
                       warmup_epochs=0.3, augment=False, seed=0)
    result = train(cfg, tcfg, log=lambda s: None)
    floor = constant_miou(data / "val")
    print(f"\n{out.name}: val mIoU {result.best_miou:.3f} (constant predictor {floor:.3f})")
    assert result.best_miou >= floor + 0.3, (result.best_miou, floor)
    return result


@pytest.fixture(scope="session")
def trained(synth_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """The seed decoder (alpha 0.25, 64×64, tap at 1/8) trained briefly: (path, TrainResult)."""
    out = tmp_path_factory.mktemp("trained") / "tiny.keras"
    return out, train_tiny(shipped_configs()["seed"], synth_data, out)


@pytest.fixture(scope="session", params=["seed", "realtime"])
def shipped(request: pytest.FixtureRequest, trained, synth_data: Path,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """(name, trained .keras, its int8 .tflite) for each configuration people ship."""
    from edgeseg.convert.quantize import ConvertConfig, convert

    configs = shipped_configs()
    name = request.param if request.param in configs else "lite"  # the hook until the preset
    if name == "seed":
        path = trained[0]
    else:
        path = tmp_path_factory.mktemp(name) / f"{name}.keras"
        # The depthwise decoder needs a larger step in 16 epochs: at 3e-3 it reached mIoU
        # 0.48 and 96.9 % int8 agreement, at 1e-2 0.82 and 99.4 % (measured here).
        train_tiny(configs[name], synth_data, path, lr=1e-2)
    ccfg = ConvertConfig(mode="int8", calib=str(synth_data / "train"), calib_count=100)
    int8 = convert(path, path.with_name(f"{name}_int8.tflite"), ccfg, log=lambda s: None).path
    return name, path, int8


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
