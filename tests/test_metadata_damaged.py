"""A .tflite whose TFLite metadata buffer is damaged: said once, naming the file; never silent."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.tflite import read_description
from edgeseg.tflite.flatbuffer import metadata_buffers
from edgeseg.tflite.metadata import METADATA_NAME

TINY = Path(__file__).resolve().parent / "data" / "tiny_int8.tflite"  # metadata + edgeseg.json


def damaged(tmp_path: Path, packed_files: bool) -> Path:
    """tiny_int8.tflite with its metadata tables overwritten (the M001 header kept, so it
    is parsed); with or without the packed edgeseg.json/labels.txt after the flatbuffer."""
    data = TINY.read_bytes()
    raw = metadata_buffers(data)[METADATA_NAME]
    at = data.find(raw)
    bad = data[:at + 8] + b"\xff" * (len(raw) - 8) + data[at + len(raw):]
    if not packed_files:
        bad = bad[:min(i.header_offset for i in zipfile.ZipFile(io.BytesIO(bad)).infolist())]
    path = tmp_path / ("packed.tflite" if packed_files else "bare.tflite")
    path.write_bytes(bad)
    return path


def test_damaged_metadata_is_said_once_naming_the_file_and_the_defaults(tmp_path: Path) -> None:
    path = damaged(tmp_path, packed_files=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = read_description(path)
    said = [str(w.message) for w in caught]
    assert len(said) == 1, said
    assert said[0].startswith(f"{path}: its TFLite metadata could not be read (the "
                              "TFLITE_METADATA buffer is damaged")
    assert "running on defaults: mean/std from the input tensor" in said[0]
    assert meta.source == "defaults" and meta.mean is None
    assert meta.metadata_error and "damaged" in meta.metadata_error


def test_damaged_metadata_still_reads_the_packed_description(tmp_path: Path) -> None:
    # The packed edgeseg.json is a zip after the flatbuffer, readable on its own: the
    # model keeps its own normalization instead of falling to the defaults.
    path = damaged(tmp_path, packed_files=True)
    stated = json.loads((TINY.parent / "tiny_int8.tflite.json").read_text())["edgeseg"]
    meta = read_description(path)
    assert meta.source == "embedded"
    assert list(meta.mean) == [float(v) for v in stated["mean"]]
    assert any("TFLite metadata could not be read" in n for n in meta.notes)


@pytest.mark.parametrize("as_json", [False, True])
def test_inspect_shows_damaged_metadata_as_an_error(tmp_path: Path, as_json: bool) -> None:
    path = damaged(tmp_path, packed_files=False)
    r = CliRunner().invoke(app, ["inspect", str(path)] + (["--json"] if as_json else []),
                           env={"COLUMNS": "200"})
    assert r.exit_code == 1, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith(f"error: {path}: its TFLite metadata could not be read"), last
    if as_json:
        info = json.loads(r.output.strip().splitlines()[0])
        assert "damaged" in info["metadata"]["error"]
    else:
        assert "op histogram" in r.output  # the rest is still shown
        assert "error: the TFLITE_METADATA buffer is damaged" in r.output
