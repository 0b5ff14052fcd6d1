"""`edgeseg run`: saved overlay video, JSON log, faults, the capture thread and the MJPEG server."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import tflite_fixtures
from typer.testing import CliRunner

import edgeseg.runtime.app
from edgeseg.cli import app
from edgeseg.runtime import capture
from edgeseg.runtime.overlay import palette
from edgeseg.runtime.reader import CaptureError, FrameReader, Retry

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tflite_fixtures.build_cached(tmp_path_factory)


@pytest.fixture()
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> Retry:
    retry = Retry(attempts=3, backoff_s=0.01, max_s=0.02)
    monkeypatch.setattr(edgeseg.runtime.app, "DEFAULT_RETRY", retry)
    return retry


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def run(*args: str | Path) -> object:
    return runner.invoke(app, ["run", *map(str, args)], env=WIDE)


def test_run_saves_overlay_video_with_expected_frames_size_and_colours(models: Path,
                                                                        tmp_path: Path) -> None:
    video = tflite_fixtures.video(tmp_path / "in.mp4", 10, (320, 240))
    out, log = tmp_path / "out.mp4", tmp_path / "frames.jsonl"
    r = run(models / "int8_softmax.tflite", "--source", video, "--no-display", "--max-frames", 6,
            "--save", out, "--json-log", log, "--alpha", 0.5)
    assert r.exit_code == 0, r.output
    assert "reached --max-frames: 6 frames" in r.output and "pixels fed directly" in r.output
    frames = read_video(out)
    assert len(frames) == 6 and frames[0].shape == (240, 320, 3)
    colours = palette(4).astype(float)
    # Lower rows, away from the legend and text: left half red (class 1), right blue (class 3).
    red = frames[3][150:230, 20:120].reshape(-1, 3).mean(0)
    blue = frames[3][150:230, 200:300].reshape(-1, 3).mean(0)
    assert np.abs(red - (0.5 * np.array([0, 0, 255]) + 0.5 * colours[1])).max() < 20, red
    assert np.abs(blue - (0.5 * np.array([255, 0, 0]) + 0.5 * colours[3])).max() < 20, blue
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [rec["frame"] for rec in records] == [1, 2, 3, 4, 5, 6]
    assert {"capture_ms", "preprocess_ms", "invoke_ms", "postprocess_ms", "draw_ms"} <= set(
        records[0])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_video_that_ends_is_a_clean_exit_and_nothing_is_dropped(models: Path,
                                                                 tmp_path: Path) -> None:
    video = tflite_fixtures.video(tmp_path / "in.avi", 7, (160, 120))
    r = run(models / "float_argmax.tflite", "--source", video, "--no-display",
            "--save", tmp_path / "out.avi")
    assert r.exit_code == 0, r.output
    assert "end of the source: 7 frames" in r.output and "0 dropped" in r.output
    assert len(read_video(tmp_path / "out.avi")) == 7


def test_image_folder_source_and_headless_note(models: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((50, 70, 3), 40 * i, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    r = run(models / "int8_softmax.tflite", "--source", folder)
    assert r.exit_code == 0, r.output
    assert "running headless" in r.output and "end of the source: 3 frames" in r.output
    # a dataset folder (images/ + annotations/) plays its images/, as convert --calib reads it
    dataset = tmp_path / "ds"
    (dataset / "annotations").mkdir(parents=True)
    folder.rename(dataset / "images")
    r = run(models / "int8_softmax.tflite", "--source", dataset)
    assert r.exit_code == 0, r.output
    assert "end of the source: 3 frames" in r.output


def test_window_that_cannot_open_falls_back_to_headless(models: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def no_windows(*args: object) -> None:
        raise cv2.error("The function is not implemented (headless build)")

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cv2, "imshow", no_windows)
    video = tflite_fixtures.video(tmp_path / "in.mp4", 4, (64, 48))
    r = run(models / "int8_softmax.tflite", "--source", video)
    assert r.exit_code == 0, r.output
    assert "can't open windows" in r.output and "end of the source: 4 frames" in r.output


def test_picam_without_picamera2_says_what_to_install(models: Path) -> None:
    try:
        import picamera2  # noqa: F401
        pytest.skip("picamera2 is installed here")
    except ImportError:
        pass
    r = run(models / "int8_softmax.tflite", "--camera", "picam", "--no-display")
    assert r.exit_code == 2, r.output
    assert "needs picamera2: sudo apt install python3-picamera2" in r.output


@pytest.mark.parametrize("case,message", [
    ("missing-model", "no such model file"),
    ("corrupt-model", "could not be loaded as a TFLite model"),
    ("non-image-model", "is not an image"),
    ("missing-video", "no such video, image or folder"),
    ("undecodable-video", "not a video OpenCV can decode"),
    ("no-source", "give exactly one of --camera"),
    ("bad-save", "--save"),
    ("bad-camera", "must be a device number"),
    ("port-too-big", "--stream 99999: a port must be 1-65535"),
    ("port-negative", "--stream -1: a port must be 1-65535"),
    ("bad-host", "--host nosuchhost.invalid: no such host or address"),
    ("missing-delegate", "--delegate /nonexist.so: no such file"),
])
def test_bad_inputs_get_one_line_and_exit_2(models: Path, tmp_path: Path, case: str,
                                            message: str) -> None:
    video = tflite_fixtures.video(tmp_path / "in.mp4", 3, (64, 48))
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"TFL3" + bytes(200))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 50)
    good = models / "int8_softmax.tflite"
    args = {
        "missing-model": [tmp_path / "nope.tflite", "--source", video],
        "corrupt-model": [corrupt, "--source", video],
        "non-image-model": [models / "not_image.tflite", "--source", video],
        "missing-video": [good, "--source", tmp_path / "nope.mp4"],
        "undecodable-video": [good, "--source", junk],
        "no-source": [good],
        "bad-save": [good, "--source", video, "--save", tmp_path / "out.gif"],
        "bad-camera": [good, "--camera", "front"],
        "port-too-big": [good, "--source", video, "--stream", "99999"],
        "port-negative": [good, "--source", video, "--stream=-1"],
        "bad-host": [good, "--source", video, "--stream", "18091", "--host",
                     "nosuchhost.invalid", "--no-auth"],
        "missing-delegate": [good, "--source", video, "--delegate", "/nonexist.so"],
    }[case]
    r = run(*args, "--no-display")
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and message in r.output, r.output
    assert "Traceback" not in r.output


def test_camera_that_cannot_be_opened_retries_then_fails(models: Path,
                                                        fast_retry: Retry) -> None:
    t0 = time.perf_counter()
    r = run(models / "int8_softmax.tflite", "--camera", "97", "--no-display")
    assert r.exit_code == 2, r.output
    assert "could not open camera 97" in r.output and "gave up after 4 attempts" in r.output
    assert time.perf_counter() - t0 < 20


class FlakyCamera:
    """A live source that delivers ``good`` frames, then nothing, and can't be reopened."""

    live, name, fps = True, "fake camera", 10.0

    def __init__(self, good: int) -> None:
        self.good, self.sent, self.opens, self.closed = good, 0, 0, 0

    def open(self) -> None:
        self.opens += 1
        if self.opens > 1:
            raise CaptureError("fake camera is unplugged")

    def read(self) -> np.ndarray | None:
        if self.sent >= self.good:
            return None
        self.sent += 1
        time.sleep(0.01)
        return np.full((48, 64, 3), (0, 0, 255), np.uint8)

    def close(self) -> None:
        self.closed += 1


