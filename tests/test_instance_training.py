"""Instance training's validation: PQ things beside mIoU each epoch, and the best epoch chosen by it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgeseg.config import ModelConfig


def touching_boxes_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 32×32 output-size scene: two touching class-1 boxes (x 2-9 and 10-17, y 4-11).

    Returns (Cityscapes-encoded truth, one-hot scores, centre heatmap, true offsets).
    """
    h, w = 32, 32
    truth = np.zeros((h, w), np.int32)
    truth[4:12, 2:10], truth[4:12, 10:18] = 1001, 1002
    scores = np.eye(3, dtype=np.float32)[np.where(truth >= 1000, truth // 1000, truth)]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    heat = np.maximum(np.exp(-((yy - 7) ** 2 + (xx - 5) ** 2) / 8), np.exp(-((yy - 7) ** 2 + (xx - 13) ** 2) / 8))
    offsets = np.stack([7 - yy, np.where(xx < 10, 5, 13) - xx], -1).astype(np.float32)
    return truth, scores, heat.astype(np.float32), offsets


class FakeModel:
    """Returns fixed heads, as an instance model called on a batch of one."""

    def __init__(self, scores: np.ndarray, heat: np.ndarray, offsets: np.ndarray) -> None:
        self.out = [scores[None], heat[None, ..., None], offsets[None]]

    def __call__(self, x: object, training: bool = False) -> list[np.ndarray]:
        return self.out


CFG = ModelConfig(n_classes=3, height=64, width=64, task="instance", things=(1, 2))


def test_validation_scores_pq_things_from_the_heads_beside_miou() -> None:
    from edgeseg.train.loop import validate_instances

    truth, scores, heat, offsets = touching_boxes_scene()
    ds = [(np.zeros((1, 64, 64, 3), np.float32), truth[None])]
    acc, pq = validate_instances(FakeModel(scores, heat, offsets), ds, CFG, local=True)
    assert acc.result().mean_iou == pytest.approx(1.0) and pq == pytest.approx(1.0)
    # One centre only: the two boxes are one predicted object, IoU 64/128 = 0.5 with each,
    # not > 0.5: no match, 1 false positive, 2 false negatives -> PQ 0; the classes stay right.
    one = heat.copy()
    one[:, 10:] = 0
    acc, pq = validate_instances(FakeModel(scores, one, offsets), ds, CFG, local=True)
    assert acc.result().mean_iou == pytest.approx(1.0) and pq == pytest.approx(0.0)


@pytest.mark.parametrize("task, best", [("instance", [1, 1, 3]), ("semantic", [1, 2, 2])])
def test_best_epoch_is_the_best_pq_things_for_instance_models_and_miou_otherwise(
        task: str, best: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgeseg.model.io as io
    from edgeseg.train import loop
    from edgeseg.verify.metrics import SegMetrics

    saved: list[tuple[Path, dict]] = []
    monkeypatch.setattr(io, "save_model", lambda model, cfg, path, **info: saved.append((path, info)))
    monkeypatch.setattr(loop, "float32_copy", lambda model, cfg: model)
    cfg = CFG.with_(task=task)
    ck = loop.Checkpoints(cfg, tmp_path / "m.keras", tmp_path / "m.last.keras", {})
    got = []
    # (mIoU, PQ things) per epoch: epoch 2 has the best mIoU, epoch 3 the best PQ things.
    for epoch, (miou, pq) in enumerate([(0.5, 0.3), (0.6, 0.2), (0.4, 0.35)], start=1):
        m = replace(SegMetrics.from_confusion(np.diag([100, 100, 100]).astype(np.int64)), mean_iou=miou)
        ck.save(object(), epoch, m, {}, pq if task == "instance" else None)
        got.append(ck.best_epoch)
    assert got == best
    state = saved[-1][1]["train"]["state"]
    assert state["best_by"] == ("val_pq_things" if task == "instance" else "val_miou")
    assert [p.name for p, _ in saved].count("m.keras") == len(set(best))


@pytest.mark.parametrize("flag, balance", [([], True), (["--no-balance"], False)])
def test_no_balance_reaches_the_training_settings(flag: list[str], balance: bool, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import edgeseg.train
    from edgeseg.cli import app

    runner = CliRunner()
    data = tmp_path / "ds"
    assert runner.invoke(app, ["data", "synth", "-o", str(data), "--count", "4", "--height", "64",
                               "--width", "64"]).exit_code == 0
    seen = []

    def fake_train(cfg: object, tcfg: object, **kw: object) -> None:
        seen.append(tcfg)
        raise SystemExit(3)

    monkeypatch.setattr(edgeseg.train, "train", fake_train)
    res = runner.invoke(app, ["train", "--data", str(data), "-o", str(tmp_path / "m.keras"), *flag])
    assert res.exit_code == 3 and seen[0].balance is balance


def test_edgetpu_copy_of_an_instance_model_gives_keras_heads() -> None:
    """The instance heads' Edge TPU resize (RESIZE_BILINEAR v2 ×2N, every 2nd sample) computes
    what Keras' Resizing computes, for all three outputs."""
    from edgeseg.config import preset
    from edgeseg.model.build import build_model, deployment_copy

    cfg = ModelConfig(n_classes=3, height=64, width=96, task="instance", things=(1, 2),
                      **{**preset("realtime"), "alpha": 0.25})
    model = build_model(cfg)
    x = np.random.default_rng(7).normal(size=(1, 64, 96, 3)).astype("float32")
    tpu = deployment_copy(model, cfg, "logits", "resize", edgetpu=True)
    want = [np.asarray(o) for o in deployment_copy(model, cfg, "logits", "resize")(x)]
    got = [np.asarray(o) for o in tpu(x)]
    kinds = {layer.name: type(layer).__name__ for layer in tpu.layers}
    assert kinds["instance_center"] == kinds["instance_offset"] == "EdgeTpuBilinearResize"
    for g, w, c in zip(got, want, (3, 1, 2)):
        assert g.shape == w.shape == (1, 32, 48, c)
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-6 * max(np.abs(w).max(), 1e-3))


def test_grouping_is_tuned_to_the_pair_that_scores_best_and_the_readers_use_it() -> None:
    from edgeseg.runtime.instances import InstanceReader, grouping_settings
    from edgeseg.train.instance_tune import tune_grouping

    truth, scores, _, offsets = touching_boxes_scene()
    heat = np.zeros((32, 32), np.float32)
    heat[7, 5] = heat[7, 13] = 0.9
    heat[7, 0] = 0.15  # a weak spurious peak 5 px left of the left box's centre
    offsets[4:12, 2:6, 1] = 1 - np.arange(2, 6)  # the left box's left half points at x = 1
    ds = [(np.zeros((1, 64, 64, 3), np.float32), truth[None])]
    got = tune_grouping(FakeModel(scores, heat, offsets), ds, CFG)
    # The defaults (0.1, window 7) keep the weak peak: the left half goes to it, the left box
    # is split in two halves of IoU 0.5 (no match): TP 1, FP 2, FN 1 -> PQ 1 / 2.5 = 0.4.
    assert got["default_pq_things"] == pytest.approx(0.4)
    assert got["threshold"] >= 0.2 and got["pq_things"] == pytest.approx(1.0)
    assert grouping_settings(None) == (0.1, 7)
    layout = {"heads": {"semantic": 0, "center": 1, "offset": 2}, "things": [1],
              "grouping": {"threshold": got["threshold"], "kernel": got["kernel"]}}

    class NoInterpreter:
        def get_output_details(self) -> list[dict]:
            return [{"index": i, "quantization": (0.0, 0)} for i in range(3)]

        def tensor(self, index: int) -> object:
            return lambda: None

    reader = InstanceReader(NoInterpreter(), layout, 3, [1, 2])
    assert (reader.threshold, reader.kernel) == (got["threshold"], got["kernel"])


@pytest.mark.parametrize("flag, lr", [([], 5e-3), (["--lr", "2e-3"], 2e-3)])
def test_an_instance_model_trains_at_its_tasks_learning_rate(flag: list[str], lr: float,
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """--task instance: 5e-3 unless --lr (PQ things 0.52-0.53 against 0.49-0.51 at 2e-3,
    benchmarks/instances.md); the realtime preset's semantic models keep 2e-3."""
    from typer.testing import CliRunner

    import edgeseg.train
    from edgeseg.cli import app

    runner = CliRunner()
    data = tmp_path / "ds"
    assert runner.invoke(app, ["data", "synth", "--instances", "-o", str(data), "--count", "4",
                               "--height", "64", "--width", "64"]).exit_code == 0
    seen = []

    def fake_train(cfg: object, tcfg: object, **kw: object) -> None:
        seen.append(tcfg)
        raise SystemExit(3)

    monkeypatch.setattr(edgeseg.train, "train", fake_train)
    for task, want in (("instance", lr), ("semantic", 2e-3 if not flag else lr)):
        res = runner.invoke(app, ["train", "--data", str(data), "-o", str(tmp_path / "m.keras"),
                                  "--task", task, *flag])
        assert res.exit_code == 3, res.output
        assert seen[-1].lr == pytest.approx(want), task
