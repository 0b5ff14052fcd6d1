"""The demo end to end on a tiny recipe: every step runs, the report has its pictures, re-runs reuse."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end_and_reuses_steps(tmp_path):
    from edgeseg.demo import DemoConfig, run_demo

    cfg = DemoConfig(out=str(tmp_path / "demo"), size=64, train_images=48, val_images=8, alpha=0.25,
                     train_minutes=0.05, epochs=2, video_frames=8, backbone_weights="none")
    logs: list[str] = []
    s = run_demo(cfg, log=logs.append)
    out = tmp_path / "demo"
    for name in ("model.keras", "model_float32.tflite", "model_float16.tflite", "model_int8.tflite",
                 "clip.mp4", "run_int8.mp4", "overlays.png", "latency.png", "report.md", "report.html",
                 "summary.json"):
        assert (out / name).exists(), name
    assert s["run"]["frames"] == 8
    side = json.loads((out / "model.keras.json").read_text())["edgeseg"]
    # the realtime preset, with the alpha the recipe overrides
    assert (side["decoder"], side["encoder_level"], side["alpha"]) == ("fast", 2, 0.25)
    assert set(s["bench"]) == {"float32", "float16", "int8"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2  # self-contained pictures
    assert "overlays.png" in (out / "report.md").read_text()
    # how sure the int8 model is on its own clip, measured and said on screen and in the report
    conf = s["run"]["confidence"]
    assert conf["frames"] == 8 and 0.25 <= conf["top1"]["min"] <= conf["top1"]["max"] <= 1.0
    assert conf["reference"]["p05"] <= conf["reference"]["p50"]
    said = next(line for line in logs if line.startswith("about the clip: "))
    assert f"{conf['top1']['mean']:.3f}" in said and said[16:] in (out / "report.md").read_text()
    # a second run reuses every finished step
    logs.clear()
    run_demo(cfg, log=logs.append)
    assert sum("reusing" in line for line in logs) == 6
    assert json.loads((out / "summary.json").read_text())["tflite"]["int8"].endswith("model_int8.tflite")


def test_demo_rejects_an_unknown_preset_before_any_step(tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "--preset", "turbo"])
    assert r.exit_code == 2 and "--preset 'turbo' must be one of seed, realtime" in r.output
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("text", ["{broken", "[1, 2]", "\xff\xfe"])
def test_a_corrupt_steps_json_is_one_line(tmp_path, text):
    from typer.testing import CliRunner

    from edgeseg.cli import app

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "steps.json").write_bytes(text.encode("latin-1"))
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    out = " ".join(r.output.split())
    assert "steps.json is not" in out and "delete it to run every step again" in out
    assert not (tmp_path / "d" / "data").exists()  # no step ran
