"""The capture watchdog: stalled reads abandoned and reconnected, bounded and endless retry,
and real loopback MJPEG/RTSP servers that stall (SIGSTOP) and come back (SIGCONT)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgeseg.runtime import capture
from edgeseg.runtime.reader import CaptureError, FrameReader, Retry, open_with_retry

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
STREAM = SHARED / "realdata" / "stream"
VIDEO = SHARED / "realdata" / "video" / "vtest.avi"


class HangingCamera:
    """Delivers ``good`` frames, then its read blocks until released (a hung driver).

    ``fresh()`` gives a new connection that delivers frames again, as a stream that
    comes back does; every instance shares ``log``.
    """

    live, name, fps = True, "hanging camera", 30.0

    def __init__(self, good: int, log: dict, hang_every: bool = False) -> None:
        self.good, self.log, self.sent = good, log, 0
        self.hang_every = hang_every
        self.release = threading.Event()
        log.setdefault("instances", []).append(self)

    def fresh(self) -> HangingCamera:
        return HangingCamera(self.good if self.hang_every else 10**9, self.log, self.hang_every)

    def open(self) -> None:
        self.log["opens"] = self.log.get("opens", 0) + 1

    def read(self) -> np.ndarray | None:
        if self.sent >= self.good:
            self.log["hung_at"] = time.monotonic()
            self.release.wait(30)  # blocks like a read on a silent socket
            return None
        self.sent += 1
        time.sleep(0.01)
        return np.full((8, 8, 3), len(self.log["instances"]), np.uint8)

    def close(self) -> None:
        self.log["closes"] = self.log.get("closes", 0) + 1


def test_retry_delays_are_capped_and_forever_never_ends() -> None:
    assert list(Retry(4, 0.5, 2.0).delays()) == [0.5, 1.0, 2.0, 2.0]
    forever = Retry(None, 0.5, 2.0).delays()
    assert [next(forever) for _ in range(50)][-3:] == [2.0, 2.0, 2.0]
    assert Retry(None).describe() == "for ever"


def test_a_read_that_blocks_is_abandoned_within_the_stall_time_and_frames_resume() -> None:
    log: dict = {}
    cam = HangingCamera(good=5, log=log)
    notes: list[str] = []
    reader = FrameReader(cam, Retry(2, 0.05, 0.05), stall_s=0.5,
                                 note=notes.append)
    try:
        firsts = [reader.read(timeout=5) for _ in range(5)]
        assert all(int(f[0, 0, 0]) == 1 for f in firsts)  # from the first connection
        frame = reader.read(timeout=5)  # only arrives through a new connection
        detected = time.monotonic()
        assert int(frame[0, 0, 0]) == 2
        assert detected - log["hung_at"] < 0.5 + 0.6  # stall_s, plus the 0.1 s poll and backoff
        assert (reader.stalls, reader.reconnects) == (1, 1)
        assert notes == ["warning: no frame from hanging camera for 0.5 s; reconnecting in "
                         "0.05 s (attempt 1, 1 in all)"]
        assert len(log["instances"]) == 2 and log["opens"] == 1  # fresh copy opened once
    finally:
        cam.release.set()
        reader.close()


def test_bounded_retry_gives_up_on_a_source_that_keeps_hanging_with_the_count() -> None:
    log: dict = {}
    cam = HangingCamera(good=0, log=log, hang_every=True)
    reader = FrameReader(cam, Retry(2, 0.01, 0.01), stall_s=0.3,
                                 first_frame_s=0.3)
    t0 = time.monotonic()
    try:
        with pytest.raises(CaptureError, match="after 0 frames and 2 reconnection"):
            reader.read()
        # three connections of 0.3 s each and two 0.01 s waits, plus polling
        assert time.monotonic() - t0 < 3.0
        assert (reader.stalls, reader.reconnects) == (3, 2)
    finally:
        for inst in log["instances"]:
            inst.release.set()
        reader.close()


class DropsThenReturns:
    """A live source whose opens fail ``outage`` times after its first frames."""

    live, name, fps = True, "flaky stream", 30.0

    def __init__(self, outage: int) -> None:
        self.outage, self.opens, self.sent = outage, 0, 0

    def open(self) -> None:
        self.opens += 1
        if 1 < self.opens <= 1 + self.outage:
            raise CaptureError("flaky stream refused the connection")

    def read(self) -> np.ndarray | None:
        self.sent += 1
        if self.sent == 3:
            return None  # the stream drops once
        return np.zeros((4, 4, 3), np.uint8)

    def close(self) -> None:
        pass


def test_reconnect_forever_outlasts_an_outage_longer_than_the_bounded_default() -> None:
    src = DropsThenReturns(outage=12)  # more failures than the default 4 attempts
    src.open()
    notes: list[str] = []
    reader = FrameReader(src, Retry(None, 0.001, 0.002), note=notes.append)
    try:
        frames = [reader.read(timeout=10) for _ in range(6)]
        assert all(f is not None for f in frames)
        assert reader.reconnects == 13 and src.opens == 14
        # the first 3 failures of the outage are logged, then only every 30th
        assert len(notes) == 3 and "refused the connection" in notes[1]
    finally:
        reader.close()


def test_bounded_retry_fails_the_same_outage_with_one_message() -> None:
    src = DropsThenReturns(outage=12)
    src.open()
    reader = FrameReader(src, Retry(4, 0.001, 0.002))
    try:
        with pytest.raises(CaptureError) as e:
            for _ in range(3):  # live: only the newest frame is kept, so 1 or 2 reads
                reader.read(timeout=10)
        assert str(e.value) == ("flaky stream stopped delivering frames after 2 frames and 4 "
                                "reconnection attempts; check the connection (--reconnect "
                                "forever keeps trying).")
    finally:
        reader.close()


class LateCamera:
    """A camera whose first ``fails`` opens fail (plugged in late)."""

    live, name, fps = True, "late camera", 30.0

    def __init__(self, fails: int) -> None:
        self.fails, self.opens = fails, 0

    def open(self) -> None:
        self.opens += 1
        if self.opens <= self.fails:
            raise CaptureError("could not open late camera; check the cable.")

    def read(self) -> None:
        return None

    def close(self) -> None:
        pass


def test_open_retries_for_ever_or_gives_up_saying_how_often() -> None:
    notes: list[str] = []
    pings: list[int] = []
    cam = LateCamera(fails=40)
    open_with_retry(cam, Retry(None, 0.0001, 0.0001), notes.append,
                            idle=lambda: pings.append(1))
    assert cam.opens == 41 and len(pings) == 40
    assert notes == [f"warning: could not open late camera; check the cable (attempt {n}, "
                     "retrying for ever)" for n in (1, 2, 3, 30)]
    notes.clear()
    with pytest.raises(CaptureError) as e:
        open_with_retry(LateCamera(fails=40), Retry(2, 0.0001, 0.0001),
                                notes.append)
    assert str(e.value) == ("could not open late camera; check the cable (gave up after 3 "
                            "attempts).")
    assert notes == ["warning: could not open late camera; check the cable (attempt 1 of 3)",
                     "warning: could not open late camera; check the cable (attempt 2 of 3)"]


# -- real servers on 127.0.0.1 ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rtsp_python() -> str | None:
    py = shutil.which("python3", path="/usr/bin")
    if py is None:
        return None
    probe = subprocess.run([py, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import GstRtspServer"], capture_output=True)
    return py if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def mjpeg_avi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rtsp") / "clip_mjpg.avi"
    subprocess.run([sys.executable, str(STREAM / "make_mjpeg_avi.py"), str(VIDEO), str(out), "200"],
                   check=True, capture_output=True, timeout=120)
    return out


def _start_server(kind: str, mjpeg_avi: Path | None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    if kind == "mjpeg":
        cmd = [sys.executable, str(STREAM / "mjpeg_server.py"), str(VIDEO), "--port", str(port),
               "--fps", "15", "--seconds", "60"]
        url = f"http://127.0.0.1:{port}/stream.mjpg"
    else:
        py = _rtsp_python()
        assert py is not None and mjpeg_avi is not None
        cmd = [py, str(STREAM / "rtsp_server.py"), str(mjpeg_avi), "--port", str(port),
               "--seconds", "60"]
        url = f"rtsp://127.0.0.1:{port}/live"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert "serving" in (proc.stdout.readline() if proc.stdout else "")
    return proc, url


def stall_and_resume(url: str, proc: subprocess.Popen, stall_for: float) -> dict[str, float]:
    """Stop the server mid-stream, resume it; seconds to detect and to the next frame."""
    src = capture.open_source(None, url)
    open_with_retry(src, Retry(5))
    notes: list[tuple[float, str]] = []
    reader = FrameReader(src, Retry(None), stall_s=3.0,
                                 note=lambda m: notes.append((time.monotonic(), m)))
    try:
        for _ in range(10):
            assert reader.read() is not None
        os.kill(proc.pid, signal.SIGSTOP)  # connection stays open, nothing is sent
        stopped = time.monotonic()
        time.sleep(stall_for)
        os.kill(proc.pid, signal.SIGCONT)
        resumed = time.monotonic()
        before = reader.captured
        while reader.captured == before and time.monotonic() - resumed < 20:
            time.sleep(0.02)
        flowing = time.monotonic()
        assert reader.read() is not None
        return {"detect_s": notes[0][0] - stopped if notes else float("inf"),
                "recover_s": flowing - resumed, "stalls": reader.stalls}
    finally:
        reader.close()


@pytest.mark.skipif(not (STREAM / "mjpeg_server.py").is_file() or not VIDEO.is_file(),
                    reason="needs ../shared/realdata/stream and its video (CI has them)")
def test_mjpeg_server_that_stalls_is_detected_and_frames_flow_again_after_it_resumes() -> None:
    proc, url = _start_server("mjpeg", None)
    try:
        got = stall_and_resume(url, proc, stall_for=6.0)
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(10)
    assert got["detect_s"] <= 5.0, got
    assert got["recover_s"] <= 5.0, got
    assert got["stalls"] >= 1


@pytest.mark.skipif(not (STREAM / "rtsp_server.py").is_file() or not VIDEO.is_file(),
                    reason="needs ../shared/realdata/stream and its video (CI has them)")
def test_rtsp_server_that_stalls_is_detected_and_frames_flow_again_after_it_resumes(
        mjpeg_avi: Path) -> None:
    if _rtsp_python() is None:
        pytest.skip("GStreamer's RTSP server is not installed (apt-get install "
                    "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi; .ci/run does)")
    proc, url = _start_server("rtsp", mjpeg_avi)
    try:
        got = stall_and_resume(url, proc, stall_for=6.0)
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(10)
    assert got["detect_s"] <= 5.0, got
    assert got["recover_s"] <= 5.0, got
