"""The bundle ships edgeseg's own wheel (with the calibration images) and, given a wheelhouse,
installs without a package index; the "Next:" command is one line."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.device.own_wheel import own_wheel, repack_installed

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()
SKIP_ON_REPACK = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return own_wheel(tmp_path_factory.mktemp("wheel"))


def fake_model(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(56))
    path.with_name(path.name + ".json").write_text(json.dumps(
        {"edgeseg": {"labels": ["background", "person"], "height": 64, "width": 64},
         "tflite": {"mode": "int8", "target": "cpu"}}))
    return path


def test_wheel_carries_the_calibration_images_and_deploy_files(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith("edgeseg/calibration/"))
    on_disk = sorted(p.name for p in (REPO / "calibration").iterdir())
    assert [n.rsplit("/", 1)[1] for n in shipped] == on_disk
    assert len([n for n in shipped if n.endswith(".jpg")]) == 200
    assert "edgeseg-0.1.0.data/data/share/edgeseg/deploy/install-pi.sh" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_default_calibration_set_resolves_inside_the_package() -> None:
    from edgeseg.convert.calibration import DEFAULT_DIR, load_calibration

    assert DEFAULT_DIR == REPO / "calibration"
    calib = load_calibration(None, 50, seed=0, warn=lambda m: None)
    assert len(calib.files) == 50 and all(f.parent == DEFAULT_DIR for f in calib.files)


def test_installed_files_pack_back_into_the_same_wheel(wheel: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    # --ignore-installed: with --prefix alone pip uninstalls the edgeseg of the running
    # environment first (pypa/pip#8438), which would break the venv the tests run in.
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                        "--ignore-installed", "--disable-pip-version-check", "--prefix",
                        str(prefix), str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = next(prefix.glob("lib/python*/site-packages/edgeseg-0.1.0.dist-info"))
    again = repack_installed(tmp_path / "out", metadata.PathDistribution(info), prefix)
    assert again.name == wheel.name

    def contents(whl: Path) -> dict[str, bytes]:
        with zipfile.ZipFile(whl) as zf:
            return {n: zf.read(n) for n in zf.namelist()
                    if n.rsplit("/", 1)[-1] not in SKIP_ON_REPACK}

    assert contents(again) == contents(wheel)
    record = zipfile.ZipFile(again).read("edgeseg-0.1.0.dist-info/RECORD").decode()
    assert "edgeseg/calibration/calib_00199.jpg,sha256=" in record


def test_bundle_ships_its_own_wheel_by_default_and_says_next_on_one_line(
        tmp_path: Path) -> None:
    model = fake_model(tmp_path / "in" / "seg.tflite")
    out = tmp_path / "a very long folder name to make the command wider than eighty columns" / "b"
    r = runner.invoke(app, ["bundle", str(model), "-o", str(out)], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert (out / "wheels" / "edgeseg-0.1.0-py3-none-any.whl").is_file()
    nxt = [ln for ln in r.output.splitlines() if ln.startswith("Next: ")]
    assert len(nxt) == 1 and len(nxt[0]) > 80
    assert nxt[0] == (f"Next: scp -r '{out}' pi@raspberrypi.local: && ssh pi@raspberrypi.local "
                      "'cd b && sudo ./install-pi.sh'")
    assert "no --wheelhouse" in r.output  # the download from PyPI is said


def test_bundle_no_wheel_and_wheelhouse_options(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "in" / "seg.tflite")
    r = runner.invoke(app, ["bundle", str(model), "-o", str(tmp_path / "nw"), "--no-wheel"],
                      env={"COLUMNS": "300"})
    assert r.exit_code == 0 and not (tmp_path / "nw" / "wheels").exists()
    assert "install edgeseg from the package index" in r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(app, ["bundle", str(model), "-o", str(tmp_path / "x"), "--no-wheel",
                            "--wheelhouse", str(empty)], env={"COLUMNS": "300"})
    assert r.exit_code == 2 and f"--wheelhouse {empty}: no .whl files there" in r.output
    house = tmp_path / "house"
    house.mkdir()
    (house / "numpy-2.0.0-cp311-cp311-manylinux_2_17_aarch64.whl").write_bytes(b"PK")
    with zipfile.ZipFile(house / "edgeseg-0.0.1-py3-none-any.whl", "w") as zf:
        zf.writestr("edgeseg/__init__.py", "")  # stale: ours is shipped
    r = runner.invoke(app, ["bundle", str(model), "-o", str(tmp_path / "off"), "--wheel",
                            str(house / "edgeseg-0.0.1-py3-none-any.whl"), "--wheelhouse",
                            str(house)], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "off" / "wheels").iterdir()) == [
        "edgeseg-0.0.1-py3-none-any.whl", "numpy-2.0.0-cp311-cp311-manylinux_2_17_aarch64.whl"]
    assert "no --wheelhouse" not in r.output
    # the bundle's installer then installs from wheels/ alone
    dry = subprocess.run([str(tmp_path / "off" / "install-pi.sh"), "--dry-run", "--no-service",
                          "--no-apt", "--picamera", "no", "--prefix", str(tmp_path / "p")],
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    wheels = tmp_path / "off" / "wheels"
    assert (f"--no-index --find-links {wheels} {wheels}/edgeseg-0.0.1-py3-none-any.whl"
            in dry.stdout), dry.stdout
    assert f"offline from {wheels}" in dry.stdout


def test_demo_next_commands_are_one_line_each_at_80_columns(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    import edgeseg.demo
    import edgeseg.demo.report

    out = tmp_path / "a demo folder with a long name, well past the eighty-column mark"
    int8 = out / "model_int8.tflite"
    summary = {"report": [str(out / "report.md"), str(out / "report.html")],
               "run": {"video": str(out / "run_int8.mp4")}, "tflite": {"int8": str(int8)}}
    monkeypatch.setattr(edgeseg.demo, "run_demo", lambda cfg, log, progress=None: summary)
    monkeypatch.setattr(edgeseg.demo.report, "summary_rows", lambda s: [])
    r = runner.invoke(app, ["demo", "--out", str(out)], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    nxt = lines[lines.index("next:") + 1:]
    q = f"'{int8}'"
    assert nxt == [f"  edgeseg run {q} --camera 0", f"  edgeseg inspect {q}",
                   f"  edgeseg convert '{out / 'model.keras'}' --target edgetpu -o "
                   f"'{out / 'model_edgetpu.tflite'}'",
                   f"  edgeseg bundle {q} -o '{out / 'pi-bundle'}'"]


def test_demo_table_explains_its_asterisk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgeseg.demo
    import edgeseg.demo.report

    out = tmp_path / "d"
    summary = {"report": [str(out / "report.md"), str(out / "report.html")],
               "run": {"video": str(out / "run_int8.mp4")}, "tflite": {"int8": str(out / "m.tflite")}}
    monkeypatch.setattr(edgeseg.demo, "run_demo", lambda cfg, log, progress=None: summary)
    monkeypatch.setattr(edgeseg.demo.report, "summary_rows",
                        lambda s: [["TFLite float32", "0.45 MB", "1.1", "1.00×", "0.693*", "—"]])
    r = runner.invoke(app, ["demo", "--out", str(out)], env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    assert "0.693*" in r.output
    assert "*float32 .tflite gives the Keras model's mIoU" in r.output
