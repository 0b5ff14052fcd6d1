"""Fit edgeseg's Pi cost model (edgeseg/device/pi_cost.json) on emulated per-kernel instruction counts.

    python benchmarks/pi_cost_fit.py count MODELS_DIR --work EMU_DIR [--cpu a72 a76]   # slow: emulates
    python benchmarks/pi_cost_fit.py time MODELS_DIR     # x86: thread CPU time per invoke here, one thread
    python benchmarks/pi_cost_fit.py fit MODELS_DIR [--heldout-prefix heldout_]        # instant
    python benchmarks/pi_cost_fit.py plot MODELS_DIR     # benchmarks/pi_kernels.png
    python benchmarks/pi_cost_fit.py tables MODELS_DIR   # instant: only `plan`'s op tables, after a preset changed

`count` runs every MODELS_DIR/*.tflite (copy in the two reference models `a72_count.py
references` writes to EMU_DIR/references/) once under qemu (benchmarks/a72_count.py, one
thread, after a warm-up invoke) with the per-function profile,
and stores per model the instructions of each kernel group in
MODELS_DIR/counts-CPU.json. `fit` fits, per device, instructions of each op kind as a linear
function of its padded MACs and elements (edgeseg/device/estimate.py), on the models whose
name does not
start with the held-out prefix, writes the package's pi_cost.json (coefficients, references,
and the op tables `edgeseg plan` scales), and tests/data/pi_heldout_counts.json (the held-out
models' op rows and measured counts, which tests/test_estimate.py checks the model against).
Make the models with the int8 converter: `edgeseg build --preset P --alpha A -c K --height S
--width S` then `edgeseg convert --int8` (their weights do not change the instruction count); name
them P_aA_kK_S.tflite (P: realtime, seed, and realtime_1core at alpha 0.5 only, for `plan`; K: 2, 3
and 21 at 224², which `plan` scales).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgeseg.device import estimate as est  # noqa: E402
from edgeseg.device.estimate import COST_FILE, KINDS, features, op_rows  # noqa: E402
from edgeseg.tflite import read_tflite  # noqa: E402

HELDOUT_FILE = REPO / "tests" / "data" / "pi_heldout_counts.json"
CORES = {"a72": ("pi4", "cortex-a72"), "a76": ("pi5", "cortex-a76")}
# Channel blocking of the int8 kernels XNNPACK picks on each core (seen in the profiles):
# A72: qs8 gemm/igemm 2x8c8 (NEON mlal): 8 output channels per tile, 8 input channels per step;
# A76: 4x16c4 (dot product): 16 and 4. Depthwise: 9p16c on both.
PAD = {"pi4": {"kc": 8, "nr": 8, "dw": 16}, "pi5": {"kc": 4, "nr": 16, "dw": 16}, "x86": {"kc": 1, "nr": 1, "dw": 1}}
PUBLISHED = {  # XNNPACK README, "Raspberry Pi" table, RPi 4 (BCM2711, ARM64), INT8, 2022-02-08
    "mobilenet_v1": 24.0, "mobilenet_v2": 17.0}
PI5_SPEEDUP = 112.6 / 23.5  # TFLite SSD-MobileNetV2, Pi 4 -> Pi 5, as quoted in edgeseg issue 15
SERIAL_KINDS = ["softmax", "quantize", "argmax"]  # int8 kernels the XNNPACK delegate leaves to TFLite


def kernel_group(function: str) -> str:
    """The op kind a profiled function's instructions belong to ('rest' when not a kernel)."""
    f = function
    if "dwconv" in f:
        return "dwconv"
    if "_igemm_" in f:
        return "conv"
    if "_gemm_" in f and "packw" not in f:
        return "conv1x1"
    if "ibilinear" in f or "Resize" in f:
        return "resize"
    if "_lut_" in f or "_vcvt_" in f:  # XNNPACK's LOGISTIC and DEQUANTIZE/QUANTIZE (fused pairs: one LUT)
        return "elementwise"
    if f.startswith("xnn_") and ("floating_point_softmax" in f or "raddstoreexpminusmax" in f
                                 or "_f32_rmax_" in f or "_f32_vmulc_" in f):
        return "softmax_f32"
    if "Softmax" in f:
        return "softmax"
    if "Requantize" in f or "MultiplyByQuantizedMultiplier" in f or "quantize" in f.lower() and "tflite" in f:
        return "quantize"
    if "ArgMax" in f or "ArgMinMax" in f:
        return "argmax"
    return "rest"


