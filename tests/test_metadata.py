"""TFLite metadata: embedded, read back without TensorFlow, harmless to the model."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tiny_tflite as tt

from edgeseg.errors import EdgesegError
from edgeseg.tflite import metadata as md
from edgeseg.tflite.flatbuffer import metadata_buffers, read_tflite


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    pytest.importorskip("tensorflow")
    return tt.build_models(tmp_path_factory.getbasetemp() / "convert_models")


@pytest.fixture(scope="module")
def embedded(models, tmp_path_factory):
    """The int8 and float softmax models with metadata, written to files."""
    out = {}
    for name, mode in (("int8_resize_softmax", "int8"), ("float_resize_softmax", "float32")):
        path = tmp_path_factory.mktemp("meta") / f"{name}.tflite"
        path.write_bytes(md.embed_metadata(models[name].read_bytes(), tt.sidecar(mode)))
        out[mode] = path
    return out


@pytest.mark.parametrize("mode", ["int8", "float32"])
def test_labels_and_normalization_round_trip(embedded, mode):
    meta = md.read_standard_metadata(embedded[mode])
    assert meta["has_metadata"]
    assert meta["labels"] == tt.LABELS
    assert meta["mean"] == [128.0] * 3 and meta["std"] == [128.0] * 3
    assert meta["input"]["color_space"] == "RGB"
    assert meta["output"]["name"] == "segmentation_masks"
    assert meta["output"]["labels_file"] == "labels.txt"
    assert meta["edgeseg"] == tt.sidecar(mode)
    assert meta["author"] == "edgeseg" and meta["min_parser_version"] == "1.0.0"
    if mode == "int8":  # uint8 pixels in
        assert (meta["input"]["min"], meta["input"]["max"]) == ([0.0], [255.0])
    else:  # what the float model sees for pixels 0 and 255
        assert meta["input"]["min"] == [-1.0] * 3
        assert meta["input"]["max"] == [127 / 128] * 3


def test_layout_follows_the_published_image_segmenter_writer(embedded):
    fb = md._fb()
    raw = metadata_buffers(embedded["int8"].read_bytes())[md.METADATA_NAME]
    assert fb.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0)
    meta = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAs(raw, 0))
    (sg,) = meta.subgraphMetadata
    (image,), (masks,) = sg.inputTensorMetadata, sg.outputTensorMetadata
    assert image.content.contentPropertiesType == fb.ContentProperties.ImageProperties
    assert image.processUnits[0].optionsType == fb.ProcessUnitOptions.NormalizationOptions
    assert masks.content.contentProperties.colorSpace == fb.ColorSpaceType.GRAYSCALE
    assert (masks.content.range.min, masks.content.range.max) == (1, 2)
    assert masks.associatedFiles[0].type == fb.AssociatedFileType.TENSOR_AXIS_LABELS
    assert meta.associatedFiles[0].name == b"edgeseg.json"
    assert meta.associatedFiles[0].type == fb.AssociatedFileType.DESCRIPTIONS


@pytest.mark.parametrize("name", ["int8_resize_softmax", "float_resize_softmax"])
def test_model_runs_identically_after_embedding(models, name):
    plain = models[name].read_bytes()
    mode = "int8" if name.startswith("int8") else "float32"
    with_meta = md.embed_metadata(plain, tt.sidecar(mode))
    x = tt.sample_input(plain)
    a, b = tt.run(plain, x), tt.run(with_meta, x)
    assert a.shape == (1, tt.SIZE, tt.SIZE, 3)
    np.testing.assert_array_equal(a, b)


def test_reembedding_replaces_and_keeps_other_entries(models):
    plain = models["int8_resize_softmax"].read_bytes()
    once = md.embed_metadata(plain, tt.sidecar())
    twice = md.embed_metadata(once, tt.sidecar(labels=["bg", "lane", "truck"]))
    names = read_tflite_bytes(twice).metadata_names
    assert names.count(md.METADATA_NAME) == 1
    assert "min_runtime_version" in names  # the converter's entries survive
    assert set(read_tflite_bytes(plain).metadata_names) <= set(names)
    with zipfile.ZipFile(io.BytesIO(twice)) as zf:
        assert sorted(zf.namelist()) == ["edgeseg.json", "labels.txt"]  # no duplicates
    assert md.read_standard_metadata(twice)["labels"] == ["bg", "lane", "truck"]
    assert abs(len(twice) - len(once)) < 64  # replaced, not appended
    # The same metadata twice gives the same bytes.
    assert md.embed_metadata(once, tt.sidecar()) == once


def read_tflite_bytes(data: bytes):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.tflite"
        p.write_bytes(data)
        return read_tflite(p)


def test_other_packed_files_are_kept(models):
    plain = models["int8_resize_logits"].read_bytes()
    buf = io.BytesIO(plain)
    buf.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("vocab.txt", "kept\n")
    out = md.embed_metadata(buf.getvalue(), tt.sidecar(head="logits"))
    files = md.associated_files(out)
    assert files["vocab.txt"] == b"kept\n"
    assert files["labels.txt"].decode().splitlines() == tt.LABELS


def test_zipfile_reads_the_model_file_and_weights_stay_aligned(embedded):
    with zipfile.ZipFile(embedded["int8"]) as zf:
        assert zf.read("labels.txt").decode().split() == tt.LABELS
        assert zf.getinfo("edgeseg.json").compress_type == zipfile.ZIP_STORED
    from ai_edge_litert import schema_py_generated as schema

    data = embedded["int8"].read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    starts = []
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        if b.DataLength():
            starts.append(b._tab.Vector(b._tab.Offset(4)))
    assert len(starts) >= 5 and all(s % 16 == 0 for s in starts)


def test_plain_model_reads_as_no_metadata(models):
    meta = md.read_standard_metadata(models["int8_resize_logits"])
    assert not meta["has_metadata"]
    assert meta["labels"] == [] and meta["mean"] is None and meta["associated_files"] == []


def test_packed_files_are_enough_without_a_metadata_buffer(embedded, monkeypatch):
    """A Pi without the flatbuffers package still gets labels and normalization."""
    monkeypatch.setattr("edgeseg.tflite.flatbuffer.metadata_buffers", lambda data: {})
    meta = md.read_standard_metadata(embedded["float32"])
    assert not meta["has_metadata"]
    assert meta["labels"] == tt.LABELS and meta["mean"] == [128.0] * 3


def test_min_parser_version_follows_the_fields_used():
    meta = md.build_model_metadata(tt.sidecar())
    assert md.min_parser_version(meta) == "1.0.0"
    meta.associatedFiles[0].version = "2"  # AssociatedFile.version arrived in 1.4.1
    assert md.min_parser_version(meta) == "1.4.1"
    meta.subgraphMetadata[0].inputProcessUnits = [md._fb().ProcessUnitT()]
    assert md.min_parser_version(meta) == "1.4.1"


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(EdgesegError, match="not a TFLite model"):
        md.embed_metadata(b"PK\x03\x04 not a model", tt.sidecar())
    with pytest.raises(EdgesegError, match="std"):
        md.build_model_metadata({"edgeseg": {"mean": [1.0, 2.0, 3.0], "std": [1.0, 0.0, 1.0]}})
    (tmp_path / "x.tflite").write_text("hello")
    with pytest.raises(EdgesegError, match="not a TFLite model"):
        md.read_standard_metadata(tmp_path / "x.tflite")
    with pytest.raises(EdgesegError, match="no such model file"):
        md.read_standard_metadata(tmp_path / "missing.tflite")


def test_reading_metadata_does_not_import_tensorflow(embedded):
    code = (
        "import sys\n"
        "from edgeseg.tflite.metadata import read_standard_metadata\n"
        "from edgeseg.tflite.flatbuffer import read_tflite\n"
        f"m = read_standard_metadata({str(embedded['int8'])!r})\n"
        f"t = read_tflite({str(embedded['int8'])!r})\n"
        "assert m['labels'] and t.ops, m\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('tensorflow', 'keras')]\n"
        "assert not bad, bad[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_two_class_softmax_output_says_how_it_is_computed(models):
    """A 2-class softmax head is a LOGISTIC in the graph (deployment_copy): the output's
    description says so; with 3 classes it is the plain softmax text."""
    plain = next(iter(models.values())).read_bytes()
    two = tt.sidecar()
    two["edgeseg"]["n_classes"] = 2
    out = {n: md.read_standard_metadata(md.embed_metadata(plain, side))["output"]["description"]
           for n, side in (("two", two), ("three", tt.sidecar()))}
    assert "sigmoid of the logit difference (LOGISTIC)" in out["two"]
    assert "softmax over the last axis" in out["three"] and "LOGISTIC" not in out["three"]
