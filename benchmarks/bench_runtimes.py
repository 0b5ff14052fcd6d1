"""Section 4 of the benchmarks: ai-edge-litert vs tflite-runtime 2.14 on the same files."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from bench_common import Plan, log

TFLITE_RUNTIME = ("tflite-runtime==2.14.0", "numpy<2")


def _venv_python(venv: Path) -> tuple[Optional[Path], str]:
    """The venv's python with tflite-runtime 2.14, made when missing; (None, why) on failure."""
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import tflite_runtime, numpy; print(tflite_runtime.__version__)"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py, ""
    log(f"§4 creating {venv} with {' '.join(TFLITE_RUNTIME)}")
    for cmd in ([sys.executable, "-m", "venv", str(venv)],
                [str(py), "-m", "pip", "install", "-q", *TFLITE_RUNTIME]):
        cp = subprocess.run(cmd, capture_output=True, text=True)
        if cp.returncode:
            tail = (cp.stderr.strip().splitlines() or ["no output"])[-1][:200]
            return None, f"`{' '.join(cmd[:4])} ...` failed ({tail})"
    return py, ""


def runtimes(a: argparse.Namespace, plan: Plan, files: dict[str, Path]) -> dict[str, Any]:
    """§4: the same standalone timing script under ai-edge-litert and tflite-runtime 2.14."""
    py, why = _venv_python(Path(a.tflite_runtime_venv))
    if py is None:
        return {"error": why}
    script = Path(__file__).with_name("tflite_runtime_bench.py")
    got: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(plan.rounds):
        for label, path in files.items():
            for rt, exe in (("ai-edge-litert", sys.executable), ("tflite-runtime", str(py))):
                cmd = [exe, str(script), str(path), "--threads", str(a.threads), "--runs", str(plan.runs),
                       "--min-seconds", str(plan.min_seconds), "--warmup", str(plan.warmup), "--runtime", rt]
                cp = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
                if cp.returncode:
                    return {"error": f"{rt} failed on {path.name}: {cp.stderr.strip()[-300:]}"}
                d = json.loads(cp.stdout.strip().splitlines()[-1])
                d["xnnpack"] = "XNNPACK delegate" in cp.stderr
                got.setdefault((label, rt), []).append(d)
                log(f"§4 {label} {rt}: {d['p50_ms']:.1f} ms (XNNPACK {d['xnnpack']})")
    rows = [min(v, key=lambda d: d["p50_ms"]) | {"file": k[0]} for k, v in got.items()]
    notes = []
    for r in rows:
        other = next(x for x in rows if x["file"] == r["file"] and x is not r)
        if r["runtime"] == "tflite-runtime":
            notes.append(f"{r['file']}: tflite-runtime 2.14 takes {r['p50_ms'] / other['p50_ms']:.2f}× as long "
                         "as ai-edge-litert" + ("" if r["xnnpack"] else
                                                  " (tflite-runtime ran it without the XNNPACK delegate)"))
    notes.append("Timed on this machine's CPU; the gap on a Raspberry Pi's Arm cores can differ: "
                 "re-run the script there to decide which runtime to install.")
    version = next((r["runtime_version"] for r in rows if r["runtime"] == "tflite-runtime"), None)
    return {"rows": rows, "threads": a.threads, "repeats": plan.rounds, "notes": notes, "version": version}