def _groups(kernels: dict[str, float]) -> dict[str, float]:
    """Instructions per kernel group of one profile (function -> instructions)."""
    groups: dict[str, float] = {}
    for fn, n in kernels.items():
        g = kernel_group(fn)
        groups[g] = groups.get(g, 0.0) + n
    return groups


def count(models_dir: Path, work: Path, cpus: list[str]) -> None:
    import a72_count

    models = sorted(models_dir.glob("*.tflite"))
    for cpu in cpus:
        out = models_dir / f"counts-{cpu}.json"  # one file per core: two counts can run at once
        data = json.loads(out.read_text()) if out.exists() else {}
        for m in models:
            key = f"{cpu}/{m.name}"
            if key in data:
                continue
            r = a72_count.run_guest(work, cpu, "invoke", m, 1, profile=True)
            kernels: dict[str, float] = {}  # kept, so that `fit` can regroup without emulating again
            for lib, fn, n in r["kernels"]:
                name = f"{lib}:0x*" if fn.startswith("0x") else fn  # unnamed code: one entry per library
                kernels[name] = kernels.get(name, 0.0) + n
            total = [n for name, n in r["stages"] if name == "invoke"][0]
            data[key] = {"model": m.name, "cpu": r["cpu"], "instructions": total,
                         "groups": _groups(kernels), "kernels": kernels}
            print(f"{key}: {total / 1e6:.3f} M", flush=True)
            out.write_text(json.dumps(data, indent=1))


def time_here(models_dir: Path, runs: int = 30) -> None:
    """Thread CPU time per invoke on this machine, one thread (min of ``runs``): the x86 'counts'."""
    import time

    import numpy as np

    from edgeseg.runtime.interpreter import make_interpreter

    out = models_dir / "counts-x86.json"
    data = json.loads(out.read_text()) if out.exists() else {}
    for m in sorted(models_dir.glob("*.tflite")):
        it = make_interpreter(m, 1)
        d = it.get_input_details()[0]
        info = np.iinfo(d["dtype"])
        it.set_tensor(d["index"], np.random.default_rng(66).integers(info.min, info.max + 1, d["shape"])
                      .astype(d["dtype"]))
        it.invoke()
        best = float("inf")
        for _ in range(runs):  # CPU time of this thread: other processes do not stretch it
            t0 = time.thread_time_ns()
            it.invoke()
            best = min(best, time.thread_time_ns() - t0)
        data[f"x86/{m.name}"] = {"model": m.name, "cpu": "x86", "instructions": best, "groups": {},
                                 "load": [round(x, 1) for x in os.getloadavg()]}
        print(f"x86/{m.name}: {best / 1e6:.3f} ms CPU", flush=True)
    out.write_text(json.dumps(data, indent=1))


