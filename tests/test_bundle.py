"""edgeseg bundle: the folder copied to the device, and what --force may replace."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.device.bundle import TEMPLATES, BundleSettings, make_bundle, parse_env
from edgeseg.errors import EdgesegError

runner = CliRunner()


def sh(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
       ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd)


def fake_wheel(path: Path, member: str = "edgeseg/__init__.py") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, "")
    return path


def fake_model(path: Path, *, sidecar: dict | None = None, embed: dict | None = None) -> Path:
    """A file with a TFLite header (the bundle never parses the flatbuffer) and its sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(56))
    if embed is not None:  # the zip-appended-to-flatbuffer convention of edgeseg convert
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("edgeseg.json", json.dumps(embed))
            zf.writestr("labels.txt", "\n".join(embed["edgeseg"]["labels"]) + "\n")
    if sidecar is not None:
        path.with_name(path.name + ".json").write_text(json.dumps(sidecar))
    return path


def description(target: str = "cpu") -> dict:
    return {"edgeseg": {"n_classes": 3, "height": 64, "width": 96,
                        "labels": ["background", "person", "car"]},
            "tflite": {"mode": "int8", "head": "softmax", "target": target, "io": "uint8"}}


# --- the shell scripts -------------------------------------------------------------------


def test_bundle_cli_makes_the_device_folder(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "in" / "seg.tflite", sidecar=description())
    out = tmp_path / "bundle"
    r = runner.invoke(app, ["bundle", str(model), "-o", str(out), "--camera", "picam",
                            "--threads", "2", "--stream-port", "9000"])
    assert r.exit_code == 0, r.output
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == {*TEMPLATES, "README.md", "models/seg.tflite", "models/seg.tflite.json",
                     "models/labels.txt", "wheels/edgeseg-0.1.0-py3-none-any.whl"}
    env = parse_env((out / "edgeseg.env").read_text())
    assert (out / env["EDGESEG_MODEL"]).read_bytes() == model.read_bytes()
    assert (env["EDGESEG_CAMERA"], env["EDGESEG_THREADS"], env["EDGESEG_STREAM_PORT"]) == (
        "picam", "2", "9000")
    assert env["EDGESEG_DELEGATE"] == ""
    assert json.loads((out / "models/seg.tflite.json").read_text()) == description()
    assert (out / "models/labels.txt").read_text().split() == ["background", "person", "car"]
    assert os.access(out / "install-pi.sh", os.X_OK) and os.access(out / "edgeseg-service.sh",
                                                                    os.X_OK)
    assert "seg.tflite" in (out / "README.md").read_text()
    assert {p.name for p in tmp_path.iterdir()} == {"in", "bundle"}  # no temp folder left


def test_bundle_of_edgetpu_model_uses_the_delegate_and_embedded_description(
        tmp_path: Path) -> None:
    model = fake_model(tmp_path / "seg_edgetpu.tflite", embed=description("edgetpu"))
    b = make_bundle(model, tmp_path / "b", BundleSettings(stream_port=0))
    env = parse_env((b.path / "edgeseg.env").read_text())
    assert env["EDGESEG_DELEGATE"] == "edgetpu" and env["EDGESEG_STREAM_PORT"] == ""
    assert "embedded" in b.sidecar_source
    assert json.loads((b.path / "models/seg_edgetpu.tflite.json").read_text()) == description(
        "edgetpu")
    assert "--coral" in (b.path / "README.md").read_text()


def test_bundle_takes_a_third_party_model_described_by_its_tflite_metadata(
        tmp_path: Path) -> None:
    """Like MediaPipe's selfie model: standard TFLite metadata and labels.txt, no edgeseg.json.
    `edgeseg run` reads it through edgeseg.tflite.read_description; so does bundle."""
    import io

    data = (Path(__file__).parent / "data" / "tiny_int8.tflite").read_bytes()
    flat = data[:min(i.header_offset for i in zipfile.ZipFile(io.BytesIO(data)).infolist())]
    model = tmp_path / "selfie.tflite"
    model.write_bytes(flat)
    with zipfile.ZipFile(model, "a") as zf:
        zf.writestr("labels.txt", "bg\nperson\n")
    b = make_bundle(model, tmp_path / "b")
    assert b.sidecar_source == f"{model} (TFLite metadata)"
    assert sorted(p.name for p in (b.path / "models").iterdir()) == ["labels.txt", "selfie.tflite"]
    readme = (b.path / "README.md").read_text()
    assert "classes: bg, person." in readme and "reads its TFLite metadata" in readme


def test_bundle_of_a_compiled_model_takes_the_description_of_its_source(tmp_path: Path) -> None:
    fake_model(tmp_path / "seg.tflite", sidecar=description("edgetpu"))
    compiled = fake_model(tmp_path / "seg_edgetpu.tflite")  # what edgetpu_compiler writes
    wheel = tmp_path / "edgeseg-0.1.0-py3-none-any.whl"
    fake_wheel(wheel)
    b = make_bundle(compiled, tmp_path / "b", wheel=wheel)
    assert b.sidecar_source == str(tmp_path / "seg.tflite.json") and not b.notes
    assert (b.path / "wheels" / wheel.name).is_file()
    assert json.loads((b.path / "models/seg_edgetpu.tflite.json").read_text()) == description(
        "edgetpu")
    assert parse_env((b.path / "edgeseg.env").read_text())["EDGESEG_DELEGATE"] == "edgetpu"