def test_camera_that_stops_mid_stream_retries_then_fails_cleanly_keeping_the_video(
        models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fast_retry: Retry) -> None:
    cam = FlakyCamera(good=5)
    monkeypatch.setattr(capture, "open_source", lambda camera, source: cam)
    out = tmp_path / "partial.avi"
    r = run(models / "int8_softmax.tflite", "--camera", "0", "--no-display", "--save", out)
    assert r.exit_code == 2, r.output
    assert "fake camera stopped delivering frames after 5 frames and 3 reconnection" in r.output
    assert cam.opens == 1 + fast_retry.attempts and cam.closed >= fast_retry.attempts
    assert 1 <= len(read_video(out)) <= 5  # what was recorded before the failure is kept


def test_ctrl_c_finalizes_the_saved_video(models: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    video = tflite_fixtures.video(tmp_path / "in.mp4", 20, (96, 64))
    real_read = FrameReader.read
    calls = {"n": 0}

    def read_then_interrupt(self: FrameReader, timeout: float = 30.0) -> object:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_read(self, timeout)

    monkeypatch.setattr(FrameReader, "read", read_then_interrupt)
    out = tmp_path / "out.mp4"
    r = run(models / "int8_softmax.tflite", "--source", video, "--no-display", "--save", out)
    assert r.exit_code == 0, r.output
    assert "stopped (Ctrl-C or SIGTERM): 4 frames" in r.output
    assert len(read_video(out)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]  # no temp file


class GatedCamera:
    """A live camera that delivers exactly the frames the test releases (frame i is filled
    with i), so what the reader keeps is decided by the frame order, not by thread timing."""

    live, name, fps = True, "gated camera", 100.0

    def __init__(self) -> None:
        self.made = self.released = self.reads = 0
        self.stopped = False
        self.cond = threading.Condition()

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        with self.cond:
            self.reads += 1
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.made < self.released or self.stopped)
            if self.stopped:
                return None
            self.made += 1
            return np.full((4, 4, 3), self.made, np.uint8)

    def release(self, n: int) -> None:
        """Let ``n`` more frames out; return once the reader has handed all of them on
        (it is back in ``read()`` waiting for the next one)."""
        with self.cond:
            self.released += n
            self.cond.notify_all()
            assert self.cond.wait_for(lambda: self.reads > self.released, timeout=60), \
                (self.reads, self.released)

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def close(self) -> None:
        pass


