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
        assert x["runs"] == 8 and x["min_ms"] <= x["p50_ms"] <= x["p99_ms"]
        assert x["fps"] == pytest.approx(1000 / x["mean_ms"], rel=0.01)
        assert x["peak_rss_mb"] > 0 and x["init_ms"] > 0 and x["runtime_version"]
        assert x["delegate"] == "xnnpack" and 0 < x["delegated_nodes"] <= x["total_nodes"]
    r = runner.invoke(app, ["bench", *paths, "--runs", "5"], env=WIDE)
    assert r.exit_code == 0 and "mean vs first" in r.output and "1.00x" in r.output


def test_min_seconds_keeps_timing(models: Path) -> None:
    res = bench_model(models / "float_softmax.tflite", runs=3, warmup=0, min_seconds=0.2)
    assert res.runs > 3 and res.runs * res.mean_ms >= 150
    with pytest.raises(EdgesegError, match="--runs"):
        bench_model(models / "float_softmax.tflite", runs=0)


def test_pipeline_reports_stages_and_efficiency(models: Path, tmp_path: Path) -> None:
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
    assert pipe["stage_ms"]["draw"] > 0 and 0 < pipe["efficiency"]
    assert 0 < pipe["efficiency_in_run"] <= 1.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = runner.invoke(app, ["bench", str(models / "int8_softmax.tflite"), "--runs", "5",
                            "--pipeline", str(video)], env=WIDE)
    assert r.exit_code == 0 and "efficiency" in r.output and "per stage (ms)" in r.output


def test_bench_errors_exit_2(models: Path, tmp_path: Path) -> None:
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
