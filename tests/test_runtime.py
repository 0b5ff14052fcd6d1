"""edgeseg.runtime: TF-free imports, metadata, every tensor layout, delegates, fast paths."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tflite_fixtures

from edgeseg.errors import EdgesegError
from edgeseg.runtime import Segmenter, adapters, backend
from edgeseg.runtime.interpreter import delegated_nodes, make_interpreter

RUNTIME = Path(__file__).resolve().parent.parent / "edgeseg" / "runtime"
CV2_MODULES = {"capture", "overlay", "stream", "sinks", "segmenter", "components",
               "instance_draw"}
TF_FREE_EDGESEG = {"edgeseg.errors", "edgeseg.atomic", "edgeseg.config", "edgeseg.preprocess",
                   "edgeseg.data.readers", "edgeseg.data.instances", "edgeseg.labels", "edgeseg.sizes",
                   "edgeseg.tflite", "edgeseg.tflite.description", "edgeseg.tflite.flatbuffer",
                   "edgeseg.tflite.metadata"}
SCORE_MODELS = ["float_softmax", "float_logits", "float_flat", "float_argmax", "int8_softmax",
                "int8_embedded", "int8_int8io", "int8_flat"]
SIGMOID_MODELS = ["float_sigmoid", "int8_sigmoid"]


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tflite_fixtures.build_cached(tmp_path_factory)


def colour_frame(h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """BGR frame of four vertical bands (red, green, blue, black) and the expected classes."""
    frame = np.zeros((h, w, 3), np.uint8)
    expected = np.zeros((h, w), np.uint8)
    bands = [((0, 0, 255), 1), ((0, 255, 0), 2), ((255, 0, 0), 3), ((0, 0, 0), 0)]
    for i, (bgr, cls) in enumerate(bands):
        cols = slice(i * w // 4, (i + 1) * w // 4)
        frame[:, cols], expected[:, cols] = bgr, cls
    return frame, expected


def agreement(mask: np.ndarray, expected: np.ndarray) -> float:
    return float((mask == expected).mean())


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_runtime_sources_never_import_tensorflow_and_keep_opencv_to_image_modules() -> None:
    files = sorted(RUNTIME.glob("*.py"))
    assert len(files) >= 8
    for path in files:
        names = imports_of(path)
        roots = {n.split(".")[0] for n in names}
        assert not roots & {"tensorflow", "keras", "tf_keras"}, path.name
        if path.stem not in CV2_MODULES:
            assert "cv2" not in roots, f"{path.name} imports OpenCV"
        for name in names:
            if name.startswith("edgeseg") and not name.startswith("edgeseg.runtime"):
                assert name in TF_FREE_EDGESEG, f"{path.name} imports {name}"
    assert imports_of(RUNTIME / "adapters.py") <= {"__future__", "typing", "numpy",
                                                    "edgeseg.errors"}


_NO_TF = """
import importlib.abc, sys
class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(f"{name} is blocked: the runtime must not need it")
sys.meta_path.insert(0, NoTensorFlow())
"""


def test_inference_and_edgeseg_run_work_with_tensorflow_unimportable(models: Path,
                                                                     tmp_path: Path) -> None:
    video = tflite_fixtures.video(tmp_path / "v.mp4", 4)
    script = _NO_TF + f"""
import numpy as np
from edgeseg.runtime import Segmenter
seg = Segmenter({str(models / "int8_softmax.tflite")!r})
frame = np.zeros((48, 64, 3), np.uint8); frame[:, :32] = (0, 0, 255)
mask = seg.segment(frame).mask
assert mask.shape == (48, 64) and mask[24, 8] == 1 and mask[24, 56] == 0, mask
from edgeseg.cli import main
sys.argv = ["edgeseg", "run", {str(models / "float_softmax.tflite")!r}, "--source",
            {str(video)!r}, "--no-display", "--max-frames", "2",
            "--save", {str(tmp_path / "o.avi")!r}]
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
assert not bad, bad
print("OK without tensorflow")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK without tensorflow" in r.stdout
    assert (tmp_path / "o.avi").is_file()


def test_backend_is_named() -> None:
    be = backend()
    assert be.name in ("ai-edge-litert", "tflite-runtime") and be.version


