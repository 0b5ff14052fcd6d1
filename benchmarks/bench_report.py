"""RESULTS.md and its charts from the results dict of run_benchmarks.py; machine facts; Pi estimate."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
from pathlib import Path
from typing import Any

PI_NOTES = """\
**Estimates, not measured on a board.** edgeseg's cost model (`edgeseg bench --estimate pi4|pi5`,
edgeseg/device/estimate.py) gives each file's Cortex-A72 (Pi 4) / Cortex-A76 (Pi 5) instructions per invoke,
fitted per op kind on instruction counts of the aarch64 LiteRT/XNNPACK wheel under qemu-user
(benchmarks/a72_count.py; counts repeat to 0.01 %), and converts them to ms with the published ms per
instruction of Keras MobileNet v1 / v2 224² int8 counted the same way (XNNPACK README, Raspberry Pi
table, RPi 4 ARM64, multi-threaded, 2022-02-08: 24 / 17 ms; Pi 5: ÷ 4.79, the TFLite SSD-MobileNetV2
Pi 4 → Pi 5 speed-up 112.6 → 23.5 ms quoted in edgeseg issue 15). The range is the two references'.
4 threads assumed for the published figures. Inference only. Replace with `edgeseg bench` on a board.
"""


def machine_info() -> dict[str, Any]:
    """CPU model and flags of note, cores, memory, OS, Python and package versions, date, load."""
    cpu, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine()
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    versions = {}
    for pkg in ("edgeseg", "tensorflow", "keras", "ai-edge-litert", "numpy", "opencv-python-headless"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    notable = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
               if f in flags]
    return {
        "cpu": cpu, "cpu_flags": notable, "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory": mem, "os": platform.platform(), "python": platform.python_version(),
        "versions": versions, "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": _loadavg(),
    }


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def pi_estimate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model row (name, tflite, macs): Pi 4 / Pi 5 latency estimates from edgeseg's cost model."""
    from edgeseg.device.estimate import estimate

    out = []
    for r in rows:
        e4, e5 = estimate(r["tflite"], "pi4"), estimate(r["tflite"], "pi5")
        out.append({"model": r["name"], "gmacs": r["macs"] / 1e9, "a72_minsn": e4.instructions / 1e6,
                    "pi4_ms": e4.ms, "pi4_range": [e4.ms_low, e4.ms_high], "a76_minsn": e5.instructions / 1e6,
                    "pi5_ms": e5.ms, "pi5_range": [e5.ms_low, e5.ms_high]})
    return out


def _ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _mark(ok: bool | None) -> str:
    return "–" if ok is None else ("✅" if ok else "❌")


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines + [""]


def _formats_md(f: dict[str, Any]) -> list[str]:
    rows = []
    for r in f["rows"]:
        acc = f["accuracy"].get(r["format"], {})
        rows.append([r["format"], _ms(r["p50_ms"]), f"{r['vs_float32']:.2f}×", f"{r['vs_keras']:.2f}×",
                     f"{r['size_mb']:.2f}", f"{r['size_ratio']:.3f}", _pct(acc.get("miou")),
                     _pct(acc.get("agreement"))])
    t = f["targets"]
    s, n = f["size"], f["trained_size"]
    lines = [f"## 1. Formats: Keras vs TFLite at {s}×{s}", ""]
    lines += _table(["format", "median ms", "speed-up vs float32 TFLite", "speed-up vs Keras",
                     "file MB", "size vs float32", f"val mIoU % ({n}²)", f"agreement with Keras % ({n}²)"],
                    rows)
    lines += [
        f"- Model: {f['model_desc']}, {f['macs']['total'] / 1e9:.2f} GMACs/frame. {f['weights_note']}",
        f"- Latency: {f['threads']} threads, {f['warmup']} warm-up runs, then ≥ {f['runs']} runs and ≥ "
        f"{f['min_seconds']:g} s per format; {f['rounds']} interleaved round(s), the best round's median. "
        "Keras: the model called under `tf.function` (batch 1, `training=False`), TensorFlow intra-op "
        f"threads = {f['threads']}. TFLite: ai-edge-litert with XNNPACK, random input.",
        f"- Accuracy columns: the trained model at its own size ({n}×{n}), converted the same four ways "
        f"(int8 calibrated on {f['calib_desc']}), scored on {f['val_images']} held-out images "
        "with `edgeseg.verify.compare` (mIoU against ground truth; agreement = share of pixels whose class "
        "equals the Keras float model's).",
        f"- Targets: int8 ≥ 3.5× faster than float32 TFLite: {t['int8_vs_float32']:.2f}× "
        f"{_mark(t['int8_vs_float32'] >= 3.5)}; int8 ≥ 5× faster than Keras: {t['int8_vs_keras']:.2f}× "
        f"{_mark(t['int8_vs_keras'] >= 5)}; int8 size ≤ 0.27× float32: {t['int8_size']:.3f}× "
        f"{_mark(t['int8_size'] <= 0.27)}.",
        "", "![latency per format](formats_latency.png)", "",
    ]
    return lines


