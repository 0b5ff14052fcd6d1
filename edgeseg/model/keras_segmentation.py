"""Import keras_segmentation's ``mobilenet_segnet`` checkpoints into edgeseg's model."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeseg.config import ModelConfig
from edgeseg.errors import EdgesegError

SUPPORTED_CLASS = "mobilenet_segnet"
# keras_segmentation's default ``sub_mean``: cv2 BGR read, cv2.resize (bilinear), subtract
# (103.939, 116.779, 123.68) from B, G, R, flip to RGB, no scaling. Here in RGB order.
SUB_MEAN_RGB = (123.68, 116.779, 103.939)
UNIT_STD = (1.0, 1.0, 1.0)
# Layers with weights in keras_segmentation's mobilenet_segnet at its encoder_level 3:
# conv1 + BN, 11 depthwise blocks x (dw, BN, pw, BN), 4 decoder x (conv, BN), the class conv.
N_WEIGHT_LAYERS = 2 + 11 * 4 + 4 * 2 + 1
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ENCODER_NAME = re.compile(r"conv1(_bn)?|conv_(dw|pw)_\d+(_bn)?")
_TF_KEY = re.compile(r"^layer_with_weights-(\d+)/(\w+)/\.ATTRIBUTES/VARIABLE_VALUE$")


@dataclass(frozen=True)
class Checkpoint:
    """One keras_segmentation checkpoint found on disk.

    Attributes:
        weights: The HDF5 file, or the TensorFlow checkpoint prefix (``NAME.N``).
        fmt: ``"tf"`` (``.index`` + ``.data-*``) or ``"h5"``.
        epoch: The ``N`` of ``NAME.N``; None for a file without one.
        config_path: ``NAME_config.json``.
        config: Its content (``model_class``, ``n_classes``, ``input_height``, ``input_width``).
    """

    weights: Path
    fmt: str
    epoch: int | None
    config_path: Path
    config: dict[str, Any]


@dataclass(frozen=True)
class ImportReport:
    """What ``import_keras_segmentation`` did."""

    checkpoint: Checkpoint
    output: Path
    layers: int
    tensors: int

    def summary(self) -> str:
        ck = self.checkpoint
        which = f"epoch {ck.epoch}" if ck.epoch is not None else ck.fmt
        return (f"imported keras_segmentation {ck.config.get('model_class')} from {ck.weights} "
                f"({which}, {ck.fmt} format): {self.layers} layers, {self.tensors} tensors mapped "
                f"by layer order with shapes checked -> {self.output}")


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == _HDF5_MAGIC


def _epochs(prefix: Path) -> dict[int, Path]:
    """``N -> NAME.N`` for every checkpoint of ``prefix``, as find_latest_checkpoint globs ``NAME.*``.

    A TensorFlow-format checkpoint is ``NAME.N.index`` + ``NAME.N.data-*`` (keras_segmentation's
    own glob misses those under tf.keras 2; this does not); an HDF5 one is the file ``NAME.N``.
    """
    found: dict[int, Path] = {}
    for p in prefix.parent.glob(prefix.name + ".*"):
        rest = p.name[len(prefix.name) + 1:]
        if rest.isdigit() and p.is_file():
            found[int(rest)] = p
        elif rest.endswith(".index") and rest[:-len(".index")].isdigit():
            found[int(rest[:-len(".index")])] = p.with_name(p.name[:-len(".index")])
    return found


def find_checkpoint(source: str | Path, config: str | Path | None = None) -> Checkpoint:
    """Resolve ``source`` to one checkpoint and its ``NAME_config.json``.

    ``source`` is a prefix (``checkpoints/NAME``: the newest ``.N`` is taken, as
    keras_segmentation's ``find_latest_checkpoint`` does), one checkpoint
    (``NAME.N``, ``NAME.N.index``) or an HDF5 weights file (``.h5``). The config is
    ``config`` when given, else ``NAME_config.json`` beside the checkpoint.

    Raises:
        EdgesegError: Nothing found, no config beside it, or an unsupported ``model_class``.
    """
    src = Path(source)
    if src.name.endswith(".index"):
        src = src.with_name(src.name[:-len(".index")])
    m = re.fullmatch(r"(.+)\.(\d+)", src.name)
    if src.is_dir():
        raise EdgesegError(f"{src} is a folder; pass the checkpoint prefix inside it "
                           "(e.g. checkpoints/mobilenet_segnet, without .N).")
    if src.is_file() or src.with_name(src.name + ".index").is_file():
        weights, epoch = src, int(m.group(2)) if m else None
        prefix = src.with_name(m.group(1)) if m else src.with_suffix("")
    else:
        found = _epochs(src)
        if not found:
            raise EdgesegError(f"{src}: no such file, and no keras_segmentation checkpoint "
                               f"{src.name}.N beside it; pass checkpoints/NAME as given to "
                               "train(checkpoints_path=...), or one NAME.N file.")
        epoch = max(found)
        weights, prefix = found[epoch], src
    fmt = "tf" if weights.with_name(weights.name + ".index").is_file() else "h5"
    if fmt == "h5" and not _is_hdf5(weights):
        raise EdgesegError(f"{weights} is neither an HDF5 weights file nor a TensorFlow checkpoint "
                           "(no .index beside it); pass a keras_segmentation checkpoint.")
    config_path = Path(config) if config else prefix.with_name(prefix.name + "_config.json")
    if not config_path.is_file():
        raise EdgesegError(f"{config_path}: no such file; keras_segmentation writes NAME_config.json "
                           "beside the checkpoints (model_class, n_classes, input size): copy it "
                           "there or pass --config PATH.")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as e:
        raise EdgesegError(f"{config_path} is not valid JSON ({e}); restore it from training.") from None
    if config.get("model_class") != SUPPORTED_CLASS:
        raise EdgesegError(f"{config_path}: model_class {config.get('model_class')!r} is not "
                           f"supported; edgeseg imports {SUPPORTED_CLASS!r} only.")
    return Checkpoint(weights, fmt, epoch, config_path, config)


def read_weight_layers(ck: Checkpoint) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The checkpoint's layers that hold weights, in the model's layer order.

    Returns:
        ``(layer name or "layer_with_weights-N", {weight name: array})`` per layer;
        weight names are Keras' (``kernel``, ``bias``, ``gamma``, ``moving_mean`` ...).
    """
    if ck.fmt == "h5":
        from edgeseg.model.weights import _read_h5

        # Legacy HDF5 stores each layer's weights in Keras' order (kernel, bias; gamma, beta,
        # moving_mean, moving_variance), which edgeseg's layers share: key them by position.
        return [(name, {str(i): a for i, a in enumerate(arrays)})
                for name, arrays in _read_h5(ck.weights).items() if arrays]
    from edgeseg.deps import tensorflow

    try:
        reader = tensorflow().train.load_checkpoint(str(ck.weights))
    except Exception as e:  # TensorFlow raises its own error types for a broken checkpoint
        raise EdgesegError(f"{ck.weights} is not a readable TensorFlow checkpoint "
                           f"({str(e).splitlines()[0][:120]}); check the .index/.data files.") from None
    by_layer: dict[int, dict[str, np.ndarray]] = {}
    for key in reader.get_variable_to_shape_map():
        hit = _TF_KEY.match(key)
        if hit:  # optimizer slots and the save counter are not model weights
            by_layer.setdefault(int(hit.group(1)), {})[hit.group(2)] = reader.get_tensor(key)
    return [(f"layer_with_weights-{i}", by_layer[i]) for i in sorted(by_layer)]


def _assign(model: Any, layers: list[tuple[str, dict[str, np.ndarray]]], where: Path) -> int:
    """Set every weight of ``model`` from ``layers`` by layer order, checking names and shapes."""
    targets = [layer for layer in model.layers if layer.weights]
    if len(layers) != len(targets):
        raise EdgesegError(
            f"{where} holds {len(layers)} layers with weights; keras_segmentation's "
            f"{SUPPORTED_CLASS} (encoder_level 3) has {len(targets)}. Was it trained with "
            "another encoder_level or model? Only the default is supported.")
    n = 0
    for (src_name, weights), layer in zip(layers, targets):
        # Encoder layers keep Keras' MobileNet names in both models: a mismatch means a shift.
        if _ENCODER_NAME.fullmatch(src_name) and src_name != layer.name:
            raise EdgesegError(f"{where}: layer {src_name!r} sits where edgeseg expects "
                               f"{layer.name!r}; the file is not a {SUPPORTED_CLASS}.")
        values = []
        for i, var in enumerate(layer.weights):
            key = var.name.split("/")[-1].split(":")[0]
            # Keras 3 names a depthwise kernel "kernel"; Keras 2 "depthwise_kernel".
            arr = next((weights[k] for k in (key, f"depthwise_{key}", str(i)) if k in weights), None)
            if arr is None or tuple(arr.shape) != tuple(var.shape):
                got = None if arr is None else tuple(arr.shape)
                raise EdgesegError(f"{where}: {src_name} {key} is {got}, edgeseg's {layer.name} "
                                   f"expects {tuple(var.shape)}; does the config's n_classes match "
                                   "the checkpoint?")
            values.append(arr)
            n += 1
        layer.set_weights(values)
    return n


def import_keras_segmentation(source: str | Path, output: str | Path, labels: tuple[str, ...] = (),
                              config: str | Path | None = None,
                              log: Callable[[str], None] = print) -> ImportReport:
    """Rebuild a keras_segmentation ``mobilenet_segnet`` checkpoint as an edgeseg ``.keras`` model.

    The weights map onto edgeseg's ``mobilenet_segnet`` (seed decoder, encoder level 3,
    alpha 1.0, flat softmax head) by keras_segmentation's layer order — its decoder
    layers are auto-named — with every shape checked. The model's sidecar carries
    keras_segmentation's preprocessing (RGB mean (123.68, 116.779, 103.939), std 1,
    bilinear resize), so evaluate, int8 calibration and the runtime feed it as trained.

    Args:
        source: A checkpoint prefix, one ``NAME.N`` checkpoint or an ``.h5`` weights file.
        output: The ``.keras`` file to write (atomically, with ``output.json``).
        labels: Class names, background first (default ``class0`` ...).
        config: The ``NAME_config.json`` (default: found beside the checkpoint).
        log: Receives one-line messages.

    Raises:
        EdgesegError: Missing or unsupported checkpoint, config, or a shape mismatch.
    """
    from edgeseg.deps import keras

    ck = find_checkpoint(source, config)
    c = ck.config
    try:
        cfg = ModelConfig(n_classes=int(c["n_classes"]), height=int(c["input_height"]),
                          width=int(c["input_width"]), alpha=1.0, encoder_level=3, head="flat",
                          decoder="seed", labels=tuple(labels), mean=SUB_MEAN_RGB, std=UNIT_STD)
    except (KeyError, TypeError, ValueError) as e:
        raise EdgesegError(f"{ck.config_path} lacks {e} (n_classes, input_height, input_width); "
                           "restore it from training.") from None
    keras()
    from edgeseg.model.build import build_model
    from edgeseg.model.io import save_model

    model = build_model(cfg)
    n = _assign(model, read_weight_layers(ck), ck.weights)
    provenance = {"format": "keras_segmentation", "checkpoint": str(ck.weights.resolve()),
                  "epoch": ck.epoch, "weights_format": ck.fmt, "config": c,
                  "preprocessing": "keras_segmentation sub_mean: BGR read, cv2.resize bilinear, "
                                   "minus (103.939, 116.779, 123.68) on B, G, R, flipped to RGB"}
    out = save_model(model, cfg, output, imported_from=provenance)
    report = ImportReport(ck, out, sum(1 for layer in model.layers if layer.weights), n)
    log(report.summary())
    return report


def is_keras_segmentation(source: str | Path) -> bool:
    """Whether ``source`` looks like a keras_segmentation checkpoint (not an edgeseg .keras)."""
    p = Path(source)
    if p.suffix == ".keras":
        return False
    if p.name.endswith(".index") or re.fullmatch(r".+\.\d+", p.name) or p.suffix == ".h5":
        return True
    return not p.exists() and bool(_epochs(p))