def test_tflite_runtime_is_the_alternative_and_missing_both_is_clear(
        models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    real, before = backend().module, backend().name
    fake = types.ModuleType("tflite_runtime")
    fake.__version__ = "2.14.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    monkeypatch.setitem(sys.modules, "tflite_runtime", fake)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", real)
    backend.cache_clear()
    try:
        assert backend()[:2] == ("tflite-runtime", "2.14.0")
        frame, expected = colour_frame()
        assert agreement(Segmenter(models / "int8_softmax.tflite").segment(frame).mask,
                         expected) > 0.95
        monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
        backend.cache_clear()
        with pytest.raises(EdgesegError, match="pip install ai-edge-litert"):
            backend()
    finally:
        monkeypatch.undo()
        backend.cache_clear()
    assert backend().name == before


@pytest.mark.parametrize("name", SCORE_MODELS)
def test_every_layout_gives_the_known_mask_at_frame_size(models: Path, name: str) -> None:
    seg = Segmenter(models / f"{name}.tflite")
    frame, expected = colour_frame()
    result = seg.segment(frame)
    assert result.mask.shape == frame.shape[:2] and result.mask.dtype == np.uint8
    assert agreement(result.mask, expected) > 0.95, (name, seg.describe())
    assert seg.n_classes == 4
    assert all(t >= 0 for t in result.timings) and result.timings.total_ms > 0


@pytest.mark.parametrize("name", SIGMOID_MODELS)
def test_single_channel_sigmoid_is_thresholded_into_two_classes(models: Path, name: str) -> None:
    seg = Segmenter(models / f"{name}.tflite", confidence=True)
    frame, expected = colour_frame()
    result = seg.segment(frame)
    assert seg.layout.kind == "binary" and seg.labels == ("background", "red")
    assert agreement(result.mask, (expected == 1).astype(np.uint8)) > 0.95
    assert result.confidence is not None and result.confidence.min() >= 0.5 - 1e-6


def test_rgb_frames_and_odd_sizes(models: Path) -> None:
    seg_bgr = Segmenter(models / "int8_softmax.tflite")
    seg_rgb = Segmenter(models / "int8_softmax.tflite", rgb=True)
    frame, expected = colour_frame(37, 53)
    swapped = expected.copy()
    swapped[expected == 1], swapped[expected == 3] = 3, 1  # red and blue trade places
    assert agreement(seg_bgr.segment(frame).mask, expected) > 0.9
    assert agreement(seg_rgb.segment(frame).mask, swapped) > 0.9
    for h, w in ((64, 64), (480, 640), (200, 100)):
        assert seg_bgr.segment(colour_frame(h, w)[0]).mask.shape == (h, w)
    with pytest.raises(EdgesegError, match="H×W×3 uint8"):
        seg_bgr.segment(np.zeros((10, 10), np.uint8))


def test_confidence_of_softmax_and_logits(models: Path) -> None:
    frame, _ = colour_frame()
    for name in ("float_softmax", "float_logits", "int8_softmax"):
        conf = Segmenter(models / f"{name}.tflite", confidence=True).segment(frame).confidence
        assert conf is not None and conf.shape == frame.shape[:2] and conf.dtype == np.float32
        assert 0.2 < conf.min() and conf.max() <= 1.0 + 1e-6, name
        assert conf[:, :10].mean() > 0.9, name  # a saturated red band is a confident class 1
    assert Segmenter(models / "float_softmax.tflite").segment(frame).confidence is None


def test_metadata_sidecar_then_embedded_then_defaults(models: Path, tmp_path: Path) -> None:
    embedded = Segmenter(models / "int8_embedded.tflite")
    assert embedded.metadata.source == "embedded" and embedded.labels == tflite_fixtures.LABELS
    copy = tmp_path / "int8_embedded.tflite"
    shutil.copy(models / "int8_embedded.tflite", copy)
    meta = json.loads((models / "int8_softmax.tflite.json").read_text())
    meta["edgeseg"]["labels"] = ["bg", "r", "g", "b"]
    copy.with_name(copy.name + ".json").write_text(json.dumps(meta))
    side = Segmenter(copy)
    assert side.metadata.source == "sidecar" and side.labels == ("bg", "r", "g", "b")
    flat = Segmenter(models / "int8_flat.tflite")
    assert flat.metadata.source == "defaults" and flat.labels[0] == "class0"
    assert flat.feeds_pixels  # uint8 input, scale 1/128, zp 128: the pixel is the tensor value
    meta["edgeseg"]["preprocessing"]["height"] = 128
    copy.with_name(copy.name + ".json").write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning,
                      match=r"describes a 128×64 \(H×W\) input but the model takes 64×64 \(H×W\)"):
        Segmenter(copy)
    copy.with_name(copy.name + ".json").write_text("{not json")
    with pytest.raises(EdgesegError, match="not valid JSON"):
        Segmenter(copy)


