"""--delegate gpu through LiteRT's GPU accelerator: on SwiftShader's Vulkan, and without a GPU.

The accelerator looks for a GPU adapter once per process and keeps the answer, so each
case runs ``edgeseg`` in its own process with its own ``VK_ICD_FILENAMES``.
SwiftShader is the software Vulkan driver of Debian's ``chromium`` package (.ci/run
installs it); Mesa's lavapipe is found but refused (it lacks a feature Dawn requires).
"""

from __future__ import annotations

import ctypes.util
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tflite_fixtures

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_int8.tflite"
SWIFTSHADER = Path("/usr/lib/chromium/vk_swiftshader_icd.json")
LAVAPIPE = sorted(glob.glob("/usr/share/vulkan/icd.d/lvp_icd.*.json"))


def edgeseg(args: list[str], icd: Path | str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``edgeseg ARGS`` in a fresh process that sees only the Vulkan driver ``icd``."""
    env = {**os.environ, "VK_ICD_FILENAMES": str(icd), "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", "from edgeseg.cli import main; main()", *args],
                          env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tflite_fixtures.build_cached(tmp_path_factory)


def needs_swiftshader() -> None:
    if not SWIFTSHADER.exists():
        pytest.skip(f"no SwiftShader Vulkan driver ({SWIFTSHADER}): apt-get install chromium")
    if ctypes.util.find_library("vulkan") is None:
        pytest.skip("no Vulkan loader (libvulkan.so.1): apt-get install libvulkan1")


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def test_no_vulkan_driver_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    r = edgeseg(["bench", str(TINY), "--delegate", "gpu", "--runs", "3"], tmp_path / "none.json")
    assert r.returncode == 2, r.stderr
    out = lines(r.stdout + r.stderr)
    assert len(out) == 1, out  # none of LiteRT's, absl's or Dawn's log lines leak
    assert out[0].startswith("error: --delegate gpu: no GPU adapter: the Vulkan loader "), out
    assert "found no driver" in out[0] or "libvulkan.so.1 is not installed" in out[0]
    assert f"VK_ICD_FILENAMES={tmp_path / 'none.json'}" in out[0]
    assert "vulkaninfo" in out[0] and out[0].endswith("or pass --fallback to run on the CPU.")


def test_fallback_runs_on_the_cpu_and_says_so(tmp_path: Path) -> None:
    r = edgeseg(["bench", str(TINY), "--delegate", "gpu", "--fallback", "--runs", "3", "--json"],
                tmp_path / "none.json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)[0]  # stdout is the JSON alone: no native log line on it
    assert result["delegate"] == "xnnpack" and result["accelerator"] is None
    warnings = [ln for ln in lines(r.stderr) if ln.startswith("warning:")]
    assert len(warnings) == 1, r.stderr
    assert "no GPU adapter" in warnings[0]
    assert warnings[0].endswith("Falling back to the CPU (XNNPACK), as --fallback asks.")


@pytest.mark.skipif(not LAVAPIPE, reason="Mesa's lavapipe is not installed "
                                         "(apt-get install mesa-vulkan-drivers)")
def test_lavapipe_is_refused_with_the_missing_feature_named() -> None:
    r = edgeseg(["inspect", str(TINY), "--json"], LAVAPIPE[0])
    assert r.returncode == 0, r.stderr
    gpu = json.loads(r.stdout)["gpu_accelerator"]
    assert gpu["runs"] is False and gpu["fully_accelerated"] is None
    assert "no GPU adapter: the Vulkan driver lacks shaderUniform*ArrayDynamicIndexing" in gpu["line"]


def test_inspect_reports_what_the_accelerator_says() -> None:
    needs_swiftshader()
    r = edgeseg(["inspect", str(TINY), "--json"], SWIFTSHADER)
    assert r.returncode == 0, r.stderr
    gpu = json.loads(r.stdout)["gpu_accelerator"]
    assert gpu["runs"] is True and gpu["fully_accelerated"] is True, gpu
    assert gpu["adapter"].startswith("SwiftShader Device"), gpu
    r = edgeseg(["bench", str(TINY), "--delegate", "gpu", "--runs", "3"], SWIFTSHADER)
    assert r.returncode == 0, r.stderr
    assert "tiny_int8.tflite: LiteRT GPU accelerator (WebGPU) on SwiftShader Device" in r.stdout
    assert not [ln for ln in lines(r.stderr) if "INFO" in ln or "WARNING" in ln], r.stderr


def test_run_says_which_accelerator_ran(tmp_path: Path) -> None:
    needs_swiftshader()
    import cv2
    import numpy as np

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((48, 64, 3), 60 * i, np.uint8))
    r = edgeseg(["run", str(TINY), "--source", str(frames), "--no-display", "--max-frames", "3",
                 "--delegate", "gpu"], SWIFTSHADER)
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout + r.stderr)
    assert "LiteRT GPU accelerator (WebGPU) on SwiftShader Device (Subzero), backend=Vulkan, " \
           "adapterType=CPU / Software: fully accelerated" in out, out
    assert "reached --max-frames: 3 frames" in r.stdout + r.stderr
    assert not [ln for ln in out if ln.startswith(("INFO", "WARNING", "I0000", "E0000"))], out


def test_the_split_is_read_from_the_accelerators_log() -> None:
    from edgeseg.runtime.accelerator import GpuStatus, _split

    # Verbatim from ai-edge-litert 2.3 compiling `convert --target gpu --head argmax`.
    log = ("ERROR: Following operations are not supported by GPU delegate:\n"
           "ARG_MAX: Tensor type(INT64) is not supported. mobilenet_segnet_1/seg_argmax_1/ArgMax\n"
           "CAST: Tensor type(INT64) is not supported. mobilenet_segnet_1/seg_argmax_1/ArgMax\n"
           "DEQUANTIZE: \n"
           "17 operations will run on the GPU, and the remaining 21 operations will run on the "
           "CPU.\n")
    split = _split(log)
    assert split == (17, 21, ("ARG_MAX (Tensor type(INT64) is not supported)",
                              "CAST (Tensor type(INT64) is not supported)", "DEQUANTIZE"))
    assert GpuStatus("X", False, *split).line().endswith(
        "X: not fully accelerated, 21 of 38 ops run on the CPU (XNNPACK): ARG_MAX (Tensor "
        "type(INT64) is not supported), CAST (Tensor type(INT64) is not supported), DEQUANTIZE")
    assert _split("no split logged") == (None, None, ())


def test_a_partly_accelerated_model_names_the_ops_left_to_the_cpu(models: Path) -> None:
    needs_swiftshader()
    # In-graph argmax: TensorFlow's ARG_MAX writes int64, which the GPU has no type for.
    r = edgeseg(["bench", str(models / "float_argmax.tflite"), "--delegate", "gpu", "--runs", "3",
                 "--json"], SWIFTSHADER)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)[0]
    assert (result["delegated_nodes"], result["total_nodes"]) == (2, 5), result
    assert result["accelerator"].endswith(
        ": not fully accelerated, 3 of 5 ops run on the CPU (XNNPACK): ARG_MAX (Tensor "
        "type(INT64) is not supported), CAST (Tensor type(INT64) is not supported)"), result


GPU_VS_CPU = """
import json, sys
from edgeseg.verify.compare import compare
out = {}
for name, path in json.loads(sys.argv[1]).items():
    rep = compare(path, path, sys.argv[2], limit=8, delegate="gpu")
    out[name] = {"agreement": rep.pixel_agreement, "images": rep.images,
                 "accelerator": rep.accelerator}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_trained_model_on_the_gpu_matches_the_cpu(converted: dict[str, Path], trained,
                                                  synth_data: Path) -> None:
    """The trained tiny model, as each file convert writes, on the GPU accelerator vs XNNPACK,
    both through Segmenter (``compare(m, m, delegate="gpu")``: the reference stays on the CPU),
    in one process that sees only SwiftShader. 8 images: SwiftShader emulates the GPU on
    the CPU, and a loaded machine starves its worker threads (a 64×64 invoke took 5 s here
    at load average 25)."""
    needs_swiftshader()
    from edgeseg.convert.quantize import ConvertConfig, convert

    files = {k: str(v) for k, v in converted.items()}
    files["target_gpu"] = str(convert(trained[0], converted["float32"].with_name("tiny_gpu.tflite"),
                                      ConvertConfig(target="gpu"), log=lambda s: None).path)
    env = {**os.environ, "VK_ICD_FILENAMES": str(SWIFTSHADER),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", GPU_VS_CPU, json.dumps(files),
                        str(synth_data / "val")], env=env, capture_output=True, text=True,
                       timeout=1800, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    reps = json.loads(r.stdout)
    agreement = {k: round(v["agreement"], 6) for k, v in reps.items()}
    print(f"\nGPU (SwiftShader) vs CPU pixel agreement on 8 images: {agreement}")
    for name, rep in reps.items():  # the adapter is named for every model, not the first only
        assert rep["images"] == 8
        assert rep["accelerator"].startswith("LiteRT GPU accelerator (WebGPU) on SwiftShader"), rep
        assert rep["accelerator"].endswith(": fully accelerated"), (name, rep)
    for name in ("float32", "float16", "target_gpu"):
        assert agreement[name] >= 0.999, agreement
    # The int8 file runs dequantized on the GPU, in float: close to the CPU's int8
    # kernels, not equal (99.991 % on all 32 images here).
    assert agreement["int8"] >= 0.99, agreement


# Mesa's LLVM-based Vulkan drivers (lavapipe, RADV) clash with TensorFlow's own LLVM when they
# load after it: the process aborted at exit (free(): invalid pointer, SIGABRT) after its work.
def _llvm_drivers() -> list[Path]:
    from edgeseg.runtime.vulkan_drivers import drivers_without_llvm

    return drivers_without_llvm({})[1]


NO_LLVM_DRIVER = ("no LLVM-based Vulkan driver is installed (Mesa's lavapipe or RADV: apt-get "
                  "install mesa-vulkan-drivers), so nothing here clashes with TensorFlow's LLVM")


def test_the_accelerator_after_tensorflow_leaves_llvm_drivers_out_and_exits_cleanly() -> None:
    llvm = _llvm_drivers()
    if not llvm:
        pytest.skip(NO_LLVM_DRIVER)
    script = ("import sys, tensorflow\n"
              "from edgeseg.runtime.accelerator import probe\n"
              f"print(probe({str(TINY)!r})['line'])\n")
    env = {k: v for k, v in os.environ.items() if k not in ("VK_ICD_FILENAMES", "VK_DRIVER_FILES")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    assert r.returncode == 0, (r.returncode, r.stderr[-3000:])  # was -6 (SIGABRT) at exit
    for m in llvm:
        assert m.stem in r.stdout, r.stdout


def test_llvm_drivers_are_found_by_what_their_library_links(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeseg.errors import EdgesegError
    from edgeseg.runtime.vulkan_drivers import keep_llvm_drivers_away_from_tensorflow

    first, second = tmp_path / "etc", tmp_path / "share"
    for d in (first, second):
        d.mkdir()

    def driver(d: Path, name: str, needed: bytes) -> Path:
        (d / f"lib{name}.so").write_bytes(b"\x7fELF" + needed + b"\0libc.so.6\0")
        (d / f"{name}.json").write_text(json.dumps({"ICD": {"library_path": f"./lib{name}.so"}}))
        return d / f"{name}.json"

    intel = driver(second, "intel", b"libexpat.so.1")
    driver(second, "lvp", b"libLLVM-15.so.1")
    driver(second, "radeon", b"libLLVM-15.so.1")
    driver(first, "radeon", b"libdrm.so.2")  # an earlier directory's manifest wins, as in the loader
    (second / "broken.json").write_text("{not json")
    monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow", object()))
    env: dict[str, str] = {}
    assert keep_llvm_drivers_away_from_tensorflow(env, [first, second]) == ["lvp"]
    assert env["VK_ICD_FILENAMES"].split(os.pathsep) == [str(first / "radeon.json"), str(intel)]
    # The user's own choice of drivers is left alone.
    env = {"VK_ICD_FILENAMES": "/mine.json"}
    assert keep_llvm_drivers_away_from_tensorflow(env, [first, second]) == []
    assert env == {"VK_ICD_FILENAMES": "/mine.json"}
    # Nothing but LLVM drivers: one line saying why, instead of a crash at exit.
    (first / "radeon.json").unlink()
    (second / "intel.json").unlink()
    with pytest.raises(EdgesegError, match=r"every Vulkan driver here \(lvp, radeon\) is built on "
                                           r"LLVM.*--fallback"):
        keep_llvm_drivers_away_from_tensorflow({}, [first, second])


@pytest.mark.slow
def test_compare_with_the_gpu_delegate_exits_cleanly(converted: dict[str, Path], trained,
                                                     synth_data: Path) -> None:
    """`compare model.keras model.tflite --delegate gpu` loads TensorFlow (the .keras) and
    the Vulkan drivers (the accelerator) in one process; with an LLVM-based driver it used to
    end in SIGABRT after printing its results."""
    if not _llvm_drivers():
        pytest.skip(NO_LLVM_DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("VK_ICD_FILENAMES", "VK_DRIVER_FILES")}
    env.update(COLUMNS="200", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", "from edgeseg.cli import main; main()", "compare",
                        str(trained[0]), str(converted["int8"]), "--data", str(synth_data / "val"),
                        "--delegate", "gpu", "--fallback"],
                       env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, (r.returncode, r.stderr[-3000:])
    assert "pixel agreement" in r.stdout, r.stdout
    for crash in ("Aborted", "terminate called", "free(): invalid pointer"):
        assert crash not in r.stderr, r.stderr
