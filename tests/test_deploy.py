"""deploy/: install script, service wrapper, systemd unit, env file, and edgeseg bundle."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.bundle import TEMPLATES, BundleSettings, fill_env, make_bundle, parse_env
from edgeseg.cli import app
from edgeseg.errors import EdgesegError

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
INSTALL = DEPLOY / "install-pi.sh"
WRAPPER = DEPLOY / "edgeseg-service.sh"
SCRIPTS = [INSTALL, WRAPPER, DEPLOY / "test-arm64-emulated.sh"]
runner = CliRunner()


def sh(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
       ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=cwd)


def unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    """Parse a systemd unit: section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None and "=" in line, f"stray line {line!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


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


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_are_executable(script: Path) -> None:
    assert sh("bash", "-n", script).returncode == 0
    assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} lost its executable bit"


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed (apt-get install shellcheck)")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script: Path) -> None:
    r = sh("shellcheck", "--severity=style", script)
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help_is_the_header_comment(script: Path) -> None:
    r = sh(script, "--help")
    assert r.returncode == 0 and r.stdout.strip()
    assert "set -euo" not in r.stdout and not r.stdout.startswith("!")


def test_install_dry_run_prints_every_step_and_changes_nothing(tmp_path: Path) -> None:
    prefix = tmp_path / "opt" / "edgeseg"
    r = sh(INSTALL, "--dry-run", "--coral", "--picamera", "yes", "--prefix", prefix,
           "--user", "edgeseg-test-user")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for step in ("coral-edgetpu-stable", "apt-get install -y --no-install-recommends",
                 "libedgetpu1-std", "udevadm control --reload-rules",
                 f"-m venv --system-site-packages {prefix}/venv",
                 "pip install --disable-pip-version-check --constraint", "useradd --system",
                 "usermod -aG video edgeseg-test-user", "systemctl enable edgeseg.service"):
        assert step in out, f"dry run does not show {step!r}:\n{out}"
    assert not prefix.exists() and not (tmp_path / "opt").exists()


@pytest.mark.parametrize("args, message", [
    (["--prefix", "relative/dir"], "absolute path"),
    (["--picamera", "maybe"], "use auto, yes or no"),
    (["--from", "/nonexistent/edgeseg"], "no such file"),
    (["--user", "Bad User"], "not a valid user name"),
    (["--bundle", "/"], "has no edgeseg.env"),
    (["--frobnicate"], "unknown option"),
])
def test_install_rejects_bad_options(args: list[str], message: str) -> None:
    r = sh(INSTALL, "--dry-run", *args)
    assert r.returncode != 0 and message in r.stderr, r.stderr


def test_install_says_what_to_apt_get_when_venv_is_missing(tmp_path: Path) -> None:
    # A python without ensurepip, as on Debian before `apt-get install python3-venv`.
    fake = tmp_path / "python3"
    fake.write_text('#!/bin/sh\ncase "$*" in *ensurepip*) exit 1;; esac\n'
                    f'exec {shutil.which("python3")} "$@"\n')
    fake.chmod(0o755)
    r = sh(INSTALL, "--no-apt", "--python", fake, "--prefix", tmp_path / "p", "--no-service")
    assert r.returncode == 1
    assert "missing: python3-venv; install with: sudo apt-get install python3-venv" in r.stderr
    assert not (tmp_path / "p").exists()


# --- the service wrapper, unit and env file ----------------------------------------------


def wrapper(args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "m.tflite").write_bytes(b"x")
    base = {"PATH": os.environ["PATH"], "EDGESEG_BIN": "/usr/bin/edgeseg-fake",
            "EDGESEG_MODEL": "models/m.tflite", **env}
    return sh(WRAPPER, args, env=base, cwd=tmp_path)


