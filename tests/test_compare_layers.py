"""compare --layers re-makes the int8 conversion from what the .tflite records, or refuses."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.convert.calibration import load_calibration
from edgeseg.convert.layer_errors import plan_layer_errors
from edgeseg.errors import EdgesegError

DATA = Path(__file__).resolve().parent / "data"
TINY = DATA / "tiny_int8.tflite"  # an edgeseg int8 model; its sidecar records the conversion


def images(folder: Path, n: int = 6) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(66)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), np.uint8)).save(folder / f"c{i}.png")
    return folder


def recorded_model(tmp_path: Path, **tflite: object) -> Path:
    """tiny_int8.tflite with a sidecar whose ``tflite`` section is changed by ``tflite``."""
    model = tmp_path / "m.tflite"
    shutil.copy(TINY, model)
    side = json.loads((DATA / "tiny_int8.tflite.json").read_text())
    side["tflite"].update(tflite)
    (tmp_path / "m.tflite.json").write_text(json.dumps(side))
    return model


@pytest.fixture
def keras_file(tmp_path: Path) -> Path:
    path = tmp_path / "src.keras"
    path.write_bytes(b"the plan only checks that it exists")
    return path


def test_the_plan_uses_the_calibration_set_the_file_records(tmp_path: Path,
                                                           keras_file: Path) -> None:
    calib = images(tmp_path / "my-calib")
    sha = load_calibration(calib, 4, seed=3, warn=lambda s: None).sha256
    model = recorded_model(tmp_path, calibration={"folder": str(calib), "count": 4, "sha256": sha},
                           source=str(keras_file),
                           convert={"mode": "int8", "io": "int8", "head": "logits", "seed": 3,
                                    "calib": str(calib), "calib_count": 4})
    plan = plan_layer_errors(model)
    assert plan.keras == keras_file
    assert (plan.convert.io, plan.convert.head, plan.convert.seed) == ("int8", "logits", 3)
    assert plan.calibration.folder == calib and len(plan.calibration.files) == 4
    assert plan.describe() == f"calibration: 4 images of {calib} (seed 3), as recorded in m.tflite"


def test_changed_calibration_images_are_refused(tmp_path: Path, keras_file: Path) -> None:
    calib = images(tmp_path / "my-calib")
    model = recorded_model(tmp_path, calibration={"folder": str(calib), "count": 4,
                                                  "sha256": "0" * 64},
                           source=str(keras_file), convert={"mode": "int8"})
    with pytest.raises(EdgesegError, match=f"the calibration images in {calib} changed since "
                                           "m.tflite was converted"):
        plan_layer_errors(model)


def test_a_missing_calibration_folder_is_refused_naming_it(tmp_path: Path,
                                                          keras_file: Path) -> None:
    model = recorded_model(tmp_path, calibration={"folder": str(tmp_path / "gone"), "count": 4},
                           source=str(keras_file), convert={"mode": "int8"})
    with pytest.raises(EdgesegError, match=r"the calibration set m.tflite records \(.*gone\) "
                                           "cannot be read"):
        plan_layer_errors(model)


def test_the_default_set_is_found_by_its_hash_after_it_moved(tmp_path: Path,
                                                            keras_file: Path) -> None:
    from edgeseg.convert.calibration import DEFAULT_DIR

    sha = load_calibration(None, 5, seed=0, warn=lambda s: None).sha256
    model = recorded_model(tmp_path, source=str(keras_file), convert={"mode": "int8"},
                           calibration={"folder": "/old/checkout/edgeseg/assets/calibration",
                                        "count": 5, "sha256": sha})
    assert plan_layer_errors(model).calibration.folder == DEFAULT_DIR


def test_compare_layers_refuses_a_file_that_records_no_conversion(tmp_path: Path) -> None:
    # Like a third-party model: the flatbuffer alone, no sidecar or edgeseg.json. The old
    # compare re-converted with fixed settings and guessed the calibration folder.
    data = TINY.read_bytes()
    model = tmp_path / "third_party.tflite"
    model.write_bytes(data[:min(i.header_offset
                                for i in zipfile.ZipFile(io.BytesIO(data)).infolist())])
    r = CliRunner().invoke(app, ["compare", str(model), str(model), "--data", str(tmp_path),
                                 "--layers"], env={"COLUMNS": "200"})
    assert r.exit_code != 0
    assert (f"{model} does not record how it was converted (no edgeseg description)"
            in " ".join(r.output.split())), r.output
    assert "Traceback" not in r.output


def test_a_keep_float_file_is_refused_in_one_line(tmp_path: Path, keras_file: Path) -> None:
    """TFLite's debugger cannot re-run a selectively quantized graph (it raised a TF traceback):
    say so and what to do instead."""
    calib = images(tmp_path / "my-calib")
    sha = load_calibration(calib, 4, seed=0, warn=lambda s: None).sha256
    model = recorded_model(tmp_path, calibration={"folder": str(calib), "count": 4, "sha256": sha},
                           source=str(keras_file),
                           convert={"mode": "int8", "keep_float": ["seg_logits"], "calib_count": 4})
    r = CliRunner().invoke(app, ["compare", str(keras_file), str(model), "--data", str(calib),
                                 "--layers"])
    assert r.exit_code != 0 and "Traceback" not in r.output, r.output
    assert "converted with --keep-float seg_logits" in r.output
    assert "a conversion without --keep-float" in r.output
