"""TFLite metadata: what MediaPipe and the Task Library read to run a model without code."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegError
from edgeseg.labels import parse_labels
from edgeseg.preprocess import DEFAULT_MEAN, DEFAULT_STD
from edgeseg.tflite.flatbuffer import TFLITE_IDENTIFIER

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
LABELS_FILE = "labels.txt"
SIDECAR_FILE = "edgeseg.json"
INPUT_NAME = "image"
OUTPUT_NAME = "segmentation_masks"

_HEAD_TEXT = {
    "softmax": "per-class probabilities (softmax over the last axis); argmax is the class mask",
    "logits": "per-class scores (logits); argmax is the class mask",
    "argmax": "class-id mask: each value is an index into labels.txt",
}


def _fb() -> Any:
    from edgeseg.tflite import _metadata_schema

    return _metadata_schema


def model_schema() -> Any:
    """The TFLite model schema's Python object API: ai-edge-litert's, or TensorFlow's."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated
        except ImportError as e:
            raise EdgesegError(
                "writing TFLite metadata needs ai-edge-litert or TensorFlow; "
                'install the full toolkit: pip install "edgeseg[full]"'
            ) from e
    return schema_py_generated


def mediapipe_blocker(sidecar: dict[str, Any]) -> str | None:
    """Why MediaPipe Tasks' ImageSegmenter can't run this model, or None when it can.

    Measured with mediapipe 0.10.14 (tests/test_mediapipe.py): float32/float16 models
    with a softmax or logits head, and int8 models with float32 I/O, load and agree with
    edgeseg's runtime. It refuses per-channel normalization of a float input ("Per-channel
    image normalization is not available"), reads an in-graph argmax mask as category 255,
    and mis-reads (or crashes on) a quantized uint8/int8 score output.
    """
    cfg, tfl = sidecar.get("edgeseg", {}), sidecar.get("tflite", {})
    if tfl.get("instance"):
        return "it reads one output; this instance model has three (scores, centre, offsets)"
    if tfl.get("head") == "argmax":
        return "it reads an in-graph argmax class mask as category 255; use --head softmax"
    out_dtype = (tfl.get("output") or {}).get("dtype", "float32")
    if out_dtype != "float32":
        return f"it does not read a quantized {out_dtype} score output; use --io float32"
    in_dtype = (tfl.get("input") or {}).get("dtype", "float32")
    mean, std = cfg.get("mean", DEFAULT_MEAN), cfg.get("std", DEFAULT_STD)
    if in_dtype == "float32" and (len(set(mean)) > 1 or len(set(std)) > 1):
        return "it has no per-channel image normalization (this model's mean differs per channel)"
    return None