def test_int8_input_goes_through_the_lookup_table(models: Path) -> None:
    seg = Segmenter(models / "int8_int8io.tflite")
    assert not seg.feeds_pixels and seg.input["dtype"] == np.int8
    rng = np.random.default_rng(66)
    frame = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    seg.segment(frame)
    fed = seg.interpreter.get_tensor(seg.input["index"])[0]
    scale, zp = adapters.quantization(seg.input)
    want = np.clip(np.round(((frame[..., ::-1] - 128.0) / 128.0) / scale + zp), -128, 127)
    assert np.abs(fed.astype(int) - want.astype(int)).max() <= 1


def test_pixel_table_identity_only_when_exact() -> None:
    from edgeseg.preprocess import Preprocessing, pixel_table

    spec = Preprocessing(64, 64)  # edgeseg's x / 128 - 1
    assert adapters.is_identity(pixel_table(spec, np.uint8, 1 / 128, 128))
    half = Preprocessing(64, 64, (127.5,) * 3, (127.5,) * 3)
    assert not adapters.is_identity(pixel_table(half, np.uint8, 1 / 128, 128))
    lut = pixel_table(spec)
    assert lut.dtype == np.float32 and lut[0, 0] == -1.0 and lut[255, 2] == 127 / 128
    # int8 input, scale 1/128, zero point 0: pixel p -> p - 128
    lut8 = pixel_table(spec, np.int8, 1 / 128, 0)
    assert (lut8[:, 0].astype(int) == np.arange(256) - 128).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_argmax_8bit_matches_numpy_including_ties(dtype: type) -> None:
    rng = np.random.default_rng(66)
    info = np.iinfo(dtype)
    for c in (2, 4, 21):
        scores = rng.integers(info.min, info.min + 6, (17, 23, c)).astype(dtype)  # many ties
        key, tmp = np.empty((17, 23), np.uint16), np.empty((17, 23), np.uint16)
        ids = adapters.argmax_8bit(scores, key, tmp)
        assert (ids == np.argmax(scores, axis=-1)).all()
        top = (key >> 8).astype(np.uint8) ^ (128 if dtype == np.int8 else 0)
        assert (top.view(dtype) == scores.max(axis=-1)).all()


class FakeInterpreter:
    """Just the details output_layout reads."""

    def __init__(self, in_shape: list[int], out_shape: list[int], out_dtype: type = np.float32,
                 quant: tuple[float, int] = (0.0, 0)) -> None:
        self._in = [{"shape": np.array(in_shape), "dtype": np.uint8, "index": 0,
                     "quantization": (1 / 128, 128)}]
        self._out = [{"shape": np.array(out_shape), "dtype": out_dtype, "index": 1,
                      "quantization": quant}]

    def get_input_details(self) -> list[dict]:
        return self._in

    def get_output_details(self) -> list[dict]:
        return self._out


@pytest.mark.parametrize("in_shape,out_shape,dtype,quant,kind,hwc", [
    ([1, 64, 128, 3], [1, 32 * 64, 5], np.float32, (0.0, 0), "scores", (32, 64, 5)),
    ([1, 64, 128, 3], [1, 16 * 32, 3], np.uint8, (1 / 256, 0), "scores", (16, 32, 3)),
    ([1, 64, 64, 3], [1, 32, 32], np.uint8, (0.0, 0), "ids", (32, 32, 1)),
    ([1, 64, 64, 3], [1, 32, 32, 1], np.uint8, (0.0, 0), "ids", (32, 32, 1)),
    ([1, 64, 64, 3], [1, 32, 32, 1], np.float32, (0.0, 0), "binary", (32, 32, 1)),
    ([1, 64, 64, 3], [1, 32, 32], np.int8, (1 / 256, -128), "binary", (32, 32, 1)),
])
def test_output_layouts(in_shape: list[int], out_shape: list[int], dtype: type,
                        quant: tuple[float, int], kind: str, hwc: tuple[int, int, int]) -> None:
    lay = adapters.output_layout(FakeInterpreter(in_shape, out_shape, dtype, quant))
    assert (lay.kind, (lay.height, lay.width, lay.channels)) == (kind, hwc)
    if kind == "binary" and quant[0]:
        assert lay.threshold == pytest.approx(0.5 / quant[0] + quant[1])


@pytest.mark.parametrize("out_shape", [[1, 10], [1, 7, 3], [1, 8, 8, 4, 2], [2, 32, 32, 4]])
def test_unsupported_output_shapes_name_the_shape(out_shape: list[int]) -> None:
    with pytest.raises(EdgesegError, match=str(out_shape).replace("[", r"\[").replace("]", r"\]")):
        adapters.output_layout(FakeInterpreter([1, 64, 64, 3], out_shape))