def _fit_x86(entries: list[dict], rows: dict, heldout_prefix: str) -> dict:
    """x86: CPU ns per invoke as CPU ns per Pi 4 (A72) instruction of each op kind, fitted on
    whole-model times (no per-kernel profile here); the range is the held-out files' error."""
    groups = [("conv", "conv1x1"), ("dwconv",), ("softmax", "quantize", "argmax"),
              ("resize", "elementwise", "softmax_f32", "other")]

    def feat(name: str) -> list[float]:
        k = est.instructions(rows[name], "pi4")
        return [sum(k[g] for g in grp) for grp in groups] + [float(len(rows[name])), 1.0]

    train = [e for e in entries if not e["model"].startswith(heldout_prefix)]
    a = np.array([feat(e["model"]) for e in train])
    b = np.array([e["instructions"] for e in train], dtype=float)
    x = _nnls(a / b[:, None], np.ones(len(b)))  # relative errors
    coef = {k: float(x[i]) for i, grp in enumerate(groups) for k in grp} | {"ops": float(x[4]),
                                                                            "invoke": float(x[5])}
    errs = [float(np.array(feat(e["model"])) @ x / e["instructions"] - 1) for e in entries
            if e["model"].startswith(heldout_prefix)] or [0.0]
    return {"basis": "pi4", "coefficients": coef, "heldout_error": [round(min(min(errs), 0.0), 3),
                                                                     round(max(max(errs), 0.0), 3)],
            "fitted_on": sorted(e["model"] for e in train)}


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares with coefficients >= 0 (drop the most negative one until none is)."""
    active = list(range(a.shape[1]))
    x = np.zeros(a.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(a[:, active], b, rcond=None)
        if (sol >= 0).all():
            x[:] = 0
            x[active] = sol
            return x
        active.pop(int(np.argmin(sol)))
    return x


def _load_counts(models_dir: Path) -> dict[str, dict]:
    """Every counts-*.json of MODELS_DIR; groups redone from the stored profile where there is one."""
    data = {}
    for path in sorted(models_dir.glob("counts-*.json")):
        data.update(json.loads(path.read_text()))
    for e in data.values():
        if "kernels" in e:
            e["groups"] = _groups(e["kernels"])
    return data


def fit(models_dir: Path, heldout_prefix: str) -> None:
    data = _load_counts(models_dir)
    rows = {}
    for entry in data.values():
        if entry["model"] not in rows:
            rows[entry["model"]] = op_rows(read_tflite(models_dir / entry["model"]))
    devices = {}
    heldout: dict[str, dict] = {}
    for device, core in CORES.values():
        entries = [e for e in data.values() if e["cpu"] == core]
        train = [e for e in entries if not e["model"].startswith(heldout_prefix)]
        if not train:
            continue
        feats = [features(rows[e["model"]], PAD[device]) for e in train]
        coef: dict[str, float] = {}
        for kind in KINDS:
            if kind == "other":
                continue
            per = "macs" if kind in ("conv", "conv1x1", "dwconv") else "pixels"
            cols = [f"{kind}.{per}", f"{kind}.elements"]
            a = np.array([[f.get(c, 0.0) for c in cols] for f in feats])
            b = np.array([e["groups"].get(kind, 0.0) for e in train])
            if not a.any():
                continue
            # Relative errors matter: weight each model by 1/its count, so small ones count too.
            w = 1.0 / np.maximum(b, 1e5)
            coef.update(dict(zip(cols, _nnls(a * w[:, None], b * w).tolist())))
        a = np.array([[f.get("other.elements", 0.0), f["ops"], 1.0] for f in feats])
        b = np.array([e["groups"].get("rest", 0.0) for e in train])
        w = 1.0 / np.maximum(b, 1e5)
        coef.update(dict(zip(["other.elements", "ops", "invoke"], _nnls(a * w[:, None], b * w).tolist())))
        refs = []
        for name, ms in PUBLISHED.items():
            e = next(e for e in entries if e["model"] == f"{name}_224_int8.tflite")
            refs.append({"name": f"Keras {name} 224² int8", "instructions": e["instructions"],
                         "ms": ms if device == "pi4" else round(ms / PI5_SPEEDUP, 3),
                         "ms_source": "XNNPACK README, Raspberry Pi table, RPi 4 (BCM2711, ARM64), INT8, "
                                      "multi-threaded, 2022-02-08" + (
                                          "" if device == "pi4" else
                                          f"; divided by {PI5_SPEEDUP:.2f} (TFLite SSD-MobileNetV2 Pi 4 "
                                          "112.6 ms -> Pi 5 23.5 ms, as quoted in edgeseg issue 15)")})
        devices[device] = {"core": core, "pad": PAD[device], "coefficients": coef, "serial_kinds": SERIAL_KINDS,
                           "published_threads": 4, "references": refs,
                           "fitted_on": sorted(e["model"] for e in train)}
        for e in entries:
            if e["model"].startswith(heldout_prefix):
                h = heldout.setdefault(e["model"], {"rows": [r.to_list() for r in rows[e["model"]]]})
                h[device] = e["instructions"]
    x86 = [e for e in data.values() if e["cpu"] == "x86"]
    if x86:
        COST_FILE.write_text(json.dumps({"devices": devices}))  # the x86 fit stands on the pi4 model
        est.cost_data.cache_clear()
        import platform

        fit_ = _fit_x86(x86, rows, heldout_prefix)
        devices["x86"] = {"core": _cpu_name() or platform.machine(), "pad": PAD["x86"], "unit": "cpu_ns",
                          "serial_kinds": SERIAL_KINDS, "published_threads": 1, **fit_}
        for e in x86:
            if e["model"].startswith(heldout_prefix):
                heldout.setdefault(e["model"], {"rows": [r.to_list() for r in rows[e["model"]]]})["x86"] = \
                    e["instructions"]
    cost = {
        "about": "edgeseg Pi cost model: instructions per op kind fitted on emulated counts "
                 "(benchmarks/pi_cost_fit.py, benchmarks/a72_count.py: qemu-user 7.2, one thread, "
                 "ai-edge-litert 2.3.0 aarch64 wheel, XNNPACK). See edgeseg/device/estimate.py.",
        "devices": devices,
        "plan": _plan_tables(models_dir),
    }
    COST_FILE.write_text(json.dumps(cost, indent=1) + "\n")
    HELDOUT_FILE.parent.mkdir(parents=True, exist_ok=True)
    HELDOUT_FILE.write_text(json.dumps({
        "about": "Instructions per invoke of int8 models the cost model was NOT fitted on, counted by "
                 "benchmarks/a72_count.py invoke (qemu-aarch64 7.2 -cpu cortex-a72 = pi4 / cortex-a76 = pi5, "
                 "one thread, one warm-up invoke, ai-edge-litert 2.3.0); x86: nanoseconds of thread CPU time, "
                 "min of 30 invokes, one thread, ai-edge-litert 2.3.0 on this Xeon (pi_cost_fit.py time). "
                 "Models from edgeseg build + convert --int8; rows are edgeseg.device.estimate.op_rows of each file.",
        "models": heldout}, indent=1) + "\n")
    _report(data, rows, heldout_prefix)


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def _plan_tables(models_dir: Path) -> dict[str, list]:
    """Op rows of every preset × alpha × classes model at 224² (`edgeseg plan` scales them)."""
    tables = {}
    for path in sorted(models_dir.glob("*_k*_224.tflite")):
        if path.name.startswith("heldout"):
            continue
        tables[path.stem] = [r.to_list() for r in op_rows(read_tflite(path))]
    return tables


def _report(data: dict, rows: dict, heldout_prefix: str) -> None:
    est.cost_data.cache_clear()
    for e in sorted(data.values(), key=lambda e: (e["cpu"], e["model"])):
        device = {"cortex-a72": "pi4", "cortex-a76": "pi5"}.get(e["cpu"], e["cpu"])
        got = sum(est.instructions(rows[e["model"]], device).values())
        tag = "HELD-OUT" if e["model"].startswith(heldout_prefix) else "fit"
        print(f"{tag:8} {device} {e['model']:<40} counted {e['instructions'] / 1e6:9.2f} M  "  # x86: ms
              f"model {got / 1e6:9.2f} M  {100 * (got / e['instructions'] - 1):+6.1f} %")


def plot(models_dir: Path, out: Path) -> None:
    """Stacked bars: where each held-out model's emulated instructions go, by kernel group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = _load_counts(models_dir)
    entries = sorted((e for e in data.values() if e["model"].startswith("heldout_") and e["cpu"] != "x86"),
                     key=lambda e: (e["cpu"], e["model"]))
    groups = ["conv", "conv1x1", "dwconv", "resize", "softmax", "quantize", "argmax", "elementwise",
              "softmax_f32", "rest"]
    labels = {"conv": "3×3 conv (igemm)", "conv1x1": "1×1 conv (gemm)", "dwconv": "depthwise",
              "resize": "resize", "softmax": "softmax (TFLite builtin)", "quantize": "quantize (builtin)",
              "argmax": "argmax (builtin)", "elementwise": "logistic, (de)quantize (XNNPACK)",
              "softmax_f32": "float32 softmax (XNNPACK)", "rest": "other"}
    colors = dict(zip(groups, plt.get_cmap("tab10").colors))
    presets = ["realtime", "seed"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, preset in zip(axes, presets):
        mine = [e for e in entries if e["model"][8:].startswith(preset)]
        names = [f"{e['cpu'].replace('cortex-', '')}  {e['model'][8:-7]}" for e in mine]
        left = np.zeros(len(mine))
        for g in groups:
            v = np.array([e["groups"].get(g, 0.0) / 1e6 for e in mine])
            if v.any():
                ax.barh(names, v, left=left, label=labels[g], color=colors[g])
                left += v
        ax.set_xlabel("instructions per invoke, millions")
        ax.set_title(f"{preset} preset (int8)")
        ax.invert_yaxis()
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Where the instructions go, per XNNPACK / TFLite kernel: emulated Cortex-A72 (Pi 4) and "
                 "A76 (Pi 5), qemu-user, one thread", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["count", "time", "fit", "plot", "tables"])
    p.add_argument("models_dir", type=Path)
    p.add_argument("--work", type=Path, default=Path("/tmp/edgeseg-arm64"))
    p.add_argument("--cpu", nargs="+", default=["a72", "a76"], choices=sorted(CORES))
    p.add_argument("--heldout-prefix", default="heldout_")
    args = p.parse_args()
    if args.command == "count":
        count(args.models_dir, args.work.resolve(), args.cpu)
    elif args.command == "time":
        time_here(args.models_dir)
    elif args.command == "tables":  # the fitted coefficients stand: they price op kinds, not presets
        cost = json.loads(COST_FILE.read_text())
        cost["plan"] = _plan_tables(args.models_dir)
        COST_FILE.write_text(json.dumps(cost, indent=1) + "\n")
    elif args.command == "plot":
        plot(args.models_dir, REPO / "benchmarks" / "pi_kernels.png")
    else:
        fit(args.models_dir, args.heldout_prefix)


if __name__ == "__main__":
    main()
