"""One script, one run, side by side on one machine: the benchmark report of issue 7.

    python benchmarks/run_benchmarks.py --model TRAINED.keras --data VAL_DIR --out benchmarks/
        [--lite-model LITE.keras] [--quick] [--threads 2] [--size 416] [--banner TEXT]

Writes OUT/RESULTS.md (Markdown tables, the machine stated), OUT/results.json and the PNG
charts it links. Sections: (1) Keras vs TFLite float32/float16/dynamic/int8 at 416²;
(2) input size × alpha × decoder grid: MACs, int8 latency, GMAC/s; (3) the ``run``
pipeline vs raw invoke; (4) ai-edge-litert vs tflite-runtime 2.14 on the same files;
(5) Raspberry Pi 4/5 latency estimate from MACs; (6) seed vs lite decoder.
``--quick`` shrinks everything to test the script in a few minutes. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import bench_report
import numpy as np
from bench_common import LABELS, MODES, QUICK, T0, Plan, bench_p50, count_macs, describe, log, to_tflite
from bench_runtimes import runtimes

SECTIONS = ("formats", "grid", "pipeline", "runtimes", "pi", "lite")


def time_keras(model: Any, cfg: Any, plan: Plan) -> float:
    """Median ms of the Keras model under tf.function, batch 1, training=False."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False))
    x = tf.constant(np.random.default_rng(66).uniform(-1, 1, (1, cfg.height, cfg.width, 3))
                    .astype(np.float32))
    for _ in range(max(1, plan.warmup)):  # the first call traces
        fn(x).numpy()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < plan.runs or time.perf_counter() - start < plan.min_seconds:
        t = time.perf_counter()
        fn(x).numpy()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def accuracy(model: Path, data: Path, plan: Plan, work: Path, calib: Optional[str], tag: str,
             modes: tuple[str, ...] = MODES) -> dict[str, Any]:
    """mIoU and agreement with the Keras float model, per format, at the model's own size."""
    from edgeseg.verify.compare import compare

    out: dict[str, Any] = {}
    for mode in modes:
        path = to_tflite(model, work / f"{tag}_{mode}.tflite", mode, plan.calib_accuracy, calib)
        rep = compare(model, path, data, limit=plan.val_limit)
        out["keras"] = {"miou": rep.float_metrics.mean_iou, "agreement": 1.0}
        out[mode] = {"miou": rep.quant_metrics.mean_iou, "agreement": rep.pixel_agreement}
        out["images"] = rep.images
    return out


def formats(a: argparse.Namespace, plan: Plan, work: Path) -> dict[str, Any]:
    """§1: the trained model rebuilt at ``a.size``: Keras vs the four TFLite formats."""
    from edgeseg.model.build import build_model, copy_weights_by_name
    from edgeseg.model.io import load_model, save_model

    trained, cfg = load_model(a.model)
    big = cfg.with_(height=a.size, width=a.size)
    model = build_model(big)
    copied = copy_weights_by_name(trained, model)
    src = save_model(model, big, work / f"model{a.size}.keras")
    log(f"§1 {describe(big)}: {copied} layers' weights copied from {a.model}")
    paths = {m: to_tflite(src, work / f"model{a.size}_{m}.tflite", m, plan.calib_timing, a.calib)
             for m in MODES}
    ms: dict[str, list[float]] = {k: [] for k in ("keras", *MODES)}
    for r in range(plan.rounds):  # interleaved, so load changes hit every format alike
        ms["keras"].append(time_keras(model, big, plan))
        for m in MODES:
            ms[m].append(bench_p50(paths[m], plan, a.threads))
        log(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} ms" for k, v in ms.items()))
    best = {k: min(v) for k, v in ms.items()}
    sizes = {"keras": src.stat().st_size, **{m: p.stat().st_size for m, p in paths.items()}}
    rows = [{"format": LABELS[k], "key": k, "p50_ms": best[k], "vs_float32": best["float32"] / best[k],
             "vs_keras": best["keras"] / best[k], "size_mb": sizes[k] / 2**20,
             "size_ratio": sizes[k] / sizes["float32"]} for k in ("keras", *MODES)]
    log("§1 accuracy at the trained size")
    acc = accuracy(Path(a.model), Path(a.data), plan, work, a.calib, "trained")
    calib_desc = f"{a.calib or 'calibration/'} ({plan.calib_accuracy} images)"
    return {
        "size": a.size, "trained_size": cfg.height, "threads": a.threads, "runs": plan.runs,
        "warmup": plan.warmup, "min_seconds": plan.min_seconds, "rounds": plan.rounds,
        "model_desc": describe(big), "rows": rows, "paths": {k: str(v) for k, v in paths.items()},
        "accuracy": {LABELS[k]: v for k, v in acc.items() if k in LABELS}, "val_images": acc["images"],
        "calib_desc": calib_desc, "macs": count_macs(model),
        "weights_note": (f"Weights: the trained model's ({cfg.height}×{cfg.width}), copied by layer name "
                         f"into the same config rebuilt at {a.size}×{a.size} ({copied} layers; conv "
                         f"weights do not depend on the input size). The {a.size}² int8 file is "
                         f"calibrated on {plan.calib_timing} images (for timing only)."),
        "targets": {"int8_vs_float32": best["float32"] / best["int8"],
                    "int8_vs_keras": best["keras"] / best["int8"],
                    "int8_size": sizes["int8"] / sizes["float32"]},
        "config": big.to_dict(),
    }


