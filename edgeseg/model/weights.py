"""Load MobileNet encoder weights by layer name from a local .h5 file or Keras' cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.config import ModelConfig
from edgeseg.errors import EdgesegError

# Sizes Keras publishes ImageNet MobileNet weights for.
_IMAGENET_ROWS = (128, 160, 192, 224)


@dataclass(frozen=True)
class WeightReport:
    """Which encoder layers received weights."""

    source: str
    matched: tuple[str, ...]
    skipped: tuple[str, ...]  # in the file, but absent here or of another shape

    def summary(self) -> str:
        return (f"Backbone weights from {self.source}: {len(self.matched)} layers loaded by name"
                + (f", {len(self.skipped)} skipped" if self.skipped else ""))


def _read_h5(path: Path) -> dict[str, list[np.ndarray]]:
    """Weights per layer name from a Keras .h5 file in the by-name (legacy) layout.

    That is the layout of ``mobilenet_1_0_224_tf_no_top.h5`` and of
    ``model.save('x.h5')``: ``layer_names`` and per-layer ``weight_names`` attributes,
    at the root or under ``model_weights``.
    """
    import h5py

    def _attr(node: Any, key: str) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in node.attrs.get(key, [])]

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise EdgesegError(f"{path} is not an HDF5 weights file ({e}).") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise EdgesegError(
                f"{path} does not store weights by layer name (a Keras 3 .weights.h5 file stores "
                "them by position); use the published mobilenet_*_tf_no_top.h5 file or save "
                "your MobileNet with model.save('mobilenet.h5')."
            )
        return {name: [np.asarray(root[name][w]) for w in _attr(root[name], "weight_names")]
                for name in _attr(root, "layer_names")}


def _keras_file_name(alpha: float, rows: int) -> str:
    """The file name Keras caches ImageNet MobileNet weights under."""
    alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]
    return f"mobilenet_{alpha_text}_{rows}_tf_no_top.h5"


_KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"


def imagenet_rows(cfg: ModelConfig) -> int:
    """The published ImageNet input size closest to the model's (128, 160, 192 or 224)."""
    return min(_IMAGENET_ROWS, key=lambda r: abs(r - min(cfg.height, cfg.width)))


def imagenet_file(cfg: ModelConfig, timeout_s: float = 30.0) -> Path:
    """The matching ImageNet MobileNet ``.h5``, from Keras' cache or its downloader.

    Looks where ``keras.applications.MobileNet(weights="imagenet")`` looks: the file
    ``mobilenet_<alpha>_<rows>_tf_no_top.h5`` under ``$KERAS_HOME/models`` (read when
    called, default ``~/.keras/models``), and downloads it there when absent.

    Raises:
        EdgesegError: When the file is not cached and cannot be downloaded (offline).
    """
    import contextlib
    import io
    import os
    import socket

    from edgeseg.deps import keras

    k = keras()
    name = _keras_file_name(cfg.alpha, imagenet_rows(cfg))
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)  # a silent network must not hang training
    try:
        # Keras prints "Downloading data from ..." even when it fails: our one line says it all.
        with contextlib.redirect_stdout(io.StringIO()):
            return Path(k.utils.get_file(name, _KERAS_URL + name, cache_subdir="models",
                                         cache_dir=os.environ.get("KERAS_HOME")))
    except Exception as e:  # urllib/HTTP/OS errors: all mean "not available here"
        # Keras' message is "URL fetch failure on <url>: <code> -- <reason>": keep the reason.
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        reason = text.rsplit(" -- ", 1)[-1][:100]
        raise EdgesegError(
            f"no ImageNet MobileNet weights ({name} is not in Keras' cache and the download "
            f"failed: {reason}); copy it into {os.environ.get('KERAS_HOME', '~/.keras')}/models/ "
            "or pass --backbone-weights PATH."
        ) from None
    finally:
        socket.setdefaulttimeout(old)


def _imagenet_weights(cfg: ModelConfig) -> dict[str, list[np.ndarray]]:
    """Weights per layer name of the matching ImageNet MobileNet (cached or downloaded)."""
    from edgeseg.deps import keras

    path = imagenet_file(cfg)
    rows = imagenet_rows(cfg)
    try:
        net = keras().applications.MobileNet(input_shape=(rows, rows, 3), alpha=cfg.alpha,
                                             include_top=False, weights=str(path))
    except Exception as e:  # a truncated or foreign file in the cache
        raise EdgesegError(f"{path} is not a MobileNet alpha {cfg.alpha} weights file "
                           f"({type(e).__name__}); delete it so Keras downloads it again.") from None
    return {layer.name: layer.get_weights() for layer in net.layers if layer.weights}


def load_backbone_weights(model: Any, source: str, cfg: ModelConfig) -> WeightReport:
    """Load encoder weights into ``model`` by layer name.

    Args:
        model: A model built by :func:`edgeseg.model.build.build_model`.
        source: Path to a Keras MobileNet ``.h5`` file, or ``"imagenet"``.
        cfg: The model's config (picks the ImageNet variant).

    Raises:
        EdgesegError: When the file is missing or unreadable, or no layer matched.
    """
    if source == "imagenet":
        weights = _imagenet_weights(cfg)
    else:
        path = Path(source)
        if not path.exists():
            raise EdgesegError(f"--backbone-weights {path}: no such file; pass a Keras MobileNet "
                               ".h5 file or 'imagenet'.")
        weights = _read_h5(path)
    layers = {layer.name: layer for layer in model.layers}
    matched, skipped = [], []
    for name, arrays in weights.items():
        if not arrays:
            continue
        layer = layers.get(name)
        if layer is None:
            skipped.append(name)
            continue
        if [tuple(w.shape) for w in layer.weights] != [a.shape for a in arrays]:
            skipped.append(name)
            continue
        layer.set_weights(arrays)
        matched.append(name)
    if not matched:
        raise EdgesegError(
            f"no layer of {source} matched this model by name and shape; is it a MobileNet "
            f"with alpha {cfg.alpha}? (file has {len(weights)} layers with weights)"
        )
    return WeightReport(str(source), tuple(matched), tuple(skipped))