def build_model_metadata(sidecar: dict[str, Any], input_dtype: str = "uint8",
                         n_inputs: int = 1, n_outputs: int = 1) -> Any:
    """ModelMetadataT for an image segmenter, following the published image_segmenter writer.

    Args:
        sidecar: The model's sidecar dict (``{"edgeseg": {...}, "tflite": {...}}``).
        input_dtype: Type of the input tensor; sets the input's value range (Stats).
        n_inputs: Input tensors of the graph (one metadata entry each).
        n_outputs: Output tensors of the graph.
    """
    fb = _fb()
    cfg, tfl = sidecar.get("edgeseg", {}), sidecar.get("tflite", {})
    mean = [float(v) for v in cfg.get("mean", DEFAULT_MEAN)]
    std = [float(v) for v in cfg.get("std", DEFAULT_STD)]
    if len(mean) != len(std) or not all(s > 0 for s in std):
        raise EdgesegError(f"bad normalization in the sidecar: mean {mean}, std {std}; "
                           "give one positive std per mean.")
    h, w = cfg.get("height", "?"), cfg.get("width", "?")
    head = tfl.get("head", "softmax")
    labels = list(cfg.get("labels", []))

    image = fb.TensorMetadataT()
    image.name = INPUT_NAME
    image.description = (
        f"RGB image, {h}×{w} (H×W). "
        + ("Raw uint8 pixels 0-255; the input quantization applies the normalization."
           if input_dtype in ("uint8", "int8") else
           "float32 pixels normalized as (pixel - mean) / std.")
    )
    image.content = fb.ContentT()
    image.content.contentPropertiesType = fb.ContentProperties.ImageProperties
    image.content.contentProperties = fb.ImagePropertiesT()
    image.content.contentProperties.colorSpace = fb.ColorSpaceType.RGB
    norm = fb.ProcessUnitT()
    norm.optionsType = fb.ProcessUnitOptions.NormalizationOptions
    norm.options = fb.NormalizationOptionsT()
    norm.options.mean, norm.options.std = mean, std
    image.processUnits = [norm]
    image.stats = fb.StatsT()
    if input_dtype == "uint8":
        image.stats.min, image.stats.max = [0.0], [255.0]
    elif input_dtype == "int8":
        image.stats.min, image.stats.max = [-128.0], [127.0]
    else:  # what the float model sees for pixels 0 and 255
        image.stats.min = [(0.0 - m) / s for m, s in zip(mean, std)]
        image.stats.max = [(255.0 - m) / s for m, s in zip(mean, std)]

    masks = fb.TensorMetadataT()
    masks.name = OUTPUT_NAME
    out_h, out_w = cfg.get("output_size", ["?", "?"])
    text = _HEAD_TEXT.get(head, head)
    if head == "softmax" and cfg.get("n_classes") == 2:  # edgeseg.model.build.deployment_copy
        text += ("; with 2 classes the graph computes it as the sigmoid of the logit difference "
                 "(LOGISTIC), so the two quantized values sum to 1 within a few steps")
    masks.description = f"Segmentation at {out_h}×{out_w} (H×W): {text}."
    masks.content = fb.ContentT()
    # As tflite-support's image_segmenter writer: masks are an image (GRAYSCALE),
    # and the content range marks dims 1..2 (height, width) as the image.
    masks.content.contentPropertiesType = fb.ContentProperties.ImageProperties
    masks.content.contentProperties = fb.ImagePropertiesT()
    masks.content.contentProperties.colorSpace = fb.ColorSpaceType.GRAYSCALE
    masks.content.range = fb.ValueRangeT()
    masks.content.range.min, masks.content.range.max = 1, 2
    masks.stats = fb.StatsT()
    if labels:
        label_file = fb.AssociatedFileT()
        label_file.name = LABELS_FILE
        label_file.description = "Class names, one per line, in class-index order."
        label_file.type = fb.AssociatedFileType.TENSOR_AXIS_LABELS
        masks.associatedFiles = [label_file]

    subgraph = fb.SubGraphMetadataT()
    # The ImageSegmenter name is a claim that MediaPipe runs the model: only where checked.
    blocker = mediapipe_blocker(sidecar)
    subgraph.name = "ImageSegmenter" if blocker is None else "Segmentation"
    subgraph.inputTensorMetadata = [image] + [_plain_tensor(fb, f"input_{i}")
                                              for i in range(1, n_inputs)]
    subgraph.outputTensorMetadata = [masks] + [_plain_tensor(fb, f"output_{i}")
                                               for i in range(1, n_outputs)]
    sidecar_file = fb.AssociatedFileT()
    sidecar_file.name = SIDECAR_FILE
    sidecar_file.description = "edgeseg model description: preprocessing, labels, quantization."
    sidecar_file.type = fb.AssociatedFileType.DESCRIPTIONS

    meta = fb.ModelMetadataT()
    meta.name = f"edgeseg MobileNet-SegNet {h}×{w} (H×W)"
    meta.description = (
        f"Semantic segmentation into {len(labels) or cfg.get('n_classes', '?')} classes"
        + (f" ({', '.join(labels)})" if labels else "")
        + f"; {tfl.get('mode', 'float32')} model, head {head}."
        + (f" Not for MediaPipe's ImageSegmenter: {blocker}." if blocker else "")
    )
    meta.version = str(tfl.get("versions", {}).get("edgeseg") or _edgeseg_version())
    meta.author = "edgeseg"
    meta.license = "Apache-2.0"
    meta.subgraphMetadata = [subgraph]
    meta.associatedFiles = [sidecar_file]
    meta.minParserVersion = min_parser_version(meta)
    return meta


def _plain_tensor(fb: Any, name: str) -> Any:
    t = fb.TensorMetadataT()
    t.name = name
    return t


def _edgeseg_version() -> str:
    from edgeseg import __version__

    return __version__


