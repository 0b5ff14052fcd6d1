"""What a .tflite says about itself: the one reader, with where each setting came from.

Order, per setting: edgeseg's own description (the sidecar ``<model>.json`` when it
belongs to this model, else the ``edgeseg.json`` packed in the file), then the
standard TFLite metadata (NormalizationOptions, ImageProperties colour space, the
label file — what MediaPipe and model-zoo files carry), then defaults that the
Segmenter derives from the input tensor.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeseg.config import read_sidecar, sidecar_path
from edgeseg.errors import EdgesegError
from edgeseg.labels import parse_labels
from edgeseg.tflite.metadata import associated_files, read_standard_metadata

EMBEDDED_JSON = "edgeseg.json"
EMBEDDED_LABELS = "labels.txt"
STANDARD = "TFLite metadata"


@dataclass(frozen=True)
class ModelMetadata:
    """The parts of a model's description the runtime uses.

    Attributes:
        mean: Per-channel mean in RGB order, or None to derive it from the input tensor.
        std: Per-channel std in RGB order, or None to derive it from the input tensor.
        color: Channel order the model takes (``RGB`` or ``BGR``).
        interpolation: How frames are resized (see ``edgeseg.preprocess.INTERPOLATIONS``).
        labels: Class names as the model states them (may name only the foreground).
        head: ``softmax``, ``logits``, ``argmax`` or ``sigmoid``; None when unknown.
        size: (height, width) the description says the model takes, if it says.
        source: Where edgeseg's description came from: ``sidecar``, ``embedded``,
            ``TFLite metadata`` (standard metadata only) or ``defaults``.
        sources: Setting -> where it came from (``mean/std``, ``color``,
            ``interpolation``, ``labels``, ``head``).
        description: The whole edgeseg description (``{"edgeseg": ..., "tflite": ...}``),
            None for a model edgeseg did not write.
        notes: Settings the model states that are not used, and why.
        confidence: The convert-time distribution of per-frame confidence
            (:func:`edgeseg.runtime.confidence.summarize`), or None.
        metadata_error: Why the file's standard TFLite metadata could not be read
            (a damaged buffer, a missing package), or None.
    """

    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    color: str = "RGB"
    interpolation: str = "bilinear"
    labels: tuple[str, ...] = ()
    head: str | None = None
    size: tuple[int, int] | None = None
    source: str = "defaults"
    sources: dict[str, str] = field(default_factory=dict)
    description: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    confidence: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    metadata_error: str | None = None


def _triple(v: Any) -> tuple[float, float, float] | None:
    if v is None:
        return None
    vals = [float(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
    if len(vals) == 1:  # one value for all channels (NormalizationOptions allows it)
        vals *= 3
    if len(vals) != 3:
        raise ValueError(f"expected 1 or 3 values, got {len(vals)}")
    return vals[0], vals[1], vals[2]


def parse(data: dict[str, Any], source: str, labels: tuple[str, ...] = ()) -> ModelMetadata:
    """Build ModelMetadata from edgeseg's description ({"edgeseg": {...}, "tflite": {...}}).

    Raises:
        ValueError, TypeError, AttributeError: A malformed description.
    """
    from edgeseg.preprocess import INTERPOLATIONS

    cfg = data.get("edgeseg", data)
    pre = cfg.get("preprocessing") or {}
    color = str(pre.get("color", "RGB")).upper()
    if color not in ("RGB", "BGR"):
        raise ValueError(f"colour order {color!r} is not RGB or BGR")
    interpolation = str(pre.get("interpolation", "auto"))
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation {interpolation!r} is not one of {INTERPOLATIONS}")
    head = (data.get("tflite") or {}).get("head")
    h, w = pre.get("height", cfg.get("height")), pre.get("width", cfg.get("width"))
    own_labels = tuple(str(x) for x in cfg.get("labels") or ())
    mean = _triple(pre.get("mean", cfg.get("mean")))
    where = {"sidecar": "sidecar", "embedded": f"embedded {EMBEDDED_JSON}"}.get(source, source)
    return ModelMetadata(
        mean=mean, std=_triple(pre.get("std", cfg.get("std"))), color=color,
        interpolation=interpolation, labels=own_labels or labels,
        head=str(head) if head else None, size=(int(h), int(w)) if h and w else None,
        source=source, description=data,
        sources={"mean/std": where if mean is not None else "default",
                 "color": where, "interpolation": where,
                 "labels": where if own_labels else (f"embedded {EMBEDDED_LABELS}" if labels
                                                     else "none"),
                 "head": where if head else "none"},
        confidence=(data.get("tflite") or {}).get("confidence"),
    )


def read_standard_or_error(path: Path) -> tuple[dict[str, Any], str | None]:
    """The standard TFLite metadata and packed files, or ``({}, why it could not be read)``.

    Raises:
        EdgesegError: The file is missing or is not a TFLite model.
    """
    try:
        return read_standard_metadata(path), None
    except EdgesegError:
        raise
    except ImportError as e:  # the metadata schema needs the flatbuffers package
        return {}, f"reading it needs the {e.name or 'flatbuffers'} package: pip install flatbuffers"
    except Exception as e:  # noqa: BLE001 - a damaged flatbuffer fails anywhere inside its parser
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        kind = type(e).__name__ if type(e).__module__ == "builtins" else (
            f"{type(e).__module__}.{type(e).__name__}")
        return {}, f"the TFLITE_METADATA buffer is damaged, {kind}: {detail}"


# What the Segmenter falls back to when a model states nothing (segmenter._spec).
DEFAULTS_TEXT = ("mean/std from the input tensor (x / 128 - 1 for a float input, the input's "
                 "quantization for uint8/int8), RGB, bilinear resize, no class names")


def _from_standard(std: dict[str, Any]) -> ModelMetadata:
    """ModelMetadata from the standard TFLite metadata of a model edgeseg did not write."""
    notes: list[str] = []
    sources = {"interpolation": "default (bilinear, as MediaPipe and the Task Library)",
               "head": "none"}
    mean = stdv = None
    inp = std.get("input") or {}
    if inp.get("mean") is not None and inp.get("std") is not None:
        mean, stdv = _triple(inp["mean"]), _triple(inp["std"])
        sources["mean/std"] = f"{STANDARD} (NormalizationOptions)"
    else:
        sources["mean/std"] = "default"
    color = "RGB"
    space = inp.get("color_space")
    if space == "RGB":
        sources["color"] = f"{STANDARD} (ImageProperties RGB)"
    else:
        sources["color"] = "default (RGB)"
        if space and space != "UNKNOWN":
            notes.append(f"the input's colour space {space} is not handled; feeding RGB")
    labels = tuple(str(x) for x in std.get("labels") or ())
    sources["labels"] = f"{STANDARD} (label file)" if labels else "none"
    return ModelMetadata(mean=mean, std=stdv, color=color, interpolation="bilinear",
                         labels=labels, source=STANDARD if std.get("has_metadata") or labels
                         else "defaults", sources=sources, notes=tuple(notes))


def read_description(model_path: str | Path, warn_unreadable: bool = True) -> ModelMetadata:
    """Read the model's preprocessing, labels and head, noting where each came from.

    Args:
        model_path: The .tflite.
        warn_unreadable: Warn (once, naming the file) when its TFLite metadata cannot be
            read and the settings fall to defaults; False for a caller that reports
            ``metadata_error`` itself (``inspect``). Other warnings (a stale sidecar) stay.

    Raises:
        EdgesegError: The sidecar or the packed edgeseg.json is present but malformed
            (one line naming the file and the fix).
    """
    path = Path(model_path)
    data = read_sidecar(path)  # None when absent or another model's (it warns)
    where = str(sidecar_path(path))
    source = "sidecar"
    std, std_error = read_standard_or_error(path) if path.is_file() else ({}, None)
    # The packed files are a zip after the flatbuffer: readable when the metadata is not.
    files = set(std.get("associated_files") or ()) if std_error is None else set(
        associated_files(path))
    packed_labels: tuple[str, ...] = ()
    if data is None:
        packed = associated_files(path) if EMBEDDED_JSON in files or EMBEDDED_LABELS in files else {}
        if EMBEDDED_JSON in packed:
            try:
                data = json.loads(packed[EMBEDDED_JSON])
            except ValueError as e:
                raise EdgesegError(f"the {EMBEDDED_JSON} inside {path} is not valid JSON ({e}); "
                                   "re-run `edgeseg convert`.") from None
            source, where = "embedded", f"{path} (embedded {EMBEDDED_JSON})"
        packed_labels = parse_labels(packed.get(EMBEDDED_LABELS, b""))
    if data is None:
        meta = replace(_from_standard(std), metadata_error=std_error)
        if std_error and warn_unreadable:
            # Once per file (the message names it); the CLI prints warnings as one line.
            warnings.warn(f"{path}: its TFLite metadata could not be read ({std_error}); running "
                          f"on defaults: {DEFAULTS_TEXT}. Re-export the model with its "
                          "metadata, or write a sidecar <model>.json (see `edgeseg inspect`).",
                          stacklevel=2)
        return meta
    try:
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        meta = parse(data, source, packed_labels)
    except (ValueError, TypeError, AttributeError) as e:
        raise EdgesegError(f"{where} is not a valid edgeseg description ({e}); "
                           "fix it or re-run `edgeseg convert`.") from None
    if std_error:  # edgeseg's description holds every setting; only MediaPipe is affected
        meta = replace(meta, metadata_error=std_error, notes=meta.notes + (
            f"its TFLite metadata could not be read ({std_error}); MediaPipe would not run it",))
    return meta
