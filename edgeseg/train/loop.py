"""The pieces of a training run: LR schedule, time budget, history, checkpoints, and the callback."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import keras
import numpy as np

from edgeseg.config import ModelConfig
from edgeseg.verify.metrics import MetricAccumulator, SegMetrics


@dataclass
class WarmupCosine:
    """Linear warm-up to ``peak``, then cosine decay to 1 % of it at ``total_steps``."""

    peak: float
    warmup_steps: int
    total_steps: int

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        t = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


@dataclass
class TimeBudget:
    """Fits the number of epochs to a wall-clock budget, re-fitted after every epoch.

    Attributes:
        seconds: The budget (None: no limit, ``planned`` stays at ``max_epochs``).
        max_epochs: The cap the budget may not exceed.
        planned: Epochs the run now plans to train in total.
    """

    seconds: Optional[float]
    max_epochs: int
    planned: int
    epoch_times: list[float] = field(default_factory=list)

    def after_epoch(self, done: int, elapsed: float, epoch_seconds: float) -> bool:
        """Record an epoch; returns True when the budget is spent (then ``planned == done``)."""
        self.epoch_times.append(epoch_seconds)
        if self.seconds is None:
            return False
        if elapsed >= self.seconds:
            self.planned = done
            return True
        # Later epochs skip the first's tracing and caching, so time them alone.
        per_epoch = float(np.median(self.epoch_times[1:] or self.epoch_times))
        # Re-fitted both ways: a slow first epoch must not shrink the run for good.
        self.planned = min(self.max_epochs, max(done, done + int((self.seconds - elapsed) // per_epoch)))
        return False


@dataclass
class History:
    """One row per epoch, written as ``<model>.history.csv`` and plotted as ``.history.png``."""

    csv_path: Path
    png_path: Path
    rows: list[dict[str, float]] = field(default_factory=list)
    png: Optional[Path] = None

    def append(self, row: dict[str, float]) -> None:
        from edgeseg.atomic import write_text
        from edgeseg.plots import plot_history

        self.rows.append(row)
        keys = list(self.rows[0])
        lines = [",".join(keys)] + [",".join(f"{r[k]:.6g}" for k in keys) for r in self.rows]
        write_text(self.csv_path, "\n".join(lines) + "\n")
        self.png = plot_history(self.rows, self.png_path)


@dataclass
class Checkpoints:
    """Saves the best model (float32, plain BatchNormalization) and the every-epoch checkpoint."""

    cfg: ModelConfig
    best_path: Path
    last_path: Path
    train_settings: dict[str, Any]
    best_miou: float = -1.0
    best_epoch: int = 0
    best_pq_things: float = -1.0  # instance models: the best epoch is the best val PQ things

    @property
    def chosen_by(self) -> str:
        """The validation figure the best epoch is chosen by: ``val_pq_things`` or ``val_miou``."""
        return "val_pq_things" if self.cfg.task == "instance" else "val_miou"

    def save(self, model: Any, epoch: int, metrics: SegMetrics, state: dict[str, Any],
             pq_things: Optional[float] = None) -> bool:
        """Save after ``epoch`` (1-based); returns whether it is the best so far.

        An instance model's best epoch is the one of the highest val PQ things (what the
        instances are for; ties go to the higher mIoU), a semantic model's the highest mIoU.
        """
        from edgeseg.model.io import save_model

        if self.chosen_by == "val_pq_things" and pq_things is not None:
            best = (pq_things, metrics.mean_iou) > (self.best_pq_things, self.best_miou)
        else:
            best = metrics.mean_iou > self.best_miou
        if best:
            self.best_miou, self.best_epoch = metrics.mean_iou, epoch
            self.best_pq_things = -1.0 if pq_things is None else pq_things
        best_state = {"best_miou": self.best_miou, "best_epoch": self.best_epoch,
                      "best_by": self.chosen_by}
        if self.chosen_by == "val_pq_things":
            best_state["best_pq_things"] = self.best_pq_things
        val = metrics.to_dict(self.cfg.class_names)
        if pq_things is not None:
            val["pq_things"] = pq_things
        info = {"train": {**self.train_settings, "state": {**state, "epoch": epoch, **best_state},
                          "val_metrics": val}}
        if best:
            save_model(float32_copy(model, self.cfg), self.cfg, self.best_path, **info)
        save_model(model, self.cfg, self.last_path, **info)
        return best


def float32_copy(model: Any, cfg: ModelConfig) -> Any:
    """The model rebuilt in float32, plain BatchNormalization, trained weights: what users load."""
    from edgeseg.model.build import build_model, copy_weights_by_name

    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = build_model(cfg)
    finally:
        keras.config.set_dtype_policy(old)
    copy_weights_by_name(model, copy)
    return copy


def validate_instances(model: Any, ds: Any, cfg: ModelConfig, ignore_index: Optional[int] = 255,
                       local: bool = False) -> tuple[MetricAccumulator, float]:
    """mIoU and PQ things of an instance model over a (image, Cityscapes-encoded map) dataset.

    Both at the model's output size (the truth resized by nearest sampling), grouped as
    evaluation groups (``edgeseg.runtime.instances.panoptic_from_heads``, no tracker);
    ``edgeseg evaluate --task instance`` scores at the images' size, so its figures differ a little.

    Returns:
        (the class confusion accumulator, PQ things (Kirillov et al.) over the dataset).
    """
    from edgeseg.runtime.instances import panoptic_from_heads
    from edgeseg.verify.panoptic import PanopticAccumulator

    acc = MetricAccumulator(cfg.n_classes, ignore_index)
    pq = PanopticAccumulator(cfg.n_classes, cfg.things, ignore_index)
    oh, ow = cfg.output_size
    for x, y in ds:
        scores, heat, offsets = (np.asarray(o) for o in
                                 (model(x, training=False) if local else model.predict_on_batch(x)))
        truth = np.asarray(y)
        for i in range(len(truth)):
            ids, pan = panoptic_from_heads(scores[i].reshape(oh, ow, -1), heat[i, ..., 0], offsets[i],
                                           cfg.things)
            t = truth[i]
            acc.update(np.where(t >= 1000, t // 1000, t), ids)
            pq.update(t, pan)
    return acc, pq.result().pq_things


def predict_masks(model: Any, ds: Any, n_classes: int,
                  ignore_index: Optional[int] = 255, local: bool = False) -> MetricAccumulator:
    """Run ``model`` over a (x, y) dataset and accumulate the confusion matrix (``ignore_index`` left out).

    ``local``: call the model directly on this worker, outside tf.distribute's replicas
    (each worker validates its own files; the confusion matrices are summed after).
    """
    acc = MetricAccumulator(n_classes, ignore_index)
    for x, y in ds:
        probs = model(x, training=False) if local else model.predict_on_batch(x)
        if isinstance(probs, (list, tuple)):  # an instance model: [scores, centre, offsets]
            probs = probs[0]
        acc.update(np.asarray(y), np.argmax(np.asarray(probs), axis=-1))
    return acc


@dataclass
class LoopState:
    """What the callback advances: the global step and the run's clock."""

    step: int
    steps_per_epoch: int
    t0: float
    prior_seconds: float = 0.0  # trained before a --resume
    epoch_start: float = 0.0
    clock: str = "wall"  # what --time-limit counts: wall-clock or this process's CPU seconds

    def now(self) -> float:
        return time.process_time() if self.clock == "cpu" else time.monotonic()

    def elapsed(self) -> float:
        return self.now() - self.t0 + self.prior_seconds


