"""Train mobilenet_segnet on a folder of images and masks, keeping the best model by val mIoU."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeseg.config import ModelConfig, load_config
from edgeseg.errors import EdgesegError
from edgeseg.verify.metrics import MetricAccumulator

STRATEGIES = ("default", "mirrored", "multi-worker")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; maps 1:1 to ``edgeseg train`` options and is saved with the model."""

    data: str
    output: str
    val: Optional[str] = None
    val_fraction: float = 0.1
    epochs: Optional[int] = None  # None: 30, or as many as --time-limit allows
    batch_size: int = 8
    lr: float = 2e-3
    warmup_epochs: float = 1.0
    augment: bool = True
    balance: bool = True  # median frequency class weights (as the SegNet paper trains)
    backbone_weights: Optional[str] = None
    resume: Optional[str] = None
    time_limit: Optional[float] = None  # minutes
    strategy: str = "default"
    precision: str = "auto"  # auto | float32 | mixed_bfloat16
    seed: int = 0


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    model_path: Path
    best_miou: float
    best_epoch: int
    epochs_run: int
    seconds: float
    history_csv: Path
    history_png: Optional[Path]


def history_paths(model_path: Path) -> tuple[Path, Path]:
    """CSV log and PNG plot written beside the model."""
    return (model_path.with_name(model_path.stem + ".history.csv"),
            model_path.with_name(model_path.stem + ".history.png"))


def last_checkpoint(model_path: Path) -> Path:
    """The every-epoch checkpoint (with optimizer state) that ``--resume`` continues from."""
    return model_path.with_name(model_path.stem + ".last.keras")


def max_epochs(tcfg: TrainConfig) -> int:
    """Epoch cap: ``--epochs``; by default 30, or unbounded under a time limit (which then decides)."""
    if tcfg.epochs is not None:
        return tcfg.epochs
    return 10_000 if tcfg.time_limit else 30


def _strategy(name: str) -> Any:
    from edgeseg.deps import tensorflow

    tf = tensorflow()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise EdgesegError(f"--strategy {name!r} must be one of {', '.join(STRATEGIES)}.")


def _precision(name: str, cfg: ModelConfig) -> str:
    from edgeseg.deps import cpu_has_bf16

    if name == "auto":
        # bfloat16 pays where dense 3x3 convs dominate (seed decoder: 228 -> 129 ms a
        # step on 2 AMX cores); the depthwise lite model is faster in float32 (87 vs 114).
        return "mixed_bfloat16" if cpu_has_bf16() and cfg.decoder == "seed" else "float32"
    if name not in ("float32", "mixed_bfloat16"):
        raise EdgesegError(f"--precision {name!r} must be auto, float32 or mixed_bfloat16.")
    return name


@contextlib.contextmanager
def _dtype_policy(name: str) -> Iterator[None]:
    """Build layers under ``name``; saved models are float32 copies (see ``_float32_copy``)."""
    from edgeseg.deps import keras

    k = keras()
    old = k.config.dtype_policy()
    k.config.set_dtype_policy(name)
    try:
        yield
    finally:
        k.config.set_dtype_policy(old)


def _float32_copy(model: Any, cfg: ModelConfig) -> Any:
    """The model rebuilt in float32, plain BatchNormalization, trained weights: what users load."""
    from edgeseg.model.build import build_model, copy_weights_by_name

    with _dtype_policy("float32"):
        copy = build_model(cfg)
    copy_weights_by_name(model, copy)
    return copy


def predict_masks(model: Any, ds: Any, n_classes: int) -> MetricAccumulator:
    """Run ``model`` over a (x, y) dataset and accumulate the confusion matrix."""
    acc = MetricAccumulator(n_classes)
    for x, y in ds:
        probs = model.predict_on_batch(x)
        acc.update(np.asarray(y), np.argmax(np.asarray(probs), axis=-1))
    return acc


def _write_history(rows: list[dict[str, float]], csv_path: Path, png_path: Path) -> Optional[Path]:
    from edgeseg.atomic import write_text

    keys = list(rows[0])
    lines = [",".join(keys)] + [",".join(f"{r[k]:.6g}" for k in keys) for r in rows]
    write_text(csv_path, "\n".join(lines) + "\n")
    from edgeseg.plots import plot_history

    return plot_history(rows, png_path)


