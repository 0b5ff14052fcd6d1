"""`edgeseg bench`: latency statistics, several models, --pipeline, --json, --plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tflite_fixtures
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import EdgesegError
from edgeseg.runtime.bench import bench_model

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tflite_fixtures.build_cached(tmp_path_factory)


def test_bench_prints_the_latency_table(models: Path) -> None:
    r = runner.invoke(app, ["bench", str(models / "int8_softmax.tflite"), "--runs", "10",
                            "--warmup", "2", "--threads", "1"], env=WIDE)
    assert r.exit_code == 0, r.output
    for word in ("ai-edge-litert", "xnnpack", "delegated nodes", "init ms", "min", "mean", "p50",
                 "p90", "p99", "std", "FPS", "peak RSS MiB"):
        assert word in r.output, word
    assert "mean vs first" not in r.output  # one model: no ratio row


def test_several_models_json_and_ratios(models: Path) -> None:
    paths = [str(models / f"{n}.tflite") for n in ("int8_softmax", "float_softmax")]
    r = runner.invoke(app, ["bench", *paths, "--runs", "8", "--json"], env=WIDE)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [Path(x["model"]).name for x in rows] == ["int8_softmax.tflite", "float_softmax.tflite"]
    for x in rows:
        assert x["runs"] == 8
        assert x["peak_rss_mb"] > 0 and x["init_ms"] > 0 and x["runtime_version"]
        assert x["delegate"] == "xnnpack" and 0 < x["delegated_nodes"] <= x["total_nodes"]
    assert [x["output"] for x in rows] == ["32×32 (H×W), 4 channels, uint8, softmax",
                                           "32×32 (H×W), 4 channels, float32, softmax"]
    assert [x["input"] for x in rows] == ["64×64 (H×W), uint8", "64×64 (H×W), float32"]
    r = runner.invoke(app, ["bench", *paths, "--runs", "5"], env=WIDE)
    assert r.exit_code == 0 and "mean vs first" in r.output and "1.00x" in r.output


SELFIE = Path(__file__).resolve().parents[1].parent / "shared/realdata/models/selfie_segmentation.tflite"


@pytest.mark.skipif(not SELFIE.is_file(), reason=f"{SELFIE} is absent (CI has it)")
def test_a_third_party_head_is_described_by_what_is_known() -> None:
    r = runner.invoke(app, ["bench", str(SELFIE), "--runs", "2", "--warmup", "0", "--threads",
                            "1"], env=WIDE)
    assert r.exit_code == 0, r.output
    row = next(line for line in r.output.splitlines() if line.lstrip("│ ").startswith("output"))
    assert "?" not in row
    for part in ("256×256 (H×W)", "1 channel", "float32", "head not stated in its metadata",
                 "read as one probability map (sigmoid)"):
        assert part in row, (part, row)


def test_latency_statistics_by_hand() -> None:
    from edgeseg.runtime.bench import latency_stats

    s = latency_stats([4.0, 1.0, 100.0, 3.0, 2.0])
    # sorted 1 2 3 4 100; p90 at rank 3.6 = 4 + 0.6 * 96, p99 at rank 3.96 = 4 + 0.96 * 96
    assert (s["min_ms"], s["mean_ms"], s["p50_ms"]) == (1.0, 22.0, 3.0)
    assert s["p90_ms"] == pytest.approx(61.6) and s["p99_ms"] == pytest.approx(96.16)
    assert s["fps"] == pytest.approx(45.45)  # 1000 / 22 ms
    # sqrt((21² + 20² + 19² + 18² + 78²) / 5) = sqrt(1522)
    assert s["std_ms"] == pytest.approx(39.0128, abs=1e-4)


def test_bench_times_the_invoke(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import edgeseg.runtime.bench as bench

    real = bench.make_interpreter

    class Slow:  # the real interpreter, each invoke made 20 ms slower
        def __init__(self, *a: object, **k: object) -> None:
            self._it = real(*a, **k)

        def invoke(self) -> None:
            time.sleep(0.02)
            self._it.invoke()

        def __getattr__(self, name: str) -> object:
            return getattr(self._it, name)

    monkeypatch.setattr(bench, "make_interpreter", Slow)
    r = bench_model(models / "int8_softmax.tflite", runs=5, warmup=1, threads=1)
    assert r.runs == 5 and 20 <= r.min_ms < 60 and r.fps < 50


def test_min_seconds_keeps_timing(models: Path) -> None:
    res = bench_model(models / "float_softmax.tflite", runs=3, warmup=0, min_seconds=0.2)
    assert res.runs > 3 and res.runs * res.mean_ms >= 150
    with pytest.raises(EdgesegError, match="--runs"):
        bench_model(models / "float_softmax.tflite", runs=0)


def test_pipeline_reports_stages_and_efficiency(models: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from edgeseg.runtime.overlay import Overlay

    draw = Overlay.draw

    def slow_draw(self, *a, **k):  # a known 15 ms stage the efficiency must reflect
        time.sleep(0.015)
        return draw(self, *a, **k)

    monkeypatch.setattr(Overlay, "draw", slow_draw)
    video = tflite_fixtures.video(tmp_path / "in.mp4", 20, (160, 120))
    plot = tmp_path / "bench.png"
    r = runner.invoke(app, ["bench", str(models / "int8_softmax.tflite"), "--runs", "10",
                            "--warmup", "2", "--pipeline", str(video), "--json",
                            "--plot", str(plot)], env=WIDE)
    assert r.exit_code == 0, r.output
    pipe = json.loads(r.output)[0]["pipeline"]
    assert pipe["frames"] == 10 and pipe["fps"] > 0 and pipe["dropped"] == 0
    assert set(pipe["stage_ms"]) == {"capture", "preprocess", "invoke", "postprocess", "draw",
                                     "output"}
    assert pipe["stage_ms"]["draw"] >= 15 and pipe["fps"] < 1000 / 15
    invoke = pipe["stage_ms"]["invoke"]
    # pipeline fps over the fps its invokes allow: invoke / (invoke + 15 ms + the rest)
    assert pipe["efficiency_in_run"] <= invoke / (invoke + 15) + 0.01
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = runner.invoke(app, ["bench", str(models / "int8_softmax.tflite"), "--runs", "5",
                            "--pipeline", str(video)], env=WIDE)
    assert r.exit_code == 0 and "efficiency" in r.output and "per stage (ms)" in r.output
    assert "pipeline FPS" in r.output and "postprocess ms" in r.output


def test_bench_errors_exit_2(models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VK_ICD_FILENAMES", str(tmp_path / "no_icd.json"))  # no GPU adapter
    r = runner.invoke(app, ["bench", str(tmp_path / "nope.tflite")], env=WIDE)
    assert r.exit_code == 2 and "no such model file" in r.output
    r = runner.invoke(app, ["bench", str(models / "not_image.tflite")], env=WIDE)
    assert r.exit_code == 2 and "not an image" in r.output
    r = runner.invoke(app, ["bench", str(models / "int8_softmax.tflite"), "--delegate", "gpu"],
                      env=WIDE)
    assert r.exit_code == 2 and "--fallback" in r.output
    r = runner.invoke(app, ["bench", str(models / "int8_softmax.tflite"), "--delegate", "gpu",
                            "--fallback", "--runs", "3"], env=WIDE)
    assert r.exit_code == 0 and "warning:" in r.output and "Falling back" in r.output


def test_pipeline_on_a_too_short_source_says_so(models: Path, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):  # 5 go to the warm-up: 1 frame is timed
        cv2.imwrite(str(folder / f"{i}.png"), np.full((48, 64, 3), 30 * i, np.uint8))
    r = runner.invoke(app, ["bench", str(models / "int8_softmax.tflite"), "--runs", "20",
                            "--pipeline", str(folder)], env=WIDE)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert (f"pipeline on {folder}: only 1 frame timed after the 5 warm-up ones: too few for "
            "the FPS and efficiency to mean anything; give --pipeline a source of 15+ frames"
            in text), text
    assert "efficiency 0" not in text and "% of raw invoke FPS" not in text
    r = runner.invoke(app, ["bench", str(models / "int8_softmax.tflite"), "--runs", "20",
                            "--pipeline", str(folder), "--json"], env=WIDE)
    assert r.exit_code == 0, r.output
    assert "only 1 frame timed" in r.output


def test_plot_with_a_name_that_is_not_an_image_is_refused_up_front(
        models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgeseg.runtime.bench as rb

    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("benchmarked before checking --plot")

    monkeypatch.setattr(rb, "bench_model", never)
    r = runner.invoke(app, ["bench", str(models / "int8_softmax.tflite"), "--plot",
                            str(tmp_path / "p.txt")], env=WIDE)
    assert r.exit_code == 2, r.output
    assert f"--plot {tmp_path / 'p.txt'}: the chart is an image; end the name in .png, .svg, .pdf" \
        in " ".join(r.output.split())
    assert "Traceback" not in r.output and not (tmp_path / "p.txt").exists()
