"""Continuing a training run (``--resume``): its checkpoint, the epoch it stopped at, its history."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from edgeseg.config import ModelConfig, architecture_changes, load_config
from edgeseg.errors import EdgesegError


def load_checkpoint(ckpt: Path, cfg: ModelConfig) -> tuple[Any, dict[str, Any]]:
    """The checkpoint's model and training state; refuses a checkpoint of another architecture."""
    from edgeseg.config import read_sidecar
    from edgeseg.deps import keras
    from edgeseg.model.fused_bn import fused_batch_norm_class
    from edgeseg.model.io import infer_config

    if not ckpt.exists():
        raise EdgesegError(f"--resume {ckpt}: no such checkpoint (training writes <model>.last.keras).")
    fused_batch_norm_class()  # checkpoints hold the training model's fused BatchNormalization
    custom = {}
    if cfg.task == "instance":  # compiled with edgeseg's own losses: Keras finds them by name
        from edgeseg.model.instance_heads import losses

        custom = losses()
    try:
        model = keras().models.load_model(ckpt, custom_objects=custom)
    except Exception as e:
        raise EdgesegError(f"--resume {ckpt} is not a readable Keras checkpoint ({e}).") from None
    # The layers decide, not the sidecar alone: a checkpoint of another alpha or decoder
    # would otherwise train on with layers left random.
    changes = architecture_changes(load_config(ckpt) or infer_config(model), cfg)
    if changes:
        raise EdgesegError(f"--resume {ckpt} is another model ({'; '.join(changes)}); pass its "
                           "options (or its --preset) or train a new model without --resume.")
    state = (read_sidecar(ckpt) or {}).get("train", {}).get("state", {})
    if "epoch" not in state:
        raise EdgesegError(f"--resume {ckpt}: its JSON has no training state; pass a .last.keras file.")
    # The best model's sidecar records the training state too, but it is saved without
    # its optimizer: Keras' fit() would stop with "You must call `compile()`".
    if not getattr(model, "compiled", False):
        from edgeseg.train.fit import last_checkpoint

        raise EdgesegError(f"--resume {ckpt} holds no optimizer state (a model saved for inference, "
                           f"such as the best model); pass the checkpoint training wrote beside it: "
                           f"{last_checkpoint(ckpt)}.")
    return model, state


def resume_epoch(ckpt: Optional[str]) -> int:
    """The epoch a checkpoint's sidecar says it was saved after (0: none)."""
    from edgeseg.config import read_sidecar

    if not ckpt or not Path(ckpt).exists():
        return 0
    return int((read_sidecar(Path(ckpt)) or {}).get("train", {}).get("state", {}).get("epoch", 0))


def old_rows(out: Path, upto: int) -> list[dict[str, float]]:
    """The history rows of epochs 1..``upto`` that a resumed run continues.

    Raises:
        EdgesegError: When the CSV is not one that ``train`` wrote (one line, no traceback).
    """
    from edgeseg.train.fit import history_paths

    csv_path, _ = history_paths(out)
    if not upto or not csv_path.exists():
        return []
    from edgeseg.atomic import read_csv_rows

    rows = read_csv_rows(csv_path, "delete it (the history restarts) or resume from scratch")
    return [r for r in rows if r.get("epoch", 0) <= upto]