def grid(a: argparse.Namespace, plan: Plan, work: Path, reuse: dict[tuple, Path]) -> dict[str, Any]:
    """§2: MACs, int8 latency and GMAC/s over size × alpha × decoder (random weights)."""
    import keras

    from edgeseg.model.build import build_model
    from edgeseg.model.io import load_model, save_model
    from edgeseg.model.macs import count_traffic

    _, cfg = load_model(a.model)
    rows = []
    for size in plan.sizes:
        for alpha in plan.alphas:
            for dec in ("seed", "lite", "fast"):
                c = cfg.with_(height=size, width=size, alpha=alpha, decoder=dec,
                              decoder_width=1.0 if dec == "seed" else 0.5)
                keras.backend.clear_session()
                model = build_model(c)
                macs = count_macs(model)
                moved = count_traffic(model)["bytes"]
                key = (size, alpha, dec, c.decoder_width)
                path = reuse.get(key)
                if path is None:
                    name = f"grid_{size}_a{alpha:g}_{dec}"
                    src = save_model(model, c, work / f"{name}.keras")
                    path = to_tflite(src, work / f"{name}_int8.tflite", "int8", plan.calib_timing, a.calib)
                ms = min(bench_p50(path, plan, a.threads) for _ in range(plan.rounds))
                desc = "seed" if dec == "seed" else f"{dec} (width 0.5)"
                rows.append({"size": size, "alpha": alpha, "decoder": dec, "decoder_desc": desc,
                             "tflite": str(path), "macs": macs["total"], "decoder_macs": macs["decoder"],
                             "p50_ms": ms, "bytes": moved,
                             "gmacs_per_s": macs["total"] / ms / 1e6})
                log(f"§2 {size}² alpha {alpha:g} {desc}: {macs['total'] / 1e9:.2f} GMACs, {ms:.1f} ms")
    return {"rows": rows, "calib_count": plan.calib_timing, "threads": a.threads}


def pipeline(a: argparse.Namespace, plan: Plan, work: Path, model: Path, n_classes: int) -> dict[str, Any]:
    """§3: ``run --no-display`` fps vs raw invoke, and per-stage times of the drawing pipeline."""
    import pipeline_efficiency as pe

    from edgeseg.data.synth import write_video
    from edgeseg.runtime.bench import bench_model, bench_pipeline

    video = work / "clip_640x480.mp4"
    if not video.exists():
        write_video(video, n_classes if 2 <= n_classes <= 8 else 4, plan.video_frames, 480, 640)
    rows = pe.efficiency(str(model), str(video), a.threads, plan.pipeline_repeats)
    eff = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    raw = bench_model(model, a.threads, runs=plan.runs, warmup=plan.warmup, min_seconds=plan.min_seconds)
    stages = bench_pipeline(model, str(video), raw.mean_ms, a.threads,
                            frames=plan.video_frames - 10, warmup=5)
    log(f"§3 efficiency {eff['efficiency_vs_bench']:.3f} (in-run {eff['efficiency_in_run']:.3f})")
    return {"model": f"{a.size}×{a.size} int8", "video": "640×480 mp4", "frames": plan.video_frames,
            "repeats": plan.pipeline_repeats, "efficiency": eff, "rows": rows, "stages": stages}


