"""Sidecars that name their model, damaged state files and unwritable outputs: one line each."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import tflite_fixtures
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import EdgesegError
from edgeseg.runtime import Segmenter


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tflite_fixtures.build_cached(tmp_path_factory)


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_sidecar_names_the_model_and_a_stale_one_is_not_used(models: Path,
                                                            tmp_path: Path) -> None:
    from edgeseg.config import file_sha256, read_sidecar, save_sidecar

    model = tmp_path / "m.tflite"
    shutil.copy(models / "int8_embedded.tflite", model)
    meta = json.loads((models / "int8_softmax.tflite.json").read_text())
    meta["edgeseg"]["labels"] = ["bg", "r", "g", "b"]
    side = save_sidecar(model, meta)
    assert json.loads(side.read_text())["model_sha256"] == file_sha256(model)
    assert Segmenter(model).labels == ("bg", "r", "g", "b")  # the sidecar wins when it matches
    # An interrupted save: the model was replaced, its sidecar was not.
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.warns(RuntimeWarning, match="belongs to another version of m.tflite"):
        assert read_sidecar(model) is None
    with pytest.warns(RuntimeWarning, match="another version"):
        seg = Segmenter(model)
    assert seg.metadata.source == "embedded" and seg.labels == tflite_fixtures.LABELS


@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_corrupt_tflite_sidecar_is_one_line(models: Path, tmp_path: Path, command: str) -> None:
    model = tmp_path / "m.tflite"
    shutil.copy(models / "int8_softmax.tflite", model)
    (tmp_path / "m.tflite.json").write_text("{not json")
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "annotations").mkdir()
    args = [command, str(model)] + ([str(model)] if command == "compare" else [])
    one_line_error(CliRunner().invoke(app, args + ["--data", str(data)]),
                   "m.tflite.json is not valid JSON", "delete it")


def test_corrupt_keras_sidecar_is_one_line(tmp_path: Path) -> None:
    from edgeseg.config import load_config

    (tmp_path / "m.keras").write_bytes(b"x")
    (tmp_path / "m.keras.json").write_text('{"edgeseg": {"n_classes": "many"')
    with pytest.raises(EdgesegError, match=r"m.keras.json is not valid JSON"):
        load_config(tmp_path / "m.keras")
    (tmp_path / "m.keras.json").write_text('{"edgeseg": {"n_classes": 1}}')
    with pytest.raises(EdgesegError, match="--classes must be at least 2"):
        load_config(tmp_path / "m.keras")


def test_corrupt_demo_steps_and_training_history_are_one_line(tmp_path: Path) -> None:
    from edgeseg.demo import DemoConfig, Steps
    from edgeseg.train.resume import old_rows

    (tmp_path / "steps.json").write_text('{"done": {"train"')
    with pytest.raises(EdgesegError, match=r"steps.json is not valid JSON .*delete it"):
        Steps(tmp_path, DemoConfig(), log=lambda s: None)
    (tmp_path / "m.history.csv").write_text("epoch,loss\n1,0.5\n2,oops\n")
    with pytest.raises(EdgesegError, match=r"m.history.csv is not a readable history"):
        old_rows(tmp_path / "m.keras", 2)
    (tmp_path / "m.history.csv").write_text("epoch,loss\n1,0.5\n2,0.4\n3,0.3\n")
    assert old_rows(tmp_path / "m.keras", 2) == [{"epoch": 1.0, "loss": 0.5},
                                                  {"epoch": 2.0, "loss": 0.4}]


def test_output_that_is_a_file_or_not_writable_is_one_line(models: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeseg.atomic import write_bytes

    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(CliRunner().invoke(app, ["bench", str(models / "int8_softmax.tflite"),
                                            "--runs", "1", "--plot", str(blocker / "b.png")]),
                   f"{blocker} is not a writable folder")
    with pytest.raises(EdgesegError, match="it is a folder"):
        write_bytes(tmp_path, b"x")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)  # root ignores chmod; fake the refusal
    with pytest.raises(EdgesegError, match=r"out is not a writable folder \(Permission denied\)"):
        write_bytes(tmp_path / "out" / "m.tflite", b"x")
    assert not (tmp_path / "out" / "m.tflite").exists()


def test_label_files_parse_one_way() -> None:
    from edgeseg.labels import parse_labels

    # CRLF line ends, blank lines, stray spaces, a non-UTF-8 byte: the names survive
    assert parse_labels(b"background\r\n\r\n cat \nd\xffg\n") == ("background", "cat", "d\ufffdg")
    assert parse_labels("") == ()


@pytest.mark.parametrize("flags, message", [
    ({"int8": True, "fp16": True}, "pick one of --int8, --fp16, --dynamic"),
    ({"upsampling": "bicubic"}, "--upsampling 'bicubic' must be auto or one of tile, resize, concat_reshape"),
    ({"verify": True}, "--verify compares a quantized model"),
    ({"fp16": True, "target": "edgetpu"}, "--target edgetpu needs a full-integer model"),
])
def test_convert_options_are_checked_by_the_config(flags: dict, message: str) -> None:
    from edgeseg.convert.quantize import ConvertConfig

    with pytest.raises(EdgesegError, match=message):
        ConvertConfig.from_options(**flags)
    ok = ConvertConfig.from_options(int8=True, keep_float="dec_conv_4, dec_conv_3,", verify=True)
    assert (ok.mode, ok.keep_float, ok.head) == ("int8", ("dec_conv_4", "dec_conv_3"), "softmax")


def test_stale_sidecar_warning_is_one_clean_line(models: Path, tmp_path: Path) -> None:
    """Through the CLI the note is ``warning: …``, not Python's ``file:line: RuntimeWarning``."""
    from edgeseg.config import save_sidecar

    model = tmp_path / "m.tflite"
    shutil.copy(models / "int8_embedded.tflite", model)
    save_sidecar(model, json.loads((models / "int8_softmax.tflite.json").read_text()))
    model.write_bytes(model.read_bytes() + b"\0")
    result = CliRunner().invoke(app, ["inspect", str(model)])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "belongs to another version" in ln]
    assert lines == ["warning: m.tflite.json belongs to another version of m.tflite (its "
                     "model_sha256 differs); ignoring it and using the model's own description."]
    assert "RuntimeWarning" not in result.output and "config.py" not in result.output
