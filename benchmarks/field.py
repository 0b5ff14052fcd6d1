"""In the field: stall → recovery on loopback MJPEG/RTSP servers, and a soak of `run --stream`.

    python benchmarks/field.py stall --out stall.json      # ≈ 3 min; RTSP needs GStreamer
    python benchmarks/field.py soak --minutes 10 --out soak.json

stall: the servers of ../shared/realdata/stream are stopped mid-stream with SIGSTOP (the
connection stays open, nothing is sent) and resumed with SIGCONT; it reports the seconds from
the stop to the watchdog's reconnect line and from the resume to the next frame.
soak: `edgeseg run --stream` on a looping 15 fps MJPEG stream of vtest.avi with the MediaPipe
selfie model, `/stats` and the process's RSS read every 10 s; SIGTERM at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "realdata"
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def stall(out: Path, stalls: tuple[float, ...] = (6.0, 20.0), reps: int = 2) -> list[dict]:
    import test_capture_watchdog as t  # the test's server and stall helpers, one implementation

    avi = Path("/tmp/edgeseg-field-vtest_mjpg.avi")
    if not avi.is_file():
        subprocess.run([sys.executable, str(SHARED / "stream" / "make_mjpeg_avi.py"),
                        str(SHARED / "video" / "vtest.avi"), str(avi), "200"], check=True)
    rows = []
    kinds = ["mjpeg"] + (["rtsp"] if t._rtsp_python() else [])
    for kind in kinds:
        for seconds in stalls:
            for rep in range(reps):
                proc, url = t._start_server(kind, avi)
                try:
                    got = t.stall_and_resume(url, proc, seconds)
                finally:
                    proc.send_signal(signal.SIGCONT)
                    proc.terminate()
                    proc.wait(10)
                rows.append({"server": kind, "stall_s": seconds, "rep": rep,
                             **{k: round(v, 2) for k, v in got.items()}})
                print(rows[-1], flush=True)
    out.write_text(json.dumps(rows, indent=1))
    return rows


def soak(out: Path, minutes: float, port: int = 18302, src_port: int = 18301) -> dict:
    seconds = minutes * 60
    srv = subprocess.Popen([sys.executable, str(SHARED / "stream" / "mjpeg_server.py"),
                            str(SHARED / "video" / "vtest.avi"), "--port", str(src_port),
                            "--fps", "15", "--seconds", str(seconds + 60)],
                           stdout=subprocess.PIPE, text=True)
    assert srv.stdout is not None and "serving" in srv.stdout.readline()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.Popen([sys.executable, "-c", "from edgeseg.cli import main; main()", "run",
                            str(SHARED / "models" / "selfie_segmentation.tflite"), "--source",
                            f"http://127.0.0.1:{src_port}/stream.mjpg", "--no-display",
                            "--threads", "1", "--stream", str(port), "--reconnect", "forever"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0, rows, failures = time.monotonic(), [], 0
    try:
        while time.monotonic() - t0 < seconds:
            time.sleep(10)
            try:
                url = f"http://127.0.0.1:{port}/stats"
                st = json.loads(urllib.request.urlopen(url, timeout=5).read())
            except OSError as e:
                failures, st = failures + 1, {"error": str(e)}
            status = Path(f"/proc/{run.pid}/status").read_text()
            rss = int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1])
            rows.append({"t": round(time.monotonic() - t0), "rss_mb": round(rss / 1024, 1),
                         **{k: st.get(k) for k in ("fps_in", "fps_out", "frames_out", "dropped",
                                                   "reconnects", "e2e_ms", "invoke_ms", "error")}})
    finally:
        run.send_signal(signal.SIGTERM)
        tail = run.communicate(timeout=60)[0].strip().splitlines()[-3:]
        srv.terminate()
    result = {"minutes": minutes, "rows": rows, "stats_failures": failures,
              "exit_code": run.returncode, "last_lines": tail}
    out.write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["stall", "soak"])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    if a.what == "stall":
        stall(a.out)
    else:
        soak(a.out, a.minutes)


if __name__ == "__main__":
    main()
