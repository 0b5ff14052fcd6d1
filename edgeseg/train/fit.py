"""Train mobilenet_segnet on images and masks, keeping the best model (val mIoU; instances: PQ things)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from edgeseg.config import ModelConfig
from edgeseg.errors import EdgesegError


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
    backbone_weights: Optional[str] = None  # a .h5, 'imagenet' (scratch when offline) or None
    resume: Optional[str] = None
    time_limit: Optional[float] = None  # minutes
    clock: str = "wall"  # what time_limit counts: "wall" or "cpu" (this process's CPU time)
    strategy: str = "default"
    cluster_timeout: float = 300.0  # seconds a multi-worker task waits for the others to start
    precision: str = "auto"  # auto | float32 | mixed_bfloat16
    seed: int = 0
    # How masks are read (edgeseg.data.readers.MaskEncoding) and what to do with bad pairs.
    ignore_index: Optional[int] = 255
    binary: bool = False
    mask_colors: Optional[str] = None
    skip_bad: bool = False


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
    wrote: bool = True  # False on a multi-worker task other than the chief: the chief wrote them
    best_pq_things: Optional[float] = None  # instance models: the best epoch's val PQ things


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


MAX_DEFAULT_SIDE = 416  # the deployment size RESULTS.md measures; larger frames train too slowly on a CPU


def input_size_of(data: str | Path, val: str | Path | None, height: Optional[int] = None,
                  width: Optional[int] = None) -> tuple[int, int, str]:
    """The input size ``train`` uses when --height/--width are not given, and a line saying so.

    The first training image's size, each side rounded to a multiple of 32, scaled
    down (aspect kept) so that the longer side is at most 416. A side that is given
    is kept.

    Returns:
        (height, width, one-line note).

    Raises:
        EdgesegError: When the dataset has no image pairs (from ``resolve_split``).
    """
    from edgeseg.data.dataset import resolve_split
    from edgeseg.data.readers import read_image

    pairs, _ = resolve_split(Path(data), Path(val) if val else None, 0.1, 0)
    if not pairs:
        raise EdgesegError(f"{data}: no image/mask pairs; pass --height and --width or fix the folder.")
    ih, iw = read_image(pairs[0][0]).shape[:2]
    scale = min(1.0, MAX_DEFAULT_SIDE / max(ih, iw))

    def side(given: Optional[int], n: int) -> int:
        return given if given is not None else max(32, round(n * scale / 32) * 32)

    h, w = side(height, ih), side(width, iw)
    return h, w, (f"input size {h}×{w} (H×W), from the training images ({ih}×{iw}"
                  + (f", scaled to a longer side of {MAX_DEFAULT_SIDE}" if scale < 1 else "")
                  + "); --height/--width to change")


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
    """Build layers under ``name``; saved models are float32 copies (``edgeseg.train.loop.float32_copy``)."""
    from edgeseg.deps import keras

    k = keras()
    old = k.config.dtype_policy()
    k.config.set_dtype_policy(name)
    try:
        yield
    finally:
        k.config.set_dtype_policy(old)


def train(cfg: ModelConfig, tcfg: TrainConfig,
          log: Callable[[str], None] = print, notes: Sequence[str] = (),
          progress: Optional[Callable[[int, int, int, Optional[float]], None]] = None
          ) -> TrainResult:
    """Train a model for ``cfg`` on ``tcfg.data`` and save the best checkpoint to ``tcfg.output``.

    The learning rate warms up then follows a cosine decay; with a time limit the
    number of epochs is fitted to the budget after each epoch, so the schedule
    still completes, and the run stops after the epoch that crosses it.

    ``notes`` (how the CLI chose the size and model) are logged once the data has
    passed its check, so a data error stays the run's only line. ``progress``, when
    given, receives ``(epoch, batches done, batches per epoch, loss)`` after each batch
    (:class:`edgeseg.train.loop.BatchProgress`) and replaces Keras' progress bar.
    """
    from edgeseg.data.pipeline import (
        CACHE_BYTES,
        Augment,
        class_frequencies,
        decoded_bytes,
        make_dataset,
        median_frequency_weights,
        pipeline_errors,
    )
    from edgeseg.data.prepare import checked_split
    from edgeseg.data.readers import mask_encoding

    out = Path(tcfg.output)
    if out.suffix != ".keras":
        raise EdgesegError(f"-o {out}: the trained model is saved as .keras; name it {out.stem}.keras")
    # The data is checked (as `edgeseg data check` does) before TensorFlow is even loaded.
    val_dir = Path(tcfg.val) if tcfg.val else None
    enc = mask_encoding(tcfg.ignore_index, tcfg.binary, Path(tcfg.mask_colors) if tcfg.mask_colors else None,
                        [Path(tcfg.data)] + ([val_dir] if val_dir else []))
    train_pairs, val_pairs = checked_split(Path(tcfg.data), val_dir, cfg.n_classes, enc,
                                           tcfg.val_fraction, tcfg.seed, tcfg.skip_bad, log)
    if cfg.task == "instance":
        from edgeseg.data.instance_pipeline import make_instance_dataset as make_dataset  # noqa: F811
        from edgeseg.data.instance_pipeline import thing_classes

        if not cfg.things:
            cfg = cfg.with_(things=thing_classes([Path(tcfg.data)] + ([val_dir] if val_dir else []), enc))
        log("instance task: thing classes " + ", ".join(cfg.class_names[t] for t in cfg.things)
            + "; centre heatmap + offset heads (Panoptic-DeepLab)")
    for note in notes:
        log(note)
    from edgeseg.train import distribute as dist
    from edgeseg.train.resume import load_checkpoint, old_rows, resume_epoch

    # First touch of TensorFlow: collective ops can only be configured before its context exists.
    strategy, cluster = dist.make_strategy(tcfg.strategy, log, tcfg.cluster_timeout)
    from edgeseg.deps import keras

    k = keras()
    k.utils.set_random_seed(tcfg.seed)
    batch = min(tcfg.batch_size, len(train_pairs))
    replicas = strategy.num_replicas_in_sync
    if batch % replicas:
        raise EdgesegError(f"--batch-size {batch} (the global batch) does not split evenly over "
                           f"{replicas} replicas; use a multiple of {replicas}.")
    weights = None
    if tcfg.balance:
        freq = class_frequencies(train_pairs, cfg.n_classes, encoding=enc)
        weights = median_frequency_weights(freq)
        log("class weights (median frequency): " + ", ".join(
            f"{n} {w:.2f}" for n, w in zip(cfg.class_names, weights)))
    else:
        log("no class weights (--no-balance): plain cross-entropy")
    cache = decoded_bytes(len(train_pairs) + len(val_pairs), cfg) <= CACHE_BYTES
    if not cache:
        log(f"input: {len(train_pairs) + len(val_pairs)} pairs would take "
            f"{decoded_bytes(len(train_pairs) + len(val_pairs), cfg) / 2**30:.1f} GiB decoded; "
            "streaming them from disk each epoch")
    aug = Augment() if tcfg.augment else Augment(flip=False, min_crop=1.0, brightness=0, contrast=0)
    steps_per_epoch = len(train_pairs) // batch
    distributed = tcfg.strategy != "default"
    if distributed:
        if cfg.task == "instance":
            raise EdgesegError(f"--strategy {tcfg.strategy} trains --task semantic only for now; "
                               "train the instance model with the default strategy.")
        train_ds, val_ds = dist.datasets(strategy, cluster, make_dataset, train_pairs, val_pairs, cfg, batch,
                                         steps_per_epoch, augment=aug, seed=tcfg.seed, class_weights=weights,
                                         encoding=enc, cache=cache)
    else:
        more = {"cache": cache} if cfg.task != "instance" else {}
        train_ds = make_dataset(train_pairs, cfg, batch, True, aug, tcfg.seed, class_weights=weights,
                                encoding=enc, **more)
        val_ds = make_dataset(val_pairs, cfg, batch, False, encoding=enc, **more)

    # The run's pieces (schedule, budget, history, checkpoints) live in edgeseg.train.loop, which
    # imports Keras at module level; the data check and ignore-index options go above.
    from edgeseg.train import loop as tl

    resume = tcfg.resume
    if tcfg.strategy == "multi-worker" and not resume:  # fault tolerance: a restarted job goes on
        resume = dist.backup_to_resume(out, last_checkpoint(out))
    if cluster is not None:
        dist.agree(strategy, dist.names_checksum(train_pairs + val_pairs), f"the dataset's file names "
                   f"({len(train_pairs)} + {len(val_pairs)} pairs here); every worker needs the same --data")
        dist.agree(strategy, float(resume_epoch(resume)), f"where to resume ({resume or 'from scratch'}); "
                   "-o must be on storage every worker shares")
    scratch = dist.worker_scratch(cluster)
    try:
        state: dict[str, Any] = {}
        with strategy.scope():
            if resume:
                model, state = load_checkpoint(Path(resume), cfg)
                log(f"resuming from {resume} after epoch {state['epoch']} (best val "
                    + (f"PQ things {state['best_pq_things']:.4f}, " if "best_pq_things" in state else "")
                    + f"mIoU {state.get('best_miou', -1.0):.4f})")
            else:
                model = _fresh_model(cfg, tcfg, log)
        start_epoch = int(state.get("epoch", 0))
        epochs = max_epochs(tcfg)
        if start_epoch >= epochs:
            raise EdgesegError(f"{resume} already trained {start_epoch} epochs; raise --epochs.")
        mine = dist.write_path(out, cluster, scratch)
        csv_path, png_path = history_paths(mine)
        history = tl.History(csv_path, png_path, old_rows(mine, start_epoch))
        checkpoints = tl.Checkpoints(cfg, mine, last_checkpoint(mine), tl.settings_dict(tcfg),
                                     state.get("best_miou", -1.0), state.get("best_epoch", 0),
                                     state.get("best_pq_things", -1.0))
        budget = tl.TimeBudget(tcfg.time_limit * 60 if tcfg.time_limit else None, epochs, epochs)
        schedule = tl.WarmupCosine(tcfg.lr, max(1, int(tcfg.warmup_epochs * steps_per_epoch)),
                                   epochs * steps_per_epoch)
        if tcfg.clock not in ("wall", "cpu"):
            raise EdgesegError(f"--clock {tcfg.clock!r} must be wall or cpu.")
        loop_state = tl.LoopState(start_epoch * steps_per_epoch, steps_per_epoch,
                                  time.process_time() if tcfg.clock == "cpu" else time.monotonic(),
                                  state.get("seconds", 0.0), clock=tcfg.clock)
        log(f"training on {len(train_pairs)} images, validating on {len(val_pairs)}, "
            f"{steps_per_epoch} steps/epoch"
            + (f" of {batch} ({batch // replicas} per replica, {replicas} replicas; "
               f"{len(train_pairs) - steps_per_epoch * batch} pairs left out an epoch, drawn anew)"
               if distributed else "")
            + ", " + (f"{tcfg.time_limit:g} min{' of CPU time' if tcfg.clock == 'cpu' else ''}"
                      if tcfg.time_limit and tcfg.epochs is None
                      else f"up to {epochs} epochs" + (f" or {tcfg.time_limit:g} min" if tcfg.time_limit else "")))
        combine = None
        if cluster is not None:
            combine = dist.Combine(strategy, cluster, out)
            dist.fit_multi_worker(model, strategy)
        loop = tl.TrainingLoop(loop_state, schedule, budget, history, checkpoints, val_ds, log,
                               tcfg.ignore_index, combine)
        try:
            with pipeline_errors(), dist.lost_peers(cluster, out):  # one line naming the file / the task
                # With ``progress`` the caller draws the bar (one total from the first batch on),
                # instead of Keras' own.
                bar = [tl.BatchProgress(steps_per_epoch, progress)] if progress else []
                model.fit(train_ds, epochs=epochs, initial_epoch=start_epoch, callbacks=[loop, *bar],
                          steps_per_epoch=steps_per_epoch if distributed else None,
                          shuffle=False, verbose=0 if progress or not sys.stdout.isatty() else 1)
        except KeyboardInterrupt:
            log("interrupted; the best model so far is kept" if checkpoints.best_epoch else "interrupted")
            raise
        if combine is not None:
            combine.finished()
    finally:
        dist.remove_scratch(scratch)
    if cfg.task == "instance" and checkpoints.best_epoch:  # after the budget, as calibration is
        from edgeseg.train.instance_tune import record_grouping

        if out.exists():
            record_grouping(out, train_pairs, cfg, enc, log)
        else:  # resumed, and the best epoch's model (from before) is not at -o any more
            log(f"{out} (the best epoch, {checkpoints.best_epoch}) is missing: its grouping was "
                "not tuned; the runtime's defaults apply.")
    csv_path, png_path = history_paths(out)
    return TrainResult(out, checkpoints.best_miou, checkpoints.best_epoch,
                       len(history.rows),
                       history.rows[-1]["seconds"] if history.rows else 0.0, csv_path,
                       png_path if history.png else None, cluster is None or cluster.is_chief,
                       checkpoints.best_pq_things if cfg.task == "instance" else None)


def _fresh_model(cfg: ModelConfig, tcfg: TrainConfig, log: Callable[[str], None]) -> Any:
    """A compiled training model for ``cfg``: backbone weights loaded, fused BatchNormalization."""
    from edgeseg.deps import keras
    from edgeseg.model.build import build_model
    from edgeseg.model.fused_bn import with_fused_batch_norm
    from edgeseg.model.weights import load_backbone_weights

    k = keras()
    with _dtype_policy(_precision(tcfg.precision, cfg)):
        model = build_model(cfg)
    # Keras' default momentum 0.99 leaves the moving statistics near their
    # initial values for the first few hundred steps, so short runs validate
    # with wrong normalization; 0.9 tracks the batch statistics in ~20 steps.
    for layer in model.layers:
        if isinstance(layer, k.layers.BatchNormalization):
            layer.momentum = 0.9
    source = tcfg.backbone_weights
    if source == "imagenet":  # the CLI's default: falls back to from scratch, in one line
        try:
            log(load_backbone_weights(model, "imagenet", cfg).summary())
        except EdgesegError as e:
            log(f"{e} Training from scratch{_scratch_note(cfg)}.")
    elif source and source != "none":
        log(load_backbone_weights(model, source, cfg).summary())
    else:
        log(f"training from scratch{_scratch_note(cfg)}.")
    model = with_fused_batch_norm(model)
    if cfg.task == "instance":
        from edgeseg.model.instance_heads import losses

        model.compile(optimizer=k.optimizers.Adam(tcfg.lr), loss=list(losses().values()))
        return model
    model.compile(optimizer=k.optimizers.Adam(tcfg.lr), loss=k.losses.SparseCategoricalCrossentropy())
    return model


def _scratch_note(cfg: ModelConfig) -> str:
    """How well ``cfg`` learns without pretrained weights, for the one-line notice."""
    if cfg.encoder_level <= 2:
        return (f" with the {cfg.decoder} decoder tapped at 1/{2 ** (cfg.encoder_level + 1)}, "
                "the configuration that learns from scratch")
    return (f"; the 1/{2 ** (cfg.encoder_level + 1)} tap learns slowly without ImageNet weights: "
            "--preset realtime (1/8) learns several times faster")