def test_bad_models_get_clear_errors(models: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgesegError, match="no such model file"):
        Segmenter(tmp_path / "missing.tflite")
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes((models / "int8_softmax.tflite").read_bytes()[:300])
    with pytest.raises(EdgesegError, match="could not be loaded as a TFLite model"):
        Segmenter(corrupt)
    with pytest.raises(EdgesegError, match=r"input \[1, 10\] is not an image"):
        Segmenter(models / "not_image.tflite")
    with pytest.raises(EdgesegError, match=r"output 0 shape \[1, 5\]"):
        Segmenter(models / "bad_output.tflite")


def test_delegates_fail_clearly_and_fall_back(models: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # No Vulkan driver, so this holds on a machine with a GPU too (tests/test_gpu.py runs one).
    monkeypatch.setenv("VK_ICD_FILENAMES", str(tmp_path / "no_icd.json"))
    model = models / "int8_softmax.tflite"
    with pytest.raises(EdgesegError, match="not compiled for the Edge TPU"):
        make_interpreter(model, delegate="edgetpu")
    fake_tpu = tmp_path / "m_edgetpu.tflite"
    fake_tpu.write_bytes(model.read_bytes() + b"edgetpu-custom-op")
    with pytest.raises(EdgesegError, match="libedgetpu.*apt-get install libedgetpu1-std"):
        make_interpreter(fake_tpu, delegate="edgetpu")
    with pytest.raises(EdgesegError, match=r"--delegate gpu: no GPU adapter: .*--fallback"):
        make_interpreter(model, delegate="gpu")
    with pytest.raises(EdgesegError, match="libtensorflowlite_gpu_delegate.so: no such file"):
        make_interpreter(model, delegate=str(tmp_path / "libtensorflowlite_gpu_delegate.so"))
    with pytest.raises(EdgesegError, match="unknown delegate"):
        make_interpreter(model, delegate="tpu9000")
    with pytest.warns(RuntimeWarning, match="Falling back to the CPU"):
        seg = Segmenter(fake_tpu, delegate="edgetpu", fallback=True)
    assert seg.delegate == "xnnpack"
    frame, expected = colour_frame()
    assert agreement(seg.segment(frame).mask, expected) > 0.95


def test_delegated_nodes_counts_what_xnnpack_took(models: Path) -> None:
    nodes = delegated_nodes(make_interpreter(models / "float_softmax.tflite", threads=1))
    assert nodes is not None
    taken, total = nodes
    assert 1 <= taken <= total and total >= 3


def test_memory_stays_flat_over_many_frames(models: Path) -> None:
    from edgeseg.runtime.bench import peak_rss_mb

    seg = Segmenter(models / "int8_softmax.tflite", confidence=True)
    frame, _ = colour_frame(240, 320)
    for _ in range(50):
        seg.segment(frame)

    def rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    if not Path("/proc/self/statm").exists():
        pytest.skip("needs /proc to read the resident set size")
    before = rss()
    for _ in range(600):
        seg.segment(frame)
    assert rss() - before < 5.0
    assert peak_rss_mb() > 0


TINY = Path(__file__).resolve().parent / "data" / "tiny_int8.tflite"


@pytest.mark.parametrize("args", [["bench", str(TINY), "--runs", "3"], ["inspect", str(TINY)]])
def test_a_cpu_run_prints_no_litert_info_line(args: list[str], tmp_path: Path) -> None:
    # A process of its own: LiteRT logs the line once per process, at the first allocation.
    env = {**os.environ, "COLUMNS": "200", "VK_ICD_FILENAMES": str(tmp_path / "none.json"),
           "PYTHONPATH": os.pathsep.join([str(RUNTIME.parents[1]), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", "from edgeseg.cli import main; main()", *args],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "tiny_int8.tflite" in r.stdout
    noise = [ln for ln in (r.stdout + r.stderr).splitlines()
             if ln.startswith(("INFO:", "I0000", "WARNING: All log messages"))]
    assert noise == [], r.stderr


def test_native_lines_other_than_litert_info_are_passed_on(capfd: pytest.CaptureFixture) -> None:
    from edgeseg.runtime.interpreter import _without_native_info

    with _without_native_info():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                    b"ERROR: Didn't find op for builtin opcode 'FOO' version '9'.\n")
    err = capfd.readouterr().err
    assert err == "ERROR: Didn't find op for builtin opcode 'FOO' version '9'.\n"