def test_bundle_notes_an_edgetpu_model_that_was_not_compiled(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "seg.tflite", sidecar=description("edgetpu"))
    r = runner.invoke(app, ["bundle", str(model), "-o", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert "converted for the Edge TPU but not compiled" in " ".join(r.output.split())
    assert parse_env((tmp_path / "b/edgeseg.env").read_text())["EDGESEG_DELEGATE"] == ""


def test_bundle_install_script_finds_the_bundle(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "seg.tflite", sidecar=description())
    wheel = tmp_path / "edgeseg-0.1.0-py3-none-any.whl"
    fake_wheel(wheel)
    b = make_bundle(model, tmp_path / "b", wheel=wheel)
    r = sh(b.path / "install-pi.sh", "--dry-run", "--no-service", "--prefix", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    assert f"with the model and settings of the bundle in {b.path}" in r.stdout
    assert f"pip install --disable-pip-version-check {b.path}/wheels/{wheel.name}" in r.stdout
    assert f"{tmp_path}/p/models/seg.tflite" in r.stdout
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("setup, args, message", [
    ("none", [], "no such model file"),
    ("no-sidecar", [], "seg.tflite.json is missing"),
    ("not-tflite", [], "is not a .tflite model"),
    ("bad-sidecar", [], "is not valid JSON"),
    ("exists", [], "already exists; pass --force"),
    ("ok", ["--camera", "usb0"], "use a V4L2 index"),
    ("ok", ["--threads", "0"], "must be at least 1"),
    ("ok", ["--wheel", "nope.whl"], "no such .whl file"),
    ("fake-wheel", ["--wheel", "fake-1.0-py3-none-any.whl"], "not an edgeseg wheel"),
    ("junk-wheel", ["--wheel", "edgeseg-1.0-py3-none-any.whl"], "not a wheel (not a zip"),
    ("other-wheel", ["--wheel", "edgeseg-1.0-py3-none-any.whl"], "holds no edgeseg/__init__.py"),
])
def test_bundle_errors(tmp_path: Path, setup: str, args: list[str], message: str) -> None:
    model = tmp_path / "seg.tflite"
    if setup != "none":
        fake_model(model, sidecar=None if setup == "no-sidecar" else description())
    if setup == "not-tflite":
        model.write_bytes(b"PK\x03\x04 not a flatbuffer")
    if setup == "bad-sidecar":
        model.with_name("seg.tflite.json").write_text("{oops")
    if setup == "exists":
        (tmp_path / "out").mkdir()
    if setup.endswith("-wheel"):
        fake_model(model, sidecar=description())
        whl = tmp_path / args[1]
        args = [args[0], str(whl)]
        if setup == "other-wheel":
            fake_wheel(whl, "other/__init__.py")
        else:
            whl.write_bytes(b"junk")
    r = runner.invoke(app, ["bundle", str(model), "-o", str(tmp_path / "out"), *args])
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output


def test_bundle_force_replaces_and_failure_leaves_nothing(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    model = fake_model(tmp_path / "seg.tflite", sidecar=description())
    out = tmp_path / "out"
    make_bundle(model, out, BundleSettings(threads=1))
    make_bundle(model, out, BundleSettings(threads=3), force=True)
    assert parse_env((out / "edgeseg.env").read_text())["EDGESEG_THREADS"] == "3"

    def broken(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("edgeseg.device.bundle.shutil.copyfile", broken)
    with pytest.raises(OSError, match="disk full"):
        make_bundle(model, out, BundleSettings(threads=4), force=True)
    assert parse_env((out / "edgeseg.env").read_text())["EDGESEG_THREADS"] == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "seg.tflite", "seg.tflite.json"]
    with pytest.raises(EdgesegError, match="already exists"):
        make_bundle(model, out)


@pytest.mark.parametrize("case, message", [
    ("holds-model", "holds the input model"),
    ("user-files", "is not a bundle edgeseg wrote"),
    ("dot", "holds the input model"),
])
def test_bundle_force_never_deletes_user_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               case: str, message: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mydata.txt").write_text("precious")
    model = fake_model((out if case != "user-files" else tmp_path) / "seg.tflite",
                       sidecar=description())
    target = str(out)
    if case == "dot":
        monkeypatch.chdir(out)
        target = "."
    r = runner.invoke(app, ["bundle", str(model), "-o", target, "--no-wheel", "--force"])
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert message in text, r.output
    assert "Traceback" not in r.output and "pass --force" not in text
    assert (out / "mydata.txt").read_text() == "precious" and model.is_file()


def test_bundle_force_replaces_only_a_bundle_with_nothing_added(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "seg.tflite", sidecar=description())
    out = tmp_path / "out"
    make_bundle(model, out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(EdgesegError, match="is not a bundle edgeseg wrote"):
        make_bundle(model, out, force=True)
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    make_bundle(model, out, BundleSettings(threads=2), force=True)
    assert parse_env((out / "edgeseg.env").read_text())["EDGESEG_THREADS"] == "2"
    with pytest.raises(EdgesegError, match="holds the input model"):
        make_bundle(out / "models" / "seg.tflite", out, force=True)
    assert (out / "models" / "seg.tflite").is_file()