def test_wrapper_builds_the_run_command_from_the_template_env(tmp_path: Path) -> None:
    env = parse_env((DEPLOY / "edgeseg.env").read_text())
    env["EDGESEG_MODEL"] = "models/m.tflite"
    r = wrapper("print", tmp_path, **env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [
        "/usr/bin/edgeseg-fake", "run", "models/m.tflite", "--no-display", "--reconnect",
        "forever", "--camera", "0",
        "--threads", "4", "--stream", "8080", "--host", "127.0.0.1"]


def test_wrapper_optional_settings(tmp_path: Path) -> None:
    r = wrapper("print", tmp_path, EDGESEG_SOURCE="clip.mp4", EDGESEG_CAMERA="picam",
                EDGESEG_SAVE="out.mp4", STATE_DIRECTORY="/var/lib/edgeseg",
                EDGESEG_DELEGATE="edgetpu", EDGESEG_ARGS="--fallback  --max-frames 5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1:] == [
        "run", "models/m.tflite", "--no-display", "--reconnect", "forever", "--source", "clip.mp4",
        "--save", "/var/lib/edgeseg/out.mp4", "--delegate", "edgetpu",
        "--fallback", "--max-frames", "5"]


@pytest.mark.parametrize("command, env, message", [
    ("run", {"EDGESEG_MODEL": ""}, "EDGESEG_MODEL is not set"),
    ("run", {"EDGESEG_MODEL": "models/missing.tflite"}, "no such file"),
    ("wait-camera", {"EDGESEG_CAMERA": "usb"}, "use a V4L2 index"),
    ("restart", {}, "unknown command restart"),
])
def test_wrapper_errors(tmp_path: Path, command: str, env: dict[str, str], message: str) -> None:
    r = wrapper(command, tmp_path, **env)
    assert r.returncode == 1 and message in r.stderr, r.stderr


def test_wrapper_camera_wait_is_bounded(tmp_path: Path) -> None:
    r = wrapper("wait-camera", tmp_path, EDGESEG_CAMERA="/dev/video-none", EDGESEG_CAMERA_WAIT="1")
    assert r.returncode == 1 and "no /dev/video-none after 1s" in r.stderr
    assert wrapper("wait-camera", tmp_path, EDGESEG_CAMERA="/dev/null").returncode == 0
    assert wrapper("wait-camera", tmp_path, EDGESEG_SOURCE="clip.mp4").returncode == 0


def test_wrapper_uses_options_that_edgeseg_run_has() -> None:
    r = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output  # a broken `run --help` is a failure, not a skip
    body = WRAPPER.read_text().split("build_command() {", 1)[1].split("\n}\n", 1)[0]
    used = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", body))
    assert {"--no-display", "--camera", "--source", "--stream", "--save"} <= used
    for option in sorted(used):
        assert option in r.output, f"edgeseg-service.sh passes {option}, unknown to edgeseg run"


def test_service_unit_has_what_the_device_needs() -> None:
    unit = unit_sections((DEPLOY / "edgeseg.service").read_text())
    svc = unit["Service"]
    assert unit["Unit"]["Description"] and unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert svc["User"] == ["edgeseg"]
    assert svc["EnvironmentFile"] == ["/opt/edgeseg/edgeseg.env"]
    assert svc["ExecStartPre"] == ["/opt/edgeseg/bin/edgeseg-service wait-camera"]
    assert svc["ExecStart"] == ["/opt/edgeseg/bin/edgeseg-service run"]
    assert svc["Restart"] == ["on-failure"] and int(svc["RestartSec"][0]) > 0
    # edgeseg run sends READY=1 and WATCHDOG=1 (tests/test_stream_health.py): a hung
    # process is restarted too, within WatchdogSec.
    assert svc["Type"] == ["notify"] and svc["NotifyAccess"] == ["main"]
    assert 10 <= int(svc["WatchdogSec"][0]) <= 60
    assert svc["NoNewPrivileges"] == ["yes"] and svc["ProtectSystem"] == ["strict"]
    # Each of these narrows /dev to a list without /dev/video*: the camera would vanish.
    for key in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock"):
        assert key not in svc, f"{key}= hides the camera from the service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_rendered_service_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    prefix = tmp_path / "edgeseg"
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(WRAPPER, prefix / "bin" / "edgeseg-service")
    text = (DEPLOY / "edgeseg.service").read_text().replace("/opt/edgeseg", str(prefix))
    (tmp_path / "edgeseg.service").write_text(text)
    r = sh("systemd-analyze", "verify", tmp_path / "edgeseg.service")
    problems = [line for line in (r.stdout + r.stderr).splitlines() if "edgeseg" in line]
    assert r.returncode == 0 and not problems, problems


def test_env_template_and_fill() -> None:
    template = (DEPLOY / "edgeseg.env").read_text()
    env = parse_env(template)
    for key in ("EDGESEG_MODEL", "EDGESEG_CAMERA", "EDGESEG_THREADS", "EDGESEG_STREAM_PORT",
                "EDGESEG_SAVE", "EDGESEG_ARGS"):
        assert key in env
    filled = parse_env(fill_env(template, {"EDGESEG_SAVE": "my clips/out.mp4"}))
    assert filled["EDGESEG_SAVE"] == "my clips/out.mp4" and filled["EDGESEG_MODEL"] == env[
        "EDGESEG_MODEL"]
    with pytest.raises(ValueError, match="no EDGESEG_NOPE"):
        fill_env(template, {"EDGESEG_NOPE": "1"})


# --- edgeseg bundle ----------------------------------------------------------------------


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

    monkeypatch.setattr("edgeseg.bundle.shutil.copyfile", broken)
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
