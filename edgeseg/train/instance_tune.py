"""Tune an instance model's grouping (centre threshold, max-pooling window) on its training scenes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.config import ModelConfig

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)
KERNELS = (3, 5, 7)
MAX_SCENES = 200


def tune_grouping(model: Any, ds: Any, cfg: ModelConfig) -> dict[str, Any]:
    """PQ things of every (threshold, window) of the grid over a dataset; the best pair.

    Args:
        model: A callable instance model: ``model(x, training=False)`` -> [scores, centre, offsets].
        ds: Batches of (image, h×w int32 Cityscapes-encoded map at the output size), as
            ``make_instance_dataset(..., training=False)`` gives.
        cfg: The model's configuration (output size, things).

    Returns:
        ``{"threshold", "kernel", "pq_things", "default_pq_things"}``: the pair of the
        highest PQ things (the defaults, ``edgeseg.runtime.instances.THRESHOLD``/``KERNEL``,
        unless another pair scores higher), its PQ things and that of the defaults.
    """
    from edgeseg.runtime.instances import KERNEL, THRESHOLD, panoptic_from_heads
    from edgeseg.verify.panoptic import PanopticAccumulator

    grid = [(t, k) for t in THRESHOLDS for k in KERNELS]
    if (THRESHOLD, KERNEL) not in grid:
        grid.insert(0, (THRESHOLD, KERNEL))
    accs = {g: PanopticAccumulator(cfg.n_classes, cfg.things) for g in grid}
    oh, ow = cfg.output_size
    for x, y in ds:
        scores, heat, offsets = (np.asarray(o) for o in model(x, training=False))
        truth = np.asarray(y)
        for i in range(len(truth)):
            for (t, k), acc in accs.items():
                _, pan = panoptic_from_heads(scores[i].reshape(oh, ow, -1), heat[i, ..., 0],
                                             offsets[i], cfg.things, t, k)
                acc.update(truth[i], pan)
    pq = {g: acc.result().pq_things for g, acc in accs.items()}
    default = pq[(THRESHOLD, KERNEL)]
    best = max(grid, key=lambda g: (pq[g], g == (THRESHOLD, KERNEL)))
    return {"threshold": best[0], "kernel": best[1], "pq_things": pq[best],
            "default_pq_things": default}


def record_grouping(model_path: Path, pairs: Sequence[tuple[Path, Path]], cfg: ModelConfig,
                    encoding: Any, log: Callable[[str], None]) -> dict[str, Any]:
    """Tune the saved model's grouping on up to ``MAX_SCENES`` training pairs (evenly spaced,
    no augmentation) and write it into its sidecar's ``instance.grouping``, which ``convert``
    copies into the .tflite description and the runtime reads.

    Never the validation scenes: they choose the best epoch and report the figures.
    """
    from edgeseg.config import read_sidecar, save_sidecar
    from edgeseg.data.instance_pipeline import make_instance_dataset
    from edgeseg.model.io import load_model

    model, saved_cfg = load_model(model_path)
    step = max(1, len(pairs) // MAX_SCENES)
    sample = list(pairs)[::step][:MAX_SCENES]
    ds = make_instance_dataset(sample, saved_cfg, 8, False, encoding=encoding)
    found = tune_grouping(model, ds, saved_cfg)
    grouping = {**found, "scenes": len(sample), "tuned_on": "training scenes"}
    data = read_sidecar(model_path) or {}
    data.pop("model_sha256", None)
    data["instance"] = {**data.get("instance", {}), "grouping": grouping}
    save_sidecar(model_path, data)
    log(f"grouping tuned on {len(sample)} training scenes: centre threshold {found['threshold']:g}, "
        f"max-pool window {found['kernel']} (PQ things {found['pq_things']:.4f}; "
        f"the defaults' {found['default_pq_things']:.4f}) -> {model_path.name}.json")
    return grouping