def _grid_md(g: dict[str, Any]) -> list[str]:
    rows = [[f"{r['size']}²", r["alpha"], r["decoder_desc"], f"{r['macs'] / 1e9:.2f}",
             f"{r['decoder_macs'] / 1e9:.2f}", _ms(r["p50_ms"]), f"{r['gmacs_per_s']:.1f}"]
            for r in g["rows"]]
    lines = ["## 2. Input size × width grid (int8)", ""]
    lines += _table(["input", "alpha", "decoder", "GMACs/frame", "decoder GMACs", "int8 median ms",
                     "achieved GMAC/s"], rows)
    lines += [
        "- MACs counted from the Keras graph's conv layers (`edgeseg.model.macs.count_macs`); "
        "achieved GMAC/s = MACs / median latency.",
        f"- Random, untrained weights (latency does not depend on the values); int8 calibrated on "
        f"{g['calib_count']} images of calibration/; {g['threads']} threads, same timing rule as §1.",
        "", "![grid](grid.png)", "",
    ]
    return lines


def _pipeline_md(p: dict[str, Any]) -> list[str]:
    st = p["stages"]
    rows = [[k, f"{v:.2f}"] for k, v in st["stage_ms"].items()]
    eff = p["efficiency"]
    lines = [f"## 3. Whole `run` pipeline vs raw invoke ({p['model']})", "",
             f"Source: a generated {p['video']} clip ({p['frames']} frames).", ""]
    lines += _table(["measure", "value"], [
        ["raw invoke, `bench` (mean ms)", f"{eff['bench_invoke_ms']:.2f}"],
        ["`run --no-display` loop (frames/s)", f"{eff['run_fps']:.2f}"],
        ["efficiency = fps × raw invoke time", f"{eff['efficiency_vs_bench']:.3f} "
         f"{_mark(eff['efficiency_vs_bench'] >= 0.9)}"],
        ["efficiency against the invokes of the same run", f"{eff['efficiency_in_run']:.3f}"],
    ])
    lines += [f"Per-stage mean ms of the drawing pipeline (`edgeseg bench --pipeline`: capture → "
              f"preprocess → invoke → postprocess → overlay), {st['fps']:.1f} frames/s:", ""]
    lines += _table(["stage", "mean ms"], rows)
    lines += [f"- Median of {p['repeats']} interleaved repeats (`benchmarks/pipeline_efficiency.py`); "
              "target ≥ 0.9.", "", "![pipeline stages](pipeline_stages.png)", ""]
    return lines


