"""The Pi's install, for real: a fresh venv with only `edgeseg` (no TensorFlow) runs the model.

deploy/install-pi.sh creates the venv (python -m venv) and pip-installs the work tree with its
declared runtime dependencies from PyPI, exactly as on the device; then `edgeseg run` and
`edgeseg bench` run the committed tiny int8 model on a video made here, and a bundle is
installed and started the way edgeseg.service starts it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tomllib

from edgeseg.device.bundle import BundleSettings, make_bundle, parse_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "deploy" / "install-pi.sh"
TINY = REPO / "tests" / "data" / "tiny_int8.tflite"

# Build outputs, caches and tests stay out of the copy that pip builds from.
COPY_IGNORE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                     ".venv", "venv", "tests", "runs", "edgeseg-demo",
                                     ".pytest_cache", ".ruff_cache", "*.keras", "*.tflite")
TIMINGS: dict[str, float] = {}
# The installed edgeseg, not a checkout that PYTHONPATH would put first.
INSTALLED_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
_SHOWN: set[str] = set()


def sh(*args: str | Path, timeout: float = 300, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, **kw)  # type: ignore[call-overload]


def timed(name: str, *args: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    t0 = time.perf_counter()
    r = sh(*args, **kw)
    TIMINGS[name] = time.perf_counter() - t0
    return r


def base_python() -> str:
    """Debian's python3 (as on Raspberry Pi OS) when it can make venvs, else this one."""
    deb = "/usr/bin/python3"
    if os.path.exists(deb) and sh(deb, "-c", "import ensurepip, venv").returncode == 0:
        return deb
    return sys.executable


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run install-pi.sh --from <copy of the work tree> --no-service into a temporary prefix."""
    root = tmp_path_factory.mktemp("runtime-install")
    src = root / "src"
    shutil.copytree(REPO, src, ignore=COPY_IGNORE)
    prefix = root / "prefix"
    r = timed("install (fresh venv + pip)", INSTALL, "--prefix", prefix, "--from", src,
              "--no-service", "--no-apt", "--picamera", "no", "--python", base_python(),
              timeout=900)
    assert r.returncode == 0, f"install-pi.sh failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return {"root": root, "src": src, "prefix": prefix, "bin": prefix / "venv" / "bin"}


def show_timings(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the timings not printed yet (shown even without -s)."""
    new = [k for k in TIMINGS if k not in _SHOWN]
    _SHOWN.update(new)
    with capsys.disabled():
        for k in new:
            print(f"\n  [runtime install] {k}: {TIMINGS[k]:.1f} s", end="")


