"""Pictures people would rather see than read: training curves and latency bars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional


def _pyplot():  # noqa: ANN202
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_history(rows: Sequence[dict[str, float]], path: Path) -> Optional[Path]:
    """Loss and val mIoU (and PQ things) per epoch as a PNG (None when matplotlib is missing)."""
    plt = _pyplot()
    if plt is None or not rows:
        return None
    from edgeseg.atomic import atomic_path

    epochs = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(epochs, [r["loss"] for r in rows], "o-", color="tab:red")
    a.set(title="training loss", xlabel="epoch")
    b.plot(epochs, [r["val_miou"] for r in rows], "o-", color="tab:blue", label="val mIoU")
    b.plot(epochs, [r["val_pixel_accuracy"] for r in rows], "--", color="tab:gray",
           label="val pixel acc.")
    if "val_pq_things" in rows[0]:  # instance models
        b.plot(epochs, [r["val_pq_things"] for r in rows], "s-", color="tab:green",
               label="val PQ things")
    b.set(title="validation", xlabel="epoch", ylim=(0, 1))
    b.legend(loc="lower right")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def plot_bars(names: Sequence[str], values: Sequence[float], path: Path, title: str,
              unit: str = "ms") -> Optional[Path]:
    """A horizontal bar chart (e.g. median latency per model) as a PNG."""
    plt = _pyplot()
    if plt is None:
        return None
    from edgeseg.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(names)))
    bars = ax.barh(list(names)[::-1], list(values)[::-1], color="tab:blue")
    for bar, v in zip(bars, list(values)[::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {v:.1f} {unit}",
                va="center")
    ax.set(title=title, xlabel=unit)
    ax.set_xlim(0, max(values) * 1.25 if values else 1)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