def epoch_label(done: int, budget: TimeBudget) -> str:
    """``epoch 3/30``; under a time limit, whose epoch count is re-fitted after every
    epoch, ``epoch 3 (of about 20 in 9 min)``: an estimate is not shown as a fixed total."""
    if budget.seconds is None or done >= budget.planned:
        return f"epoch {done}/{budget.planned}"
    return f"epoch {done} (of about {budget.planned} in {budget.seconds / 60:g} min)"


# (epoch from 1, batches done this epoch, batches per epoch, the running loss or None)
BatchReport = Callable[[int, int, int, Optional[float]], None]


class BatchProgress(keras.callbacks.Callback):
    """Reports each batch to a progress bar whose total is known before the first epoch.

    The total is the batches per epoch the data gives (``len(pairs) // batch``), so the
    bar shows ``57/200`` from the first batch of the first epoch on and keeps it; Keras'
    own bar learns the total only when the dataset states its size, and otherwise shows
    ``Unknown`` for the first epoch and a total from the second.

    Args:
        steps_per_epoch: Batches per epoch.
        report: Called as ``report(epoch, done, steps_per_epoch, loss)`` at the start of
            each epoch (``done`` 0, loss None) and after each batch.
    """

    def __init__(self, steps_per_epoch: int, report: BatchReport) -> None:
        super().__init__()
        self.steps, self.report, self.epoch = steps_per_epoch, report, 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch + 1
        self.report(self.epoch, 0, self.steps, None)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        loss = (logs or {}).get("loss")
        self.report(self.epoch, min(batch + 1, self.steps), self.steps,
                    None if loss is None else float(loss))


