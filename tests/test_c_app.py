"""examples/c_app: the exported C array run by the LiteRT C API gives the Python runtime's output."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

APP = Path(__file__).resolve().parents[1] / "examples" / "c_app"


def _litert_dir() -> Path:
    import ai_edge_litert

    return Path(ai_edge_litert.__file__).parent


@pytest.fixture(scope="module")
def built_app(converted, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example built with `make` against the trained tiny int8 model's export."""
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("needs gcc and make")
    if not (_litert_dir() / "libLiteRt.so").is_file():
        pytest.skip("this ai-edge-litert wheel ships no libLiteRt.so (the LiteRT C API)")
    from pip_cache import cached

    from edgeseg.device.export_c import export_c_array

    work = tmp_path_factory.mktemp("c_app")
    sources = ("Makefile", "segment.c", "litert_c_api.h")
    for name in sources:
        shutil.copy(APP / name, work / name)
    export_c_array(converted["int8"], work, name="model")
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout

    def build(out: Path) -> None:
        for name in (*sources, "model.h", "model.cc"):
            shutil.copy(work / name, out / name)
        proc = subprocess.run(["make", f"PYTHON={sys.executable}", "MODEL=model",
                               "CFLAGS=-O1 -Wall -Wextra -Werror"],
                              cwd=out, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    # The build is kept in the test cache, keyed by its sources, the exported model, gcc
    # and the LiteRT library it links: an unchanged model is not compiled again.
    built = cached("c-app", [*(work / n for n in (*sources, "model.h", "model.cc")), gcc,
                             _litert_dir() / "libLiteRt.so"], build)
    shutil.copy(built / "segment", work / "segment")
    return work


@pytest.mark.slow
def test_c_app_output_equals_python_runtime(built_app: Path, converted, synth_data: Path) -> None:
    from edgeseg.data.readers import read_image
    from edgeseg.runtime.interpreter import make_interpreter
    from edgeseg.runtime.segmenter import Segmenter

    model = converted["int8"]
    seg = Segmenter(model, rgb=True)
    assert seg.feeds_pixels  # the uint8 input is the RGB pixel: the C app feeds raw bytes
    interp = make_interpreter(model)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    for path in sorted((synth_data / "val" / "images").glob("*.png"))[:4]:
        rgb = read_image(path)
        (built_app / "in.bin").write_bytes(np.ascontiguousarray(rgb).tobytes())
        proc = subprocess.run(["./segment", "in.bin", "out.bin", "ids.bin"], cwd=built_app,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "input 12288 bytes, output 4096 bytes (32x32, 4 channel(s))" in proc.stdout
        interp.set_tensor(inp["index"], rgb[None])
        interp.invoke()
        expected = interp.get_tensor(out["index"])
        got = np.fromfile(built_app / "out.bin", np.uint8).reshape(expected.shape)
        np.testing.assert_array_equal(got, expected)  # int8: bit-exact
        ids = np.fromfile(built_app / "ids.bin", np.uint8).reshape(expected.shape[1:3])
        mask = seg.segment(rgb).mask  # at the frame's size: 2x the model's output, nearest
        np.testing.assert_array_equal(ids, mask[::2, ::2])
        assert len(np.unique(ids)) > 1


@pytest.mark.slow
def test_c_app_refuses_a_wrong_input_size(built_app: Path) -> None:
    (built_app / "short.bin").write_bytes(bytes(100))
    proc = subprocess.run(["./segment", "short.bin", "o.bin"], cwd=built_app, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert "short.bin must hold exactly 12288 bytes (the input tensor)" in proc.stderr