def min_parser_version(meta: Any) -> str:
    """The oldest metadata parser that reads ``meta``: 1.0.0 plus what newer fields it uses.

    Mirrors tflite-support's metadata_version.cc for the members a segmenter can use.
    """
    fb = _fb()
    needed = [(1, 0, 0)]
    files = list(meta.associatedFiles or [])
    for sg in meta.subgraphMetadata or []:
        files += sg.associatedFiles or []
        if sg.inputProcessUnits or sg.outputProcessUnits:
            needed.append((1, 1, 0))
        if sg.inputTensorGroups or sg.outputTensorGroups:
            needed.append((1, 2, 0))
        if sg.customMetadata:
            needed.append((1, 5, 0))
        for t in (sg.inputTensorMetadata or []) + (sg.outputTensorMetadata or []):
            files += t.associatedFiles or []
            audio = fb.ContentProperties.AudioProperties
            if t.content and t.content.contentPropertiesType == audio:
                needed.append((1, 3, 0))
    for f in files:
        if f.type == fb.AssociatedFileType.VOCABULARY:
            needed.append((1, 0, 1))
        if f.type == fb.AssociatedFileType.SCANN_INDEX_FILE:
            needed.append((1, 4, 0))
        if f.version:
            needed.append((1, 4, 1))
    return ".".join(map(str, max(needed)))