class TrainingLoop(keras.callbacks.Callback):
    """Sets the LR every step; after each epoch validates, saves, logs and fits the budget."""

    def __init__(self, state: LoopState, schedule: WarmupCosine, budget: TimeBudget,
                 history: History, checkpoints: Checkpoints, val_ds: Any,
                 log: Callable[[str], None], ignore_index: Optional[int] = 255,
                 combine: Any = None) -> None:
        """``combine`` (multi-worker, ``edgeseg.train.distribute.Combine``) sums the workers'
        validation and averages their clocks, so that every worker takes the same decisions."""
        super().__init__()
        self.combine = combine
        self.state, self.schedule, self.budget = state, schedule, budget
        self.ignore_index = ignore_index
        self.history, self.checkpoints, self.val_ds, self.log = history, checkpoints, val_ds, log

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.model.optimizer.learning_rate.assign(self.schedule(self.state.step))
        self.state.step += 1

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.state.epoch_start = self.state.now()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        done = epoch + 1
        cfg = self.checkpoints.cfg
        pq_things = None
        if cfg.task == "instance":
            acc, pq_things = validate_instances(self.model, self.val_ds, cfg, self.ignore_index,
                                                local=self.combine is not None)
        else:
            acc = predict_masks(self.model, self.val_ds, cfg.n_classes, self.ignore_index,
                                local=self.combine is not None)
        epoch_seconds = self.state.now() - self.state.epoch_start
        elapsed = self.state.elapsed()
        if self.combine is not None:
            acc, elapsed, epoch_seconds = self.combine.epoch(acc, elapsed, epoch_seconds)
        m = acc.result()
        row = {"epoch": done, "loss": float((logs or {}).get("loss", float("nan"))),
               "val_miou": m.mean_iou, "val_pixel_accuracy": m.pixel_accuracy,
               "lr": float(np.asarray(self.model.optimizer.learning_rate)),
               "seconds": elapsed}
        if pq_things is not None:
            row["val_pq_things"] = pq_things
        best = self.checkpoints.save(self.model, done, m, {"planned_epochs": self.budget.planned,
                                                           "seconds": row["seconds"]}, pq_things)
        self.history.append(row)
        if self.combine is not None:
            self.combine.saved(done)
        if self.budget.after_epoch(done, elapsed, epoch_seconds):
            self.log(f"time limit reached after epoch {done}; keeping the best model")
        self.schedule.total_steps = self.budget.planned * self.state.steps_per_epoch
        self.log(f"{epoch_label(done, self.budget)}  loss {row['loss']:.4f}  "
                 f"val mIoU {m.mean_iou:.4f}"
                 + (f"  PQ things {pq_things:.4f}" if pq_things is not None else "")
                 + f"{'  (best, saved)' if best else ''}  "
                 f"[{row['seconds']:.0f}s]")
        if done >= self.budget.planned:
            self.model.stop_training = True


def settings_dict(tcfg: Any) -> dict[str, Any]:
    """A TrainConfig as the JSON saved beside every checkpoint."""
    return asdict(tcfg)