def test_live_reader_keeps_only_the_newest_frame_and_counts_drops() -> None:
    cam = GatedCamera()
    # No watchdog here: the camera sits idle between the test's releases.
    reader = FrameReader(cam, stall_s=600, first_frame_s=600)
    try:
        cam.release(6)  # six frames arrive while the consumer is busy
        assert int(reader.read()[0, 0, 0]) == 6  # the newest, not the oldest
        assert reader.dropped == 5 and reader.captured == 6
        cam.release(1)
        assert int(reader.read()[0, 0, 0]) == 7  # nothing older was queued behind it
        assert reader.dropped == 5
        cam.release(4)
        assert int(reader.read()[0, 0, 0]) == 11
        assert reader.dropped == 8 and reader.captured == 11
    finally:
        cam.stop()
        reader.close()


def test_mjpeg_server_serves_page_still_and_stream() -> None:
    from edgeseg.runtime.stream import MjpegServer

    server = MjpegServer(0)
    try:
        assert server.host == "127.0.0.1"
        page = urllib.request.urlopen(server.url, timeout=5).read()
        assert b'src="/stream.mjpg"' in page
        server.publish(np.full((30, 40, 3), (0, 0, 200), np.uint8))
        still = urllib.request.urlopen(server.url + "frame.jpg", timeout=5).read()
        img = cv2.imdecode(np.frombuffer(still, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (30, 40, 3) and img[15, 20, 2] > 150
        with urllib.request.urlopen(server.url + "stream.mjpg", timeout=5) as resp:
            assert "multipart/x-mixed-replace" in resp.headers["Content-Type"]
            head = resp.read(200)
            assert b"--edgesegframe" in head and b"image/jpeg" in head
    finally:
        server.close()


def test_run_with_stream_prints_the_local_url(models: Path, tmp_path: Path) -> None:
    video = tflite_fixtures.video(tmp_path / "in.mp4", 3, (64, 48))
    r = run(models / "int8_softmax.tflite", "--source", video, "--no-display", "--stream", "0")
    assert r.exit_code == 0, r.output
    assert "streaming on http://localhost:" in r.output and "this machine only" in r.output


@pytest.mark.parametrize("name, head", [("model.keras", b"PK\x03\x04"), ("model.h5", b"\x89HDF"),
                                        ("model.bin", b"PK\x03\x04")])
def test_a_keras_model_is_met_with_the_convert_command(tmp_path: Path, name: str,
                                                        head: bytes) -> None:
    model = tmp_path / name  # a .keras file is a zip, a .h5 one HDF5: by suffix or by bytes
    model.write_bytes(head + b"\x00" * 60)
    for args in (["run", str(model), "--source", "x.mp4", "--no-display"],
                 ["bench", str(model), "--runs", "1"]):
        r = runner.invoke(app, args, env=WIDE)
        assert r.exit_code == 2, r.output
        assert f"edgeseg convert {model} --int8" in r.output and "re-copy" not in r.output
        assert "runs a .tflite" in r.output and len(r.output.strip().splitlines()) == 1