def test_fresh_venv_has_the_runtime_and_no_tensorflow(installed: dict[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    py = installed["bin"] / "python"
    for module in ("tensorflow", "keras"):
        r = sh(py, "-c", f"import {module}")
        assert r.returncode != 0 and f"No module named '{module}'" in r.stderr, module
    names = {d["name"].lower() for d in json.loads(
        sh(py, "-m", "pip", "list", "--format", "json").stdout)}
    assert {"edgeseg", "ai-edge-litert", "numpy", "opencv-python-headless", "typer"} <= names
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "tf-keras", "torch"}
    r = sh(py, "-c", "import sys, edgeseg.runtime.segmenter, edgeseg.cli; "
           "print(sorted(m for m in sys.modules if m.split('.')[0] in "
           "('tensorflow', 'keras', 'matplotlib')))")
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr
    show_timings(capsys)


@pytest.fixture(scope="module")
def video(installed: dict[str, Path]) -> Path:
    """A short synthetic clip: a bright disc moving over a gradient."""
    import cv2

    path = installed["root"] / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    assert writer.isOpened()
    yy, xx = np.mgrid[0:120, 0:160]
    for i in range(12):
        frame = np.dstack([xx * 1.5, yy * 2.0, np.full_like(xx, 60)]).astype(np.uint8)
        cv2.circle(frame, (20 + 10 * i, 60), 25, (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    return path


def test_edgeseg_run_on_a_video(installed: dict[str, Path], video: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out, log = installed["root"] / "overlay.avi", installed["root"] / "frames.jsonl"
    r = timed("edgeseg run (8 frames)", installed["bin"] / "edgeseg", "run", TINY, "--source",
              video, "--no-display", "--max-frames", "8", "--threads", "2", "--save", out,
              "--json-log", log)
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.is_file() and out.stat().st_size > 0
    frames = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert 1 <= len(frames) <= 8, frames[:2]
    show_timings(capsys)


def test_edgeseg_bench(installed: dict[str, Path], video: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    r = timed("edgeseg bench (20 runs + pipeline)", installed["bin"] / "edgeseg", "bench", TINY,
              "--threads", "2", "--runs", "20", "--warmup", "2", "--pipeline", video, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    (res,) = json.loads(r.stdout)
    assert res["runtime"] == "ai-edge-litert" and res["runs"] >= 20, res
    assert 0 < res["min_ms"] <= res["mean_ms"] and res["pipeline"]["frames"] > 0, res
    with capsys.disabled():
        print(f"\n  [runtime install] bench: {res['runtime']} {res['runtime_version']}, "
              f"{res['delegate']}, invoke mean {res['mean_ms']:.3f} ms, "
              f"p90 {res['p90_ms']:.3f} ms, pipeline {res['pipeline']['fps']:.0f} FPS", end="")
    show_timings(capsys)


def test_bundle_installs_and_starts_like_the_service(installed: dict[str, Path], video: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    prefix = installed["prefix"]
    b = make_bundle(TINY, installed["root"] / "bundle", BundleSettings(threads=2, stream_port=0))
    r = timed("bundle install (venv reused)", b.path / "install-pi.sh", "--prefix", prefix,
              "--from", installed["src"], "--no-service", "--no-apt", "--picamera", "no")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reusing the venv" in r.stdout and (prefix / "models" / TINY.name).is_file()
    # What systemd does: the env file's variables, cwd = the prefix, then the wrapper.
    env = {**parse_env((prefix / "edgeseg.env").read_text()), "PATH": os.environ["PATH"],
           "EDGESEG_SOURCE": str(video), "EDGESEG_ARGS": "--max-frames 3",
           "EDGESEG_SAVE": "service.avi", "STATE_DIRECTORY": str(installed["root"])}
    r = timed("service wrapper run (3 frames)", prefix / "bin" / "edgeseg-service", "run",
              env=env, cwd=prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (f"{prefix}/venv/bin/edgeseg run models/{TINY.name} --no-display --reconnect forever "
            "--source") in r.stdout
    assert (installed["root"] / "service.avi").is_file()
    show_timings(capsys)


def test_second_install_changes_nothing(installed: dict[str, Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    prefix = installed["prefix"]
    args = (INSTALL, "--prefix", prefix, "--from", installed["src"], "--no-service", "--no-apt",
            "--picamera", "no")
    # Another test may have installed a bundle here: settle on this command's state first.
    assert sh(*args).returncode == 0
    kept = {p: p.stat().st_mtime_ns for p in (prefix / "edgeseg.service", prefix / "edgeseg.env",
                                              prefix / "bin" / "edgeseg-service")}
    r = timed("repeated install (idempotent)", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reusing the venv" in r.stdout and "keeping your" in r.stdout
    assert "==> writing" not in r.stdout and "creating a venv" not in r.stdout
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    show_timings(capsys)


def test_installed_edgeseg_can_bundle(installed: dict[str, Path]) -> None:
    root = installed["root"]
    model = root / "m" / "seg.tflite"
    model.parent.mkdir(exist_ok=True)
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(56))
    model.with_name("seg.tflite.json").write_text(json.dumps({"edgeseg": {"labels": ["a", "b"]}}))
    r = sh(installed["bin"] / "edgeseg", "bundle", model, "-o", root / "wheel-bundle",
           env=INSTALLED_ENV)
    if "deploy templates" in r.stderr:
        pytest.skip("the wheel does not ship deploy/ yet: pyproject.toml needs "
                    "[tool.setuptools.data-files] share/edgeseg/deploy (issue 6)")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (root / "wheel-bundle" / "install-pi.sh").is_file()
    # edgeseg is not on PyPI: the bundle carries a wheel packed from this (non-editable)
    # install, with the default calibration images inside.
    import zipfile

    names = zipfile.ZipFile(root / "wheel-bundle" / "wheels" /
                            "edgeseg-0.1.0-py3-none-any.whl").namelist()
    assert len([n for n in names if n.startswith("edgeseg/calibration/calib_")]) == 200
    assert "edgeseg-0.1.0.data/data/share/edgeseg/deploy/install-pi.sh" in names


def test_bundle_with_a_wheelhouse_installs_without_any_package_index(
        installed: dict[str, Path], tmp_path: Path) -> None:
    """The device has no internet: only the bundle's wheels/ (pip would fail on the dead index)."""
    house = tmp_path / "wheelhouse"
    # The runtime profile's own list, so a new dependency can't be left out here.
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    r = sh(installed["bin"] / "python", "-m", "pip", "download", "-q", "-d", house, *deps,
           timeout=600)
    if r.returncode:
        pytest.skip(f"pip download needs the package index: {r.stderr.strip()[-200:]}")
    model = TINY if TINY.is_file() else None
    if model is None:
        pytest.skip("needs the committed tiny model")
    bundle = tmp_path / "offline-bundle"
    r = sh(installed["bin"] / "edgeseg", "bundle", model, "-o", bundle, "--wheelhouse", house,
           env=INSTALLED_ENV)
    assert r.returncode == 0, r.stdout + r.stderr
    prefix = tmp_path / "offline-prefix"
    dead = {**INSTALLED_ENV, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
            "PIP_NO_CACHE_DIR": "1"}
    r = timed("offline install from the bundle", bundle / "install-pi.sh", "--prefix", prefix,
              "--no-service", "--no-apt", "--picamera", "no", "--python", base_python(),
              env=dead, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"offline from {bundle}/wheels" in r.stdout
    calib = list(prefix.glob("venv/lib/python*/site-packages/edgeseg/calibration/*.jpg"))
    assert len(calib) == 200
    r = sh(prefix / "venv" / "bin" / "edgeseg", "--version")
    assert r.returncode == 0, r.stderr
