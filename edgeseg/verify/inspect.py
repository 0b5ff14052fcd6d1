"""Everything ``edgeseg inspect`` shows about a .tflite, as one dict (TensorFlow-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def inspect_tflite(path: str | Path, gpu: bool = False) -> dict[str, Any]:
    """Describe a .tflite: I/O tensors, op histogram, size, metadata, per-target support.

    Args:
        path: The .tflite file.
        gpu: Also ask LiteRT's GPU accelerator (it compiles the model: seconds), under
            ``"gpu_accelerator"`` (:func:`edgeseg.runtime.accelerator.probe`).

    Returns:
        ``{"model": TfliteModel.to_dict(), "metadata": read_standard_metadata(...)
        (with ``"error"`` naming why, when the file's TFLite metadata cannot be read),
        "runtime": {how the runtime will feed it, with the source of each setting},
        "targets": {target: TargetReport.to_dict()}, "edgetpu": EdgeTpuPreflight.to_dict()}``
        (+ ``"gpu_accelerator"`` when asked).

    Raises:
        EdgesegError: Missing file, or not a TFLite model.
    """
    from edgeseg.convert.edgetpu import edgetpu_preflight
    from edgeseg.convert.targets import compatibility
    from edgeseg.runtime.interpreter import make_interpreter
    from edgeseg.tflite.description import read_description, read_standard_or_error
    from edgeseg.tflite.flatbuffer import read_tflite
    from edgeseg.tflite.metadata import associated_files

    model = read_tflite(path, make_interpreter)
    metadata, error = read_standard_or_error(Path(path))
    if error:  # shown as an error in the metadata table, not as the runtime's warning
        metadata = {"has_metadata": False, "labels": [], "mean": None, "std": None,
                    "edgeseg": None, "associated_files": sorted(associated_files(path)),
                    "error": error}
    rt = read_description(path, warn_unreadable=False)
    info = {
        "model": model.to_dict(),
        "metadata": metadata,
        "runtime": {"source": rt.source, "mean": rt.mean, "std": rt.std, "color": rt.color,
                    "interpolation": rt.interpolation, "labels": list(rt.labels),
                    "head": rt.head, "sources": rt.sources, "notes": list(rt.notes)},
        "targets": {t: r.to_dict() for t, r in compatibility(model).items()},
        "edgetpu": edgetpu_preflight(model).to_dict(),
    }
    if gpu:
        from edgeseg.runtime.accelerator import probe

        info["gpu_accelerator"] = probe(path)
    return info


def quantization_text(t: dict[str, Any]) -> str:
    """``scale 0.0078125, zero point 128`` for a tensor dict, ``-`` when float."""
    if not t["scale"]:
        return "-"
    if len(t["scale"]) > 1:
        return f"per-channel ({len(t['scale'])} scales)"
    return f"scale {t['scale'][0]:.6g}, zero point {t['zero_point'][0]}"


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
