"""`edgeseg run --stream`: /stats, /metrics, the token off loopback, sd_notify, temperature,
and the errors for a source with no frame and a --save that can't be written."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import tflite_fixtures
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import EdgesegError
from edgeseg.runtime import capture
from edgeseg.runtime.app import RunOptions, stream_token
from edgeseg.runtime.app import run as run_app
from edgeseg.runtime.health import Health, cpu_temperature, prometheus_text
from edgeseg.runtime.sdnotify import SystemdNotifier
from edgeseg.runtime.stream import MjpegServer

runner = CliRunner()


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tflite_fixtures.build_cached(tmp_path_factory)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_token_server_answers_401_without_it_and_serves_page_stats_metrics_with_it() -> None:
    stats = {"frames_out": 7}
    server = MjpegServer(0, token="s3cret-token", stats=lambda: stats,
                         metrics=lambda: b"edgeseg_frames_out_total 7.0\n")
    base = f"http://127.0.0.1:{server.port}"
    try:
        for path in ("/", "/stats", "/metrics", "/stream.mjpg", "/frame.jpg", "/nope"):
            code, body = get(base + path)
            assert code == 401 and b"?token=" in body, (path, code)
        assert get(base + "/stats?token=wrong-token")[0] == 401
        assert get(base + "/stats", {"Authorization": "Bearer wrong"})[0] == 401
        code, body = get(base + "/stats?token=s3cret-token")
        assert code == 200 and json.loads(body) == {"frames_out": 7}
        code, body = get(base + "/metrics", {"Authorization": "Bearer s3cret-token"})
        assert code == 200 and body == b"edgeseg_frames_out_total 7.0\n"
        code, page = get(base + "/?token=s3cret-token")
        # the page's own requests carry the token (an <img> can't send a header)
        assert b'src="/stream.mjpg?token=s3cret-token"' in page
        assert b'fetch("/stats?token=s3cret-token")' in page
        assert get(base + "/nope?token=s3cret-token")[0] == 404  # only page, stream, stats
        assert server.url.endswith(f":{server.port}/?token=s3cret-token")
    finally:
        server.close()


def test_stream_token_policy() -> None:
    assert stream_token(RunOptions("m.tflite", host="127.0.0.1")) is None
    made = stream_token(RunOptions("m.tflite", host="0.0.0.0"))
    assert made is not None and len(made) == 24  # 18 random bytes, URL-safe base64
    assert made != stream_token(RunOptions("m.tflite", host="0.0.0.0"))
    assert stream_token(RunOptions("m.tflite", host="0.0.0.0", token="given-token")) == \
        "given-token"
    assert stream_token(RunOptions("m.tflite", host="0.0.0.0", no_auth=True)) is None
    with pytest.raises(EdgesegError, match="at least 8 characters"):
        stream_token(RunOptions("m.tflite", host="0.0.0.0", token="short"))


class PacedCamera:
    """A live camera at ~60 fps: left half red, right half blue."""

    live, name, fps = True, "paced camera", 60.0

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray:
        time.sleep(1 / 60)
        img = np.zeros((48, 64, 3), np.uint8)
        img[:, :32] = (0, 0, 255)
        img[:, 32:] = (255, 0, 0)
        return img

    def close(self) -> None:
        pass


def _run_in_thread(opts: RunOptions, notes: list[str]) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def target() -> None:
        try:
            out["stats"] = run_app(opts, note=notes.append)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


def _wait_for(pred, timeout: float = 120.0) -> None:  # generous: a loaded CI machine stalls
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.05)


def test_run_opened_to_the_network_prints_a_token_and_serves_live_stats(
        models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "open_source", lambda camera, source: PacedCamera())
    model = models / "int8_softmax.tflite"
    notes: list[str] = []
    # 300 frames (>= 5 s at the camera's 60 fps): the server outlives the checks below
    # even when this thread is starved for a few seconds.
    opts = RunOptions(str(model), camera="0", display=False, stream=0, host="0.0.0.0",
                      max_frames=300)
    t, out = _run_in_thread(opts, notes)
    _wait_for(lambda: any("streaming on" in n for n in notes))
    line = next(n for n in notes if "streaming on" in n)
    assert "open to the network, token required" in line
    url = line.split("streaming on ")[1].split(" ")[0]
    token = url.split("?token=")[1]
    port = int(url.split(":")[2].split("/")[0])
    base = f"http://127.0.0.1:{port}"
    assert get(base + "/stats")[0] == 401
    _wait_for(lambda: json.loads(get(f"{base}/stats?token={token}")[1])["frames_out"] >= 30)
    stats = json.loads(get(f"{base}/stats?token={token}")[1])
    assert stats["model"] == "int8_softmax.tflite"
    assert stats["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    # per second over the part of the 10 s window that has frames (not frames / 10 s); the
    # camera paces ~60 fps, and the first frame's delay can put a few percent on top
    assert 20 < stats["fps_out"] <= 66 and 20 < stats["fps_in"] <= 66
    assert stats["frames_in"] >= stats["frames_out"] >= 30
    assert stats["reconnects"] == 0 and stats["source_state"] == "streaming"
    assert 0 < stats["invoke_ms"]["p50"] <= stats["invoke_ms"]["p99"]
    assert stats["e2e_ms"]["p50"] >= stats["invoke_ms"]["p50"]
    # the fixture's sidecar has no convert-time distribution: rolling values only
    conf = stats["confidence"]
    assert conf["reference"] is False and conf["drift"] is False
    assert conf["shares"]["red"] == pytest.approx(0.5, abs=0.05)
    assert conf["shares"]["blue"] == pytest.approx(0.5, abs=0.05)
    metrics = get(f"{base}/metrics?token={token}")[1].decode()
    assert 'edgeseg_model_info{name="int8_softmax.tflite",sha256="' in metrics
    frames_out = [ln for ln in metrics.splitlines() if ln.startswith("edgeseg_frames_out_total")]
    assert len(frames_out) == 1 and float(frames_out[0].split()[1]) >= 30
    assert 'edgeseg_invoke_latency_ms{quantile="0.99"}' in metrics
    t.join(120)
    assert "error" not in out, out
    assert out["stats"].frames == 300


def test_no_auth_says_so(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "open_source", lambda camera, source: PacedCamera())
    notes: list[str] = []
    run_app(RunOptions(str(models / "int8_softmax.tflite"), camera="0", display=False, stream=0,
                       host="0.0.0.0", no_auth=True, max_frames=2), note=notes.append)
    line = next(n for n in notes if "streaming on" in n)
    assert "WITHOUT a token (--no-auth)" in line and "?token=" not in line


def test_systemd_gets_ready_watchdog_pings_and_stopping(models: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    got: list[str] = []
    stopping = threading.Event()

    def receive() -> None:  # as systemd does, until STOPPING=1 (the socket queues ~10 datagrams)
        deadline = time.monotonic() + 120
        while not stopping.is_set() and time.monotonic() < deadline:
            try:
                got.append(sock.recv(4096).decode())
            except TimeoutError:
                continue
            if got[-1] == "STOPPING=1":
                stopping.set()

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    interval_s = 0.2
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", str(int(3 * interval_s * 1e6)))  # pings every 200 ms
    monkeypatch.setattr(capture, "open_source", lambda camera, source: PacedCamera())
    try:
        started = time.monotonic()
        run_app(RunOptions(str(models / "int8_softmax.tflite"), camera="0", display=False,
                           max_frames=40), note=lambda m: None)
        elapsed = time.monotonic() - started
        assert stopping.wait(60), got  # every datagram was read, however slow this machine is
    finally:
        stopping.set()
        receiver.join(5)
        sock.close()
    assert got[0] == "READY=1\nSTATUS=opening paced camera"
    assert got[1] == "STATUS=segmenting paced camera"
    assert got[-1] == "STOPPING=1"
    pings = got[2:-1]
    assert set(pings) == {"WATCHDOG=1"}, got
    # 40 frames at 60 fps take at least 0.67 s, so pings go out more than once; and never
    # more often than once per interval, however long the run took.
    assert elapsed >= 40 / 60 - 0.05
    assert 2 <= len(pings) <= elapsed / interval_s + 1, (len(pings), elapsed, got)


def test_notifier_abstract_socket_and_no_systemd() -> None:
    name = f"edgeseg-test-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(1)
    try:
        n = SystemdNotifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "3000000"})
        assert n.interval_s == pytest.approx(1.0)
        assert n.ready() and sock.recv(100) == b"READY=1"
        n.ping()
        assert sock.recv(100) == b"WATCHDOG=1"
        n.ping()  # within the interval: not sent again
        with pytest.raises(TimeoutError):
            sock.settimeout(0.2)
            sock.recv(100)
    finally:
        sock.close()
    off = SystemdNotifier({})
    assert not off.enabled and off.ready() is False
    other = SystemdNotifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other.interval_s is None  # the watchdog is another process's


def test_cpu_temperature_prefers_the_cpu_zone(tmp_path: Path) -> None:
    for name, kind, temp in (("thermal_zone0", "acpitz", "45000"),
                             ("thermal_zone1", "cpu-thermal", "51234")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(kind + "\n")
        (tmp_path / name / "temp").write_text(temp + "\n")
    assert cpu_temperature(tmp_path) == pytest.approx(51.234)
    assert cpu_temperature(tmp_path / "missing") is None


def test_health_counts_and_metrics_without_frames(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"abc")
    h = Health(str(model))
    snap = h.snapshot()
    assert snap["model_sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert snap["frames_out"] == 0 and snap["invoke_ms"] == {"p50": None, "p99": None}
    h.frame(2.0, 5.0)
    h.frame(4.0, 9.0)
    snap = h.snapshot()
    assert snap["frames_out"] == 2 and snap["invoke_ms"]["p50"] == 3.0
    text = prometheus_text(h).decode()
    assert "edgeseg_frames_out_total 2.0" in text


def test_video_that_opens_but_has_no_frame_is_an_error_naming_it(models: Path,
                                                                  tmp_path: Path) -> None:
    empty = tmp_path / "header_only.avi"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48)).release()
    out = tmp_path / "out.mp4"
    r = runner.invoke(app, ["run", str(models / "int8_softmax.tflite"), "--source", str(empty),
                            "--no-display", "--save", str(out)], env={"COLUMNS": "300"})
    assert r.exit_code == 2, r.output
    assert f"error: {empty} opened but yielded no frame" in r.output
    assert not out.exists() and "Traceback" not in r.output


def test_save_that_cannot_be_written_is_an_error(models: Path, tmp_path: Path) -> None:
    video = tflite_fixtures.video(tmp_path / "in.mp4", 3, (64, 48))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    r = runner.invoke(app, ["run", str(models / "int8_softmax.tflite"), "--source", str(video),
                            "--no-display", "--save", str(blocker / "out.mp4")],
                      env={"COLUMNS": "300"})
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())
    assert f"error: cannot write {blocker / 'out.mp4'}: {blocker} is not a writable folder" in out


def test_reconnect_option_is_checked(models: Path) -> None:
    r = runner.invoke(app, ["run", str(models / "int8_softmax.tflite"), "--camera", "0",
                            "--no-display", "--reconnect", "soon"], env={"COLUMNS": "300"})
    assert r.exit_code == 2
    assert "--reconnect soon: give a number of attempts or 'forever'" in r.output


def test_sigterm_from_systemd_finalizes_the_saved_video(models: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    # A live MJPEG stream served from this process: the run never ends by itself.
    source = MjpegServer(0)
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            source.publish(np.full((48, 64, 3), (0, 0, 255), np.uint8))
            time.sleep(1 / 30)

    threading.Thread(target=publish, daemon=True).start()
    out, log = tmp_path / "out.avi", tmp_path / "frames.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from edgeseg.cli import main; main()", "run",
         str(models / "int8_softmax.tflite"), "--source",
         f"http://127.0.0.1:{source.port}/stream.mjpg", "--no-display", "--save", str(out),
         "--json-log", str(log)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env)
    try:
        _wait_for(lambda: any(tmp_path.glob(".out.*.avi")), timeout=60)  # frames are saved
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    finally:
        stop.set()
        source.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "stopped (Ctrl-C or SIGTERM): " in output
    frames = int(output.split("stopped (Ctrl-C or SIGTERM): ")[1].split(" frames")[0])
    cap = cv2.VideoCapture(str(out))
    saved = 0
    while cap.read()[0]:
        saved += 1
    assert frames > 0 and saved == frames
    assert len(log.read_text().splitlines()) == frames
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.jsonl", "out.avi"]


def test_rates_come_from_running_totals_so_a_backlog_is_not_a_burst() -> None:
    from edgeseg.runtime.health import _Window

    w = _Window(seconds=10.0)
    w.add(100.0, 50.0)  # 50 frames counted before the first sample (the camera warming up)
    for i in range(1, 31):
        w.add(100.0 + i / 30, 50.0 + i)  # then 30 frames per second
    assert w.rate(101.0) == pytest.approx(30.0)
    assert w.rate(105.0) == pytest.approx(6.0)  # nothing new for 4 s: the rate falls
    assert w.rate(111.5) == 0.0  # all samples aged out


def test_on_all_interfaces_the_addresses_printed_are_this_machines_and_answer(
        models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeseg.runtime.stream import network_addresses

    ips = network_addresses()
    assert all(not ip.startswith("127.") for ip in ips)
    server = MjpegServer(0, "0.0.0.0", token="s3cret-token", stats=lambda: {"frames_out": 1})
    try:
        urls = server.urls
        assert urls[0] == f"http://{socket.gethostname()}:{server.port}/?token=s3cret-token"
        assert urls[1:] == [f"http://{ip}:{server.port}/?token=s3cret-token" for ip in ips]
        assert not any("localhost" in u or "0.0.0.0" in u for u in urls)
        for ip in ips:  # each printed address reaches this server
            assert get(f"http://{ip}:{server.port}/stats?token=s3cret-token")[0] == 200
    finally:
        server.close()
    monkeypatch.setattr(capture, "open_source", lambda camera, source: PacedCamera())
    notes: list[str] = []
    run_app(RunOptions(str(models / "int8_softmax.tflite"), camera="0", display=False, stream=0,
                       host="0.0.0.0", max_frames=2), note=notes.append)
    line = next(n for n in notes if "streaming on" in n)
    assert "listening on all interfaces (0.0.0.0)" in line and "localhost" not in line
    assert f"http://{socket.gethostname()}:" in line
    for ip in ips:
        assert f"http://{ip}:" in line
    if not ips:
        assert "no network address found" in line
