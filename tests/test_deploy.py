"""deploy/: install script, service wrapper, systemd unit and env file (bundle: test_bundle.py)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.device.bundle import fill_env, parse_env

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