def _runtimes_md(r: dict[str, Any]) -> list[str]:
    lines = ["## 4. ai-edge-litert vs tflite-runtime 2.14 (same files)", ""]
    if r.get("error"):
        return lines + [f"Not measured: {r['error']}", ""]
    rows = [[x["file"], f"{x['runtime']} {x['runtime_version']} (numpy {x['numpy']})",
             _ms(x["p50_ms"]), _ms(x["init_ms"]), "yes" if x["xnnpack"] else "no", x["runs"]]
            for x in r["rows"]]
    lines += _table(["file", "runtime", "median ms", "init ms", "XNNPACK delegate", "runs"], rows)
    lines += [f"- The same standalone script (`benchmarks/tflite_runtime_bench.py`: numpy + interpreter) "
              f"under each runtime, {r['threads']} threads, {r['repeats']} interleaved round(s), best "
              "round's median. tflite-runtime runs in its own venv (`tflite-runtime==2.14.0`, "
              "`numpy<2`). \"XNNPACK delegate\": the runtime logged that it created one.", ""]
    lines += [f"- {n}" for n in r.get("notes", [])] + [""]
    return lines


def _pi_md(p: dict[str, Any]) -> list[str]:
    rows = []
    for e in p["rows"]:
        rows.append([e["model"], f"{e['gmacs']:.2f}", f"{e['a72_minsn']:,.0f}",
                     f"{_ms(e['pi4_ms'])} ({_ms(e['pi4_range'][0])}–{_ms(e['pi4_range'][1])})",
                     f"{e['a76_minsn']:,.0f}",
                     f"{_ms(e['pi5_ms'])} ({_ms(e['pi5_range'][0])}–{_ms(e['pi5_range'][1])})"])
    head = ["model", "GMACs", "A72 M instructions (model)", "Raspberry Pi 4 ms (estimate)",
            "A76 M instructions (model)", "Raspberry Pi 5 ms (estimate)"]
    return (["## 5. Raspberry Pi 4 / Pi 5 latency — estimate, not measured", ""]
            + _table(head, rows) + [PI_NOTES]
            + ([f"- {p['note']}", ""] if p.get("note") else [""]))


def _lite_md(v: dict[str, Any]) -> list[str]:
    rows = [[r["size"], f"{r['seed_decoder_macs'] / 1e9:.2f}", f"{r['lite_decoder_macs'] / 1e9:.2f}",
             f"{r['ratio']:.1f}× {_mark(r['ratio'] >= 4)}", f"{r['seed_total'] / 1e9:.2f}",
             f"{r['lite_total'] / 1e9:.2f}", _ms(r.get("seed_ms")), _ms(r.get("lite_ms"))] for r in v["macs"]]
    lines = ["## 6. Real-time variant: seed vs lite decoder", ""]
    lines += _table(["input", "seed decoder GMACs", "lite decoder GMACs", "fewer decoder MACs (≥ 4×)",
                     "seed total GMACs", "lite total GMACs", "seed int8 ms", "lite int8 ms"], rows)
    lines += [f"- alpha {v['alpha']:g}; lite = `decoder=\"lite\", decoder_width=0.5` (depthwise-separable 3×3 "
              "+ ReLU6). int8 ms: measured here in §2 (– where §2 did not run that size and alpha).", ""]
    acc = v.get("accuracy")
    if acc:
        rows = [[a["name"], a["desc"], _pct(a["float_miou"]), _pct(a["int8_miou"]), _pct(a["agreement"])]
                for a in acc]
        lines += _table(["model", "config", "val mIoU % (float)", "val mIoU % (int8)",
                         "int8 agreement with float %"], rows)
        d = v["checks"]
        lines += [f"- Lite val mIoU within 2 points of the seed's: {d['miou_gap']:+.2f} points "
                  f"{_mark(d['miou_gap'] >= -2)}; int8 agreement as good as the seed's: "
                  f"{d['agreement_gap']:+.2f} points (within 0.5) {_mark(d['agreement_gap'] >= -0.5)}.", ""]
    else:
        lines += ["- Accuracy: pass `--lite-model LITE.keras` (trained on the same data) to add its val mIoU "
                  "and int8 agreement next to the seed's.", ""]
    return lines