def _make_callback(ctx: dict[str, Any]) -> Any:
    """A Keras callback for the LR schedule, val mIoU, checkpoints, logs and the time limit."""
    import keras

    from edgeseg.model.io import save_model

    class _Loop(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            step, total, warm = ctx["step"], ctx["total_steps"], ctx["warmup_steps"]
            peak = ctx["lr"]
            if step < warm:
                lr = peak * (step + 1) / warm
            else:
                t = min(1.0, (step - warm) / max(1, total - warm))
                lr = peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))
            self.model.optimizer.learning_rate.assign(lr)
            ctx["step"] = step + 1

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            ctx["epoch_start"] = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = logs or {}
            m = predict_masks(self.model, ctx["val_ds"], ctx["cfg"].n_classes).result()
            ctx["epoch_times"].append(time.monotonic() - ctx["epoch_start"])
            best = m.mean_iou > ctx["best_miou"]
            row = {"epoch": epoch + 1, "loss": float(logs.get("loss", float("nan"))),
                   "val_miou": m.mean_iou, "val_pixel_accuracy": m.pixel_accuracy,
                   "lr": float(np.asarray(self.model.optimizer.learning_rate)),
                   "seconds": time.monotonic() - ctx["t0"] + ctx["prior_seconds"]}
            ctx["rows"].append(row)
            state = {"epoch": epoch + 1, "best_miou": max(m.mean_iou, ctx["best_miou"]),
                     "best_epoch": epoch + 1 if best else ctx["best_epoch"],
                     "planned_epochs": ctx["planned_epochs"], "seconds": row["seconds"]}
            train_info = {"train": {**asdict(ctx["tcfg"]), "state": state,
                                    "val_metrics": m.to_dict(ctx["cfg"].class_names)}}
            if best:
                ctx["best_miou"], ctx["best_epoch"] = m.mean_iou, epoch + 1
                save_model(_float32_copy(self.model, ctx["cfg"]), ctx["cfg"], ctx["out"],
                           **train_info)
            save_model(self.model, ctx["cfg"], last_checkpoint(ctx["out"]), **train_info)
            ctx["history_png"] = _write_history(ctx["rows"], *history_paths(ctx["out"]))
            self._fit_time_budget(epoch + 1)
            ctx["log"](
                f"epoch {epoch + 1}/{ctx['planned_epochs']}  loss {row['loss']:.4f}  "
                f"val mIoU {m.mean_iou:.4f}{'  (best, saved)' if best else ''}  "
                f"[{row['seconds']:.0f}s]"
            )
            if epoch + 1 >= ctx["planned_epochs"]:
                self.model.stop_training = True

        def _fit_time_budget(self, done: int) -> None:
            budget = ctx["time_limit_s"]
            if budget is None:
                return
            elapsed = time.monotonic() - ctx["t0"] + ctx["prior_seconds"]
            if elapsed >= budget:
                ctx["log"](f"time limit reached after epoch {done}; keeping the best model")
                ctx["planned_epochs"] = done
                return
            # Later epochs skip the first's tracing and caching, so time them alone.
            per_epoch = float(np.median(ctx["epoch_times"][1:] or ctx["epoch_times"]))
            # Re-fitted every epoch, both ways: a slow first epoch must not shrink the run for good.
            fit = min(ctx["max_epochs"], max(done, done + int((budget - elapsed) // per_epoch)))
            if fit != ctx["planned_epochs"]:
                ctx["planned_epochs"] = fit
                ctx["total_steps"] = fit * ctx["steps_per_epoch"]

    return _Loop()


def train(cfg: ModelConfig, tcfg: TrainConfig,
          log: Callable[[str], None] = print) -> TrainResult:
    """Train a model for ``cfg`` on ``tcfg.data`` and save the best checkpoint to ``tcfg.output``.

    The learning rate warms up then follows a cosine decay; with a time limit the
    number of epochs is fitted to the budget after each epoch, so the schedule
    still completes, and the run stops after the epoch that crosses it.
    """
    from edgeseg.data.dataset import resolve_split
    from edgeseg.data.pipeline import Augment, class_frequencies, make_dataset, median_frequency_weights
    from edgeseg.deps import keras

    k = keras()
    out = Path(tcfg.output)
    if out.suffix != ".keras":
        raise EdgesegError(f"-o {out}: the trained model is saved as .keras; name it {out.stem}.keras")
    train_pairs, val_pairs = resolve_split(Path(tcfg.data), Path(tcfg.val) if tcfg.val else None,
                                           tcfg.val_fraction, tcfg.seed)
    if len(train_pairs) < 2 or not val_pairs:
        raise EdgesegError(f"{tcfg.data}: {len(train_pairs)} training and {len(val_pairs)} validation "
                           "pairs; need at least 2 and 1 (add images or lower --val-fraction).")
    k.utils.set_random_seed(tcfg.seed)
    batch = min(tcfg.batch_size, len(train_pairs))
    weights = None
    if tcfg.balance:
        freq = class_frequencies(train_pairs, cfg.n_classes)
        weights = median_frequency_weights(freq)
        log("class weights (median frequency): " + ", ".join(
            f"{n} {w:.2f}" for n, w in zip(cfg.class_names, weights)))
    train_ds = make_dataset(train_pairs, cfg, batch, True, Augment() if tcfg.augment else
                            Augment(flip=False, min_crop=1.0, brightness=0, contrast=0), tcfg.seed,
                            class_weights=weights)
    val_ds = make_dataset(val_pairs, cfg, batch, False)
    steps_per_epoch = len(train_pairs) // batch

    start_epoch, prior_seconds, best_miou, best_epoch = 0, 0.0, -1.0, 0
    with _strategy(tcfg.strategy).scope():
        if tcfg.resume:
            model, state = _resume(Path(tcfg.resume), cfg)
            start_epoch, prior_seconds = state["epoch"], state.get("seconds", 0.0)
            best_miou, best_epoch = state.get("best_miou", -1.0), state.get("best_epoch", 0)
            log(f"resuming from {tcfg.resume} after epoch {start_epoch} (best val mIoU {best_miou:.4f})")
        else:
            from edgeseg.model.build import build_model

            with _dtype_policy(_precision(tcfg.precision, cfg)):
                model = build_model(cfg)
            # Keras' default momentum 0.99 leaves the moving statistics near their
            # initial values for the first few hundred steps, so short runs validate
            # with wrong normalization; 0.9 tracks the batch statistics in ~20 steps.
            for layer in model.layers:
                if isinstance(layer, k.layers.BatchNormalization):
                    layer.momentum = 0.9
            if tcfg.backbone_weights:
                from edgeseg.model.weights import load_backbone_weights

                log(load_backbone_weights(model, tcfg.backbone_weights, cfg).summary())
            from edgeseg.model.fused_bn import with_fused_batch_norm

            model = with_fused_batch_norm(model)
            model.compile(optimizer=k.optimizers.Adam(tcfg.lr),
                          loss=k.losses.SparseCategoricalCrossentropy())
    epochs = max_epochs(tcfg)
    if start_epoch >= epochs:
        raise EdgesegError(f"{tcfg.resume} already trained {start_epoch} epochs; raise --epochs.")
    ctx: dict[str, Any] = {
        "cfg": cfg, "tcfg": tcfg, "out": out, "val_ds": val_ds, "log": log, "lr": tcfg.lr,
        "step": start_epoch * steps_per_epoch, "steps_per_epoch": steps_per_epoch,
        "warmup_steps": max(1, int(tcfg.warmup_epochs * steps_per_epoch)),
        "total_steps": epochs * steps_per_epoch, "planned_epochs": epochs,
        "max_epochs": epochs,
        "time_limit_s": tcfg.time_limit * 60 if tcfg.time_limit else None,
        "best_miou": best_miou, "best_epoch": best_epoch, "rows": _old_rows(out, start_epoch),
        "epoch_times": [], "t0": time.monotonic(), "prior_seconds": prior_seconds,
        "history_png": None,
    }
    log(f"training on {len(train_pairs)} images, validating on {len(val_pairs)}, "
        f"{steps_per_epoch} steps/epoch, "
        + (f"{tcfg.time_limit:g} min" if tcfg.time_limit and tcfg.epochs is None else f"up to {epochs} epochs"
           + (f" or {tcfg.time_limit:g} min" if tcfg.time_limit else "")))
    try:
        model.fit(train_ds, epochs=epochs, initial_epoch=start_epoch,
                  callbacks=[_make_callback(ctx)], shuffle=False, verbose=1 if sys.stdout.isatty() else 0)
    except KeyboardInterrupt:
        log("interrupted; the best model so far is kept" if ctx["best_epoch"] else "interrupted")
        raise
    csv_path, _ = history_paths(out)
    return TrainResult(out, ctx["best_miou"], ctx["best_epoch"], len(ctx["rows"]),
                       ctx["rows"][-1]["seconds"] if ctx["rows"] else 0.0, csv_path,
                       ctx["history_png"])


def _resume(ckpt: Path, cfg: ModelConfig) -> tuple[Any, dict[str, Any]]:
    from edgeseg.config import read_sidecar
    from edgeseg.deps import keras

    if not ckpt.exists():
        raise EdgesegError(f"--resume {ckpt}: no such checkpoint (training writes <model>.last.keras).")
    saved = load_config(ckpt)
    if saved is not None and (saved.n_classes, saved.height, saved.width) != (
            cfg.n_classes, cfg.height, cfg.width):
        raise EdgesegError(f"--resume {ckpt} was trained for {saved.n_classes} classes at "
                           f"{saved.height}x{saved.width}; pass the same --classes/--height/--width.")
    from edgeseg.model.fused_bn import fused_batch_norm_class

    fused_batch_norm_class()  # checkpoints hold the training model's fused BatchNormalization
    try:
        model = keras().models.load_model(ckpt)
    except Exception as e:
        raise EdgesegError(f"--resume {ckpt} is not a readable Keras checkpoint ({e}).") from None
    state = (read_sidecar(ckpt) or {}).get("train", {}).get("state", {})
    if "epoch" not in state:
        raise EdgesegError(f"--resume {ckpt}: its JSON has no training state; pass a .last.keras file.")
    return model, state


def _old_rows(out: Path, upto: int) -> list[dict[str, float]]:
    csv_path, _ = history_paths(out)
    if not upto or not csv_path.exists():
        return []
    from edgeseg.atomic import read_csv_rows

    rows = read_csv_rows(csv_path, "delete it (the history restarts) or resume from scratch")
    return [r for r in rows if r.get("epoch", 0) <= upto]
