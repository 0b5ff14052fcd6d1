"""What a .tflite says about itself: sidecar JSON, else the embedded zip, else defaults."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.config import sidecar_path
from edgeseg.errors import EdgesegError

EMBEDDED_JSON = "edgeseg.json"
EMBEDDED_LABELS = "labels.txt"


@dataclass(frozen=True)
class ModelMetadata:
    """The parts of a model's description the runtime uses.

    Attributes:
        mean: Per-channel mean in RGB order, or None to derive it from the input tensor.
        std: Per-channel std in RGB order, or None to derive it from the input tensor.
        color: Channel order the model takes (``RGB`` or ``BGR``).
        interpolation: How frames are resized to the input (``bilinear``, ``nearest``, ``area``).
        labels: Class names, background first (empty when unknown).
        head: ``softmax``, ``logits``, ``argmax`` or ``sigmoid``; None when unknown.
        size: (height, width) the metadata says the model takes, if it says.
        source: Where it came from: ``sidecar``, ``embedded`` or ``defaults``.
        confidence: The convert-time distribution of per-frame confidence
            (:func:`edgeseg.runtime.confidence.summarize`), or None.
    """

    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    color: str = "RGB"
    interpolation: str = "bilinear"
    labels: tuple[str, ...] = ()
    head: str | None = None
    size: tuple[int, int] | None = None
    source: str = "defaults"
    confidence: dict[str, Any] | None = field(default=None, hash=False, compare=False)


def _triple(v: Any) -> tuple[float, float, float] | None:
    if v is None:
        return None
    vals = [float(x) for x in (v if isinstance(v, (list, tuple)) else [v] * 3)]
    if len(vals) != 3:
        raise ValueError(f"expected 3 values, got {len(vals)}")
    return vals[0], vals[1], vals[2]


def parse(data: dict[str, Any], source: str, labels: tuple[str, ...] = ()) -> ModelMetadata:
    """Build ModelMetadata from a sidecar-format dict ({"edgeseg": {...}, "tflite": {...}})."""
    cfg = data.get("edgeseg", data)
    pre = cfg.get("preprocessing") or {}
    color = str(pre.get("color", "RGB")).upper()
    if color not in ("RGB", "BGR"):
        raise ValueError(f"colour order {color!r} is not RGB or BGR")
    head = (data.get("tflite") or {}).get("head")
    h, w = pre.get("height", cfg.get("height")), pre.get("width", cfg.get("width"))
    return ModelMetadata(
        mean=_triple(pre.get("mean", cfg.get("mean"))),
        std=_triple(pre.get("std", cfg.get("std"))),
        color=color,
        interpolation=str(pre.get("interpolation", "bilinear")),
        labels=tuple(str(x) for x in cfg.get("labels") or ()) or labels,
        head=str(head) if head else None,
        size=(int(h), int(w)) if h and w else None,
        source=source,
        confidence=(data.get("tflite") or {}).get("confidence"),
    )


def _embedded(path: Path) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """The JSON and labels stored in the zip appended to the flatbuffer, if any."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            data = json.loads(zf.read(EMBEDDED_JSON)) if EMBEDDED_JSON in names else None
            labels: tuple[str, ...] = ()
            if EMBEDDED_LABELS in names:
                text = zf.read(EMBEDDED_LABELS).decode("utf-8")
                labels = tuple(line.strip() for line in text.splitlines() if line.strip())
            return data, labels
    except (zipfile.BadZipFile, OSError, KeyError):
        return None, ()


def read_metadata(model_path: str | Path) -> ModelMetadata:
    """Read the model's preprocessing and labels.

    The sidecar ``<model>.tflite.json`` wins (it can be edited without touching the
    model), then the ``edgeseg.json``/``labels.txt`` embedded in the file, then defaults.

    Raises:
        EdgesegError: When the sidecar or embedded JSON is present but malformed.
    """
    path = Path(model_path)
    side = sidecar_path(path)
    data: dict[str, Any] | None = None
    source, where = "defaults", ""
    labels: tuple[str, ...] = ()
    if side.is_file():
        source, where = "sidecar", str(side)
        try:
            data = json.loads(side.read_text())
        except ValueError as e:
            raise EdgesegError(f"{side} is not valid JSON ({e}); fix or delete it.") from e
    else:
        try:
            data, labels = _embedded(path)
        except ValueError as e:
            raise EdgesegError(f"the edgeseg.json inside {path} is not valid JSON ({e}); "
                               "re-run `edgeseg convert`.") from e
        if data is not None or labels:
            source, where = "embedded", f"{path} (embedded {EMBEDDED_JSON})"
    if data is None:
        return ModelMetadata(labels=labels, source=source)
    try:
        return parse(data, source, labels)
    except (ValueError, TypeError, AttributeError) as e:
        raise EdgesegError(f"{where} is not a valid edgeseg description ({e}); "
                           "fix it or re-run `edgeseg convert`.") from e