def pack_metadata(meta: Any) -> bytes:
    """Serialize a ModelMetadataT with the ``M001`` file identifier."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(meta.Pack(b), METADATA_IDENTIFIER)
    return bytes(b.Output())


def embed_metadata(model_bytes: bytes, sidecar: dict[str, Any]) -> bytes:
    """Return the model with TFLite metadata, ``labels.txt`` and ``edgeseg.json`` inside.

    The ModelMetadata flatbuffer goes into a buffer named by a ``TFLITE_METADATA``
    entry of the model's ``metadata`` list (an old one is replaced, other entries
    such as ``min_runtime_version`` are kept); the associated files go into a zip
    archive appended to the flatbuffer, the published convention that MediaPipe,
    the Task Library and Python's ``zipfile`` read. Weight buffers are re-packed
    16-byte aligned. Calling it again on its output replaces, never duplicates.

    Args:
        model_bytes: A .tflite file's bytes (with or without earlier metadata).
        sidecar: The model's sidecar dict; it is embedded as ``edgeseg.json``.

    Raises:
        EdgesegError: ``model_bytes`` is not a TFLite model.
    """
    if model_bytes[4:8] != TFLITE_IDENTIFIER:
        raise EdgesegError("cannot embed metadata: the bytes are not a TFLite model (no 'TFL3').")
    schema = model_schema()
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    sg = model.subgraphs[0]
    in_type = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}.get(
        sg.tensors[sg.inputs[0]].type, "FLOAT32").lower()
    meta = build_model_metadata(sidecar, in_type, len(sg.inputs), len(sg.outputs))
    _set_metadata_buffer(schema, model, pack_metadata(meta))
    flat = pack_model(schema, model)

    files = {name: data for name, data in associated_files(model_bytes).items()
             if name not in (LABELS_FILE, SIDECAR_FILE)}
    labels = sidecar.get("edgeseg", {}).get("labels", [])
    if labels:
        files[LABELS_FILE] = ("\n".join(labels) + "\n").encode()
    files[SIDECAR_FILE] = (json.dumps(sidecar, indent=2) + "\n").encode()
    out = io.BytesIO(flat)
    out.seek(0, io.SEEK_END)
    # Stored, not deflated: the C++ readers map the files straight out of the model.
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def _set_metadata_buffer(schema: Any, model: Any, data: bytes) -> None:
    import numpy as np

    buf = schema.BufferT()
    buf.data = np.frombuffer(data, dtype=np.uint8)
    model.metadata = list(model.metadata or [])
    for entry in model.metadata:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            model.buffers[entry.buffer] = buf
            return
    model.buffers = list(model.buffers or []) + [buf]
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)


def pack_model(schema: Any, model: Any) -> bytes:
    """A model-schema object (``ModelT``) as .tflite bytes, weight buffers 16-byte aligned."""
    import flatbuffers
    import numpy as np

    class AlignedBuffer(schema.BufferT):
        def Pack(self, builder: Any) -> int:  # noqa: N802 (flatbuffers' name)
            if self.data is not None and len(self.data):
                self.data = np.asarray(self.data, dtype=np.uint8).reshape(-1)
                # Pad so the vector's bytes start on a 16-byte boundary of the file
                # (Finish pads the whole buffer to the largest alignment seen).
                builder.Prep(16, self.data.size)
            return super().Pack(builder)

    for i, b in enumerate(model.buffers or []):
        aligned = AlignedBuffer()
        aligned.__dict__.update(b.__dict__)
        model.buffers[i] = aligned
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def associated_files(model: bytes | str | Path) -> dict[str, bytes]:
    """The files packed after the flatbuffer (name -> bytes); ``{}`` when there are none."""
    data = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    except zipfile.BadZipFile:
        return {}


def read_standard_metadata(model: str | Path | bytes) -> dict[str, Any]:
    """What a .tflite says about itself, without TensorFlow.

    Returns:
        ``{"has_metadata", "name", "description", "version", "author", "license", "subgraph",
        "min_parser_version", "input": {...}, "output": {...}, "labels", "mean", "std",
        "edgeseg", "associated_files"}``. Without a ``TFLITE_METADATA`` entry (or
        without the ``flatbuffers`` package) the labels, normalization and
        ``edgeseg`` come from the packed ``edgeseg.json``/``labels.txt`` alone.
    """
    from edgeseg.tflite.flatbuffer import metadata_buffers, read_model_bytes

    data = bytes(model) if isinstance(model, (bytes, bytearray)) else read_model_bytes(model)
    files = associated_files(data)
    out: dict[str, Any] = {"has_metadata": False, "labels": [], "mean": None, "std": None,
                           "edgeseg": None, "associated_files": sorted(files)}
    if SIDECAR_FILE in files:
        try:
            out["edgeseg"] = json.loads(files[SIDECAR_FILE])
        except ValueError:
            out["edgeseg"] = None
    raw = metadata_buffers(data).get(METADATA_NAME)
    if raw and raw[4:8] == METADATA_IDENTIFIER:
        fb = _fb()
        meta = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAs(raw, 0))
        out.update(_describe(meta, files))
    cfg = (out["edgeseg"] or {}).get("edgeseg", {})
    if not out["labels"]:
        out["labels"] = list(parse_labels(files.get(LABELS_FILE, b""))) or list(
            cfg.get("labels", []))
    if out["mean"] is None and "mean" in cfg:
        out["mean"], out["std"] = list(cfg["mean"]), list(cfg["std"])
    return out


def _text(v: Any) -> str | None:
    return v.decode(errors="replace") if isinstance(v, bytes) else v


def _describe(meta: Any, files: dict[str, bytes]) -> dict[str, Any]:
    fb = _fb()
    out: dict[str, Any] = {"has_metadata": True}
    for key, attr in (("name", "name"), ("description", "description"), ("version", "version"),
                      ("author", "author"), ("license", "license"),
                      ("min_parser_version", "minParserVersion")):
        out[key] = _text(getattr(meta, attr))
    sg = (meta.subgraphMetadata or [None])[0]
    out["subgraph"] = _text(sg.name) if sg else None
    tin = (sg.inputTensorMetadata or [None])[0] if sg else None
    tout = (sg.outputTensorMetadata or [None])[0] if sg else None
    spaces = {v: k for k, v in vars(fb.ColorSpaceType).items() if not k.startswith("_")}
    if tin is not None:
        info: dict[str, Any] = {"name": _text(tin.name), "description": _text(tin.description)}
        props = tin.content.contentProperties if tin.content else None
        if props is not None and hasattr(props, "colorSpace"):
            info["color_space"] = spaces.get(props.colorSpace, str(props.colorSpace))
        for unit in tin.processUnits or []:
            if unit.optionsType == fb.ProcessUnitOptions.NormalizationOptions:
                info["mean"] = [float(v) for v in unit.options.mean]
                info["std"] = [float(v) for v in unit.options.std]
                out["mean"], out["std"] = info["mean"], info["std"]
        if tin.stats is not None and tin.stats.min is not None:
            info["min"] = [float(v) for v in tin.stats.min]
            info["max"] = [float(v) for v in tin.stats.max]
        out["input"] = info
    if tout is not None:
        info = {"name": _text(tout.name), "description": _text(tout.description)}
        for f in tout.associatedFiles or []:
            if f.type == fb.AssociatedFileType.TENSOR_AXIS_LABELS:
                info["labels_file"] = _text(f.name)
                out["labels"] = list(parse_labels(files.get(_text(f.name), b"")))
        out["output"] = info
    return out