def render(results: dict[str, Any]) -> str:
    """The whole RESULTS.md text."""
    m = results["machine"]
    lines = ["# edgeseg benchmarks", ""]
    if results.get("banner"):
        lines += [f"> **{results['banner']}**", ""]
    v = m["versions"]
    lines += [
        "One script, one run, side by side on one machine: "
        f"`python benchmarks/run_benchmarks.py {results['command']}` "
        f"({results['minutes']:.1f} min).", "",
        f"- Machine: {m['cpu']} ({', '.join(m['cpu_flags']) or 'no SIMD flags of note'}), "
        f"{m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs, {m['memory']} RAM; {m['os']}.",
        f"- Runtimes: Python {m['python']}, " + ", ".join(f"{k} {x}" for k, x in v.items())
        + (f", tflite-runtime {results['tflite_runtime_version']}" if results.get("tflite_runtime_version")
           else "") + ".",
        f"- Date: {m['date']}. Load average (1/5/15 min) at start: {m['loadavg_start']}, at end: "
        f"{m['loadavg_end']} (much above 0 means other work shared the CPUs: timings are noisy).", "",
    ]
    for key, fn in (("formats", _formats_md), ("grid", _grid_md), ("pipeline", _pipeline_md),
                    ("runtimes", _runtimes_md), ("pi", _pi_md), ("lite", _lite_md)):
        if results.get(key):
            lines += fn(results[key])
    return "\n".join(lines).rstrip() + "\n"


def charts(results: dict[str, Any], out: Path) -> list[Path]:
    """formats_latency.png, grid.png and pipeline_stages.png (what the results hold)."""
    from edgeseg.plots import _pyplot, plot_bars

    made: list[Path] = []
    f = results.get("formats")
    if f:
        names = [r["format"] for r in f["rows"]]
        p = plot_bars(names, [r["p50_ms"] for r in f["rows"]], out / "formats_latency.png",
                      f"median latency at {f['size']}×{f['size']}, {f['threads']} threads")
        made += [p] if p else []
    p = results.get("pipeline")
    if p:
        st = p["stages"]["stage_ms"]
        q = plot_bars(list(st), list(st.values()), out / "pipeline_stages.png",
                      "per-stage mean time, 640×480 video, int8")
        made += [q] if q else []
    plt = _pyplot()
    g = results.get("grid")
    if g and plt is not None:
        from edgeseg.atomic import atomic_path

        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
        for dec, marker in (("seed", "o"), ("lite", "s"), ("fast", "^")):
            for alpha, colour in ((0.5, "tab:orange"), (1.0, "tab:blue")):
                rs = [r for r in g["rows"] if r["decoder"] == dec and r["alpha"] == alpha]
                if not rs:
                    continue
                x = [r["macs"] / 1e9 for r in rs]
                label = f"{dec} decoder, alpha {alpha}"
                a.plot(x, [r["p50_ms"] for r in rs], marker + "-", color=colour, label=label,
                       fillstyle="full" if dec == "seed" else "none")
                b.plot(x, [r["gmacs_per_s"] for r in rs], marker + "-", color=colour, label=label,
                       fillstyle="full" if dec == "seed" else "none")
                for r, xv in zip(rs, x):
                    a.annotate(f"{r['size']}²", (xv, r["p50_ms"]), fontsize=7,
                               textcoords="offset points", xytext=(3, 3))
        a.set(xscale="log", yscale="log", xlabel="GMACs per frame", ylabel="int8 median ms",
              title="int8 latency vs MACs")
        b.set(xscale="log", xlabel="GMACs per frame", ylabel="GMAC/s", title="achieved int8 throughput")
        from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

        for axis in (a.xaxis, a.yaxis, b.xaxis):  # log axes: ticks at 1, 2, 5 × 10^k, plain numbers
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_locator(NullLocator())
        for ax in (a, b):
            ax.grid(alpha=0.3)
        a.legend(fontsize=8)
        fig.tight_layout()
        with atomic_path(out / "grid.png") as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
        made.append(out / "grid.png")
    return made