def lite(a: argparse.Namespace, plan: Plan, work: Path, seed_acc: Optional[dict[str, Any]],
         grid_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """§6: decoder MACs, seed vs lite, at each size; accuracy of a trained lite model if given."""
    import keras

    from edgeseg.model.build import build_model
    from edgeseg.model.io import load_model

    _, cfg = load_model(a.model)
    rows = []
    for size in sorted({*plan.sizes, a.size}):
        m = {}
        for dec in ("seed", "lite"):
            keras.backend.clear_session()
            c = cfg.with_(height=size, width=size, decoder=dec, decoder_width=0.5 if dec == "lite" else 1.0)
            m[dec] = count_macs(build_model(c))
        ms = {r["decoder"]: r["p50_ms"] for r in grid_rows if r["size"] == size and r["alpha"] == cfg.alpha}
        rows.append({"size": f"{size}²", "seed_ms": ms.get("seed"), "lite_ms": ms.get("lite"),
                     "seed_decoder_macs": m["seed"]["decoder"],
                     "lite_decoder_macs": m["lite"]["decoder"], "seed_total": m["seed"]["total"],
                     "lite_total": m["lite"]["total"], "ratio": m["seed"]["decoder"] / m["lite"]["decoder"]})
    out: dict[str, Any] = {"alpha": cfg.alpha, "macs": rows}
    if a.lite_model and seed_acc:
        _, lcfg = load_model(a.lite_model)
        acc = accuracy(Path(a.lite_model), Path(a.data), plan, work, a.calib, "lite", ("int8",))
        s_int8, s_keras = seed_acc[LABELS["int8"]], seed_acc[LABELS["keras"]]
        out["accuracy"] = [
            {"name": Path(a.model).name, "desc": describe(cfg), "float_miou": s_keras["miou"],
             "int8_miou": s_int8["miou"], "agreement": s_int8["agreement"]},
            {"name": Path(a.lite_model).name, "desc": describe(lcfg), "float_miou": acc["keras"]["miou"],
             "int8_miou": acc["int8"]["miou"], "agreement": acc["int8"]["agreement"]}]
        out["checks"] = {"miou_gap": 100 * (acc["keras"]["miou"] - s_keras["miou"]),
                         "agreement_gap": 100 * (acc["int8"]["agreement"] - s_int8["agreement"])}
    return out


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="trained .keras model (its config and weights)")
    ap.add_argument("--data", help="held-out dataset folder (val/ used when present)")
    ap.add_argument("--out", default="benchmarks", help="where RESULTS.md, results.json and PNGs go")
    ap.add_argument("--lite-model", help="a lite-decoder .keras trained on the same data (§6 accuracy)")
    ap.add_argument("--calib", help="calibration folder (default: calibration/)")
    ap.add_argument("--size", type=int, default=416, help="input size of §1 and §3 (default 416)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer runs, one grid size: a few minutes")
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--work", help="keep converted files here (default: a temporary folder)")
    ap.add_argument("--tflite-runtime-venv", default="/tmp/tfl214venv")
    ap.add_argument("--banner", help="a note shown at the top of RESULTS.md")
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="only re-write RESULTS.md and the charts from a results.json")
    a = ap.parse_args(argv)
    if a.render:
        results = json.loads(Path(a.render).read_text())
        results["banner"] = a.banner or results.get("banner")
        return _write(results, Path(a.out))
    if not (a.model and a.data):
        ap.error("--model and --data are required (except with --render)")
    only = set(a.only.split(",")) if a.only else set(SECTIONS)
    plan = QUICK if a.quick else Plan()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="edgeseg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    _setup_tensorflow(a.threads)
    results: dict[str, Any] = {"machine": bench_report.machine_info(), "plan": asdict(plan),
                               "command": " ".join(sys.argv[1:] if argv is None else argv),
                               "banner": a.banner or ("Quick run (--quick): few runs, one grid size; "
                                                      "not the reference figures." if a.quick else None)}
    try:
        _run(a, plan, work, only, results)
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_end"] = bench_report._loadavg()
    results["minutes"] = (time.monotonic() - T0) / 60
    _write(results, out)


def _write(results: dict[str, Any], out: Path) -> None:
    from edgeseg.atomic import write_json, write_text

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    write_text(out / "RESULTS.md", bench_report.render(results))
    pngs = bench_report.charts(results, out)
    log(f"wrote {out / 'RESULTS.md'}, results.json and {len(pngs)} charts")


def _run(a: argparse.Namespace, plan: Plan, work: Path, only: set[str], results: dict[str, Any]) -> None:
    from edgeseg.model.io import load_model

    _, cfg = load_model(a.model)
    section: Callable[[str], bool] = lambda name: name in only  # noqa: E731
    fmt = formats(a, plan, work) if section("formats") else None
    results["formats"] = fmt
    reuse: dict[tuple, Path] = {}
    int8 = None
    if fmt:
        int8 = Path(fmt["paths"]["int8"])
        reuse[(a.size, cfg.alpha, cfg.decoder, 1.0 if cfg.decoder == "seed" else cfg.decoder_width)] = int8
    if section("grid"):
        results["grid"] = grid(a, plan, work, reuse)
    if int8 is not None and section("pipeline"):
        results["pipeline"] = pipeline(a, plan, work, int8, cfg.n_classes)
    if fmt and section("runtimes"):
        r = runtimes(a, plan, {f"{a.size}² int8": int8, f"{a.size}² float32": Path(fmt["paths"]["float32"])})
        results["runtimes"], results["tflite_runtime_version"] = r, r.get("version")
    grid_rows = (results.get("grid") or {}).get("rows", [])
    if section("pi"):
        models = [{"name": f"{r['size']}², alpha {r['alpha']:g}, {r['decoder_desc']}", "macs": r["macs"],
                   "tflite": r["tflite"]} for r in grid_rows]
        results["pi"] = {"rows": bench_report.pi_estimate(models)}
    if section("lite"):
        results["lite"] = lite(a, plan, work, fmt["accuracy"] if fmt else None, grid_rows)


def _setup_tensorflow(threads: int) -> None:
    """Pin TensorFlow to ``threads`` intra-op threads before it starts (the Keras timing)."""
    from edgeseg.deps import tensorflow

    tf = tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


if __name__ == "__main__":
    from edgeseg.errors import EdgesegError

    try:
        main()
    except EdgesegError as e:  # a bad path or model: one line, no traceback
        sys.exit(f"error: {e}")
