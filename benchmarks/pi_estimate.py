"""Raspberry Pi 4 / Pi 5 int8 latency ESTIMATES from published anchors: a compute and a memory term.

    python benchmarks/pi_estimate.py [--sizes 224,320,416] [--classes 4] [--json out.json]

Model: latency = MACs / C + bytes moved / B, per frame, int8, 4 threads (XNNPACK).
C (GMAC/s) and B (GB/s) of the Pi 4 are the two unknowns that make this formula
reproduce both published XNNPACK figures for the Pi 4 (MobileNet v1 and v2, int8,
224², ARM64): v1 has many MACs per byte, v2 few, so together they separate the
terms. The Pi 5 divides the Pi 4's time by the published Pi 4 → Pi 5 speed-up of
a TFLite SSD-MobileNetV2 (112.6 → 23.5 ms, 4.79×) on both terms (optimistic end), or
on the compute term only with memory 1.33× faster (LPDDR4X-4267 vs LPDDR4-3200, both
32-bit: the conservative end). Every figure this prints is an estimate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

# Published anchors. XNNPACK README, "Raspberry Pi" table (benchmarked Feb 8, 2022 with
# end2end-bench, multi-threaded, randomized weights, per-channel int8), column
# "RPi 4 (BCM2711, ARM64)": INT8 MobileNet v1 1.0X 24 ms, v2 1.0X 17 ms (FP32: 77, 46 ms).
XNNPACK_PI4_INT8_MS = {"mobilenet_v1": 24.0, "mobilenet_v2": 17.0}
XNNPACK_PI4_FP32_MS = {"mobilenet_v1": 77.0, "mobilenet_v2": 46.0}
# TFLite SSD-MobileNetV2 on a Raspberry Pi 4 and a Pi 5 (quoted in edgeseg issue 15 from a
# published benchmark; re-measure on a board to confirm).
SSD_MOBILENET_V2_MS = {"pi4": 112.6, "pi5": 23.5}
# LPDDR4-3200 (Pi 4) and LPDDR4X-4267 (Pi 5), both on a 32-bit bus: the board specs.
DRAM_MTS = {"pi4": 3200, "pi5": 4267}


def traffic_of(model: Any) -> dict[str, int]:
    from edgeseg.model.macs import count_traffic

    return count_traffic(model)


def anchor_profiles() -> dict[str, dict[str, int]]:
    """MACs and int8 bytes per frame of Keras' MobileNet v1 / v2 (224², with top), as benchmarked."""
    import keras

    return {"mobilenet_v1": traffic_of(keras.applications.MobileNet(weights=None)),
            "mobilenet_v2": traffic_of(keras.applications.MobileNetV2(weights=None))}


def fit_pi4(profiles: dict[str, dict[str, int]]) -> dict[str, float]:
    """Solve ``ms = MACs / C + bytes / B`` for the two Pi 4 anchors: C in GMAC/s, B in GB/s."""
    import numpy as np

    names = list(XNNPACK_PI4_INT8_MS)
    a = np.array([[profiles[n]["macs"] / 1e6, profiles[n]["bytes"] / 1e6] for n in names])
    t = np.array([XNNPACK_PI4_INT8_MS[n] for n in names])
    ms_per_mmac, ms_per_mb = np.linalg.solve(a, t)
    if ms_per_mmac <= 0 or ms_per_mb <= 0:
        raise SystemExit("the anchors do not separate a compute and a memory term")
    return {"gmacs": 1.0 / ms_per_mmac, "gbs": 1.0 / ms_per_mb}


def estimate(traffic: dict[str, int], pi4: dict[str, float]) -> dict[str, Any]:
    """Estimated ms on a Pi 4 (one value) and a Pi 5 (optimistic, conservative), with the terms."""
    compute = traffic["macs"] / (pi4["gmacs"] * 1e6)
    memory = traffic["bytes"] / (pi4["gbs"] * 1e6)
    speedup = SSD_MOBILENET_V2_MS["pi4"] / SSD_MOBILENET_V2_MS["pi5"]
    dram = DRAM_MTS["pi5"] / DRAM_MTS["pi4"]
    return {"pi4_ms": compute + memory, "pi4_compute_ms": compute, "pi4_memory_ms": memory,
            "pi5_ms": ((compute + memory) / speedup, compute / speedup + memory / dram)}


def preset_rows(sizes: list[int], classes: int, pi4: dict[str, float]) -> list[dict[str, Any]]:
    """One estimate per preset × input size (softmax deployment head, batch 1)."""
    import keras

    from edgeseg.config import ModelConfig, preset
    from edgeseg.model.build import build_model

    rows = []
    for name in ("seed", "realtime"):
        for size in sizes:
            keras.backend.clear_session()
            cfg = ModelConfig(n_classes=classes, height=size, width=size, **preset(name))
            tr = traffic_of(build_model(cfg, batch_size=1, head="softmax"))
            rows.append({"preset": name, "size": size, "gmacs": tr["macs"] / 1e9,
                         "mbytes": tr["bytes"] / 1e6, **estimate(tr, pi4)})
    return rows


def _ms(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _fps(ms: float) -> str:
    return f"{1000 / ms:.0f}" + (" ✅" if ms <= 100 else "")


def markdown(rows: list[dict[str, Any]], pi4: dict[str, float],
             profiles: dict[str, dict[str, int]]) -> str:
    """The RESULTS.md section: the fitted terms, the anchors reproduced, then the estimates."""
    lines = ["| preset | input | GMACs | int8 MB moved | Pi 4 ms (est.) | Pi 4 compute + memory | "
             "Pi 4 fps (est.) | Pi 5 ms (est.) | Pi 5 fps (est.) |", "|" + "---|" * 9]
    for r in rows:
        lo, hi = r["pi5_ms"]
        lines.append(f"| {r['preset']} | {r['size']}² | {r['gmacs']:.2f} | {r['mbytes']:.1f} | "
                     f"{_ms(r['pi4_ms'])} | {_ms(r['pi4_compute_ms'])} + {_ms(r['pi4_memory_ms'])} | "
                     f"{_fps(r['pi4_ms'])} | {_ms(lo)}–{_ms(hi)} | {_fps(hi)}–{1000 / lo:.0f} |")
    v1, v2 = profiles["mobilenet_v1"], profiles["mobilenet_v2"]
    lines += ["", f"Fitted Pi 4 terms (int8, 4 threads): C = {pi4['gmacs']:.1f} GMAC/s, "
              f"B = {pi4['gbs']:.2f} GB/s effective. Anchor profiles counted by `edgeseg.model.macs`: "
              f"MobileNet v1 {v1['macs'] / 1e6:.0f} M MACs, {v1['bytes'] / 1e6:.1f} MB; "
              f"v2 {v2['macs'] / 1e6:.0f} M MACs, {v2['bytes'] / 1e6:.1f} MB (224², with top)."]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="224,320,416")
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    profiles = anchor_profiles()
    pi4 = fit_pi4(profiles)
    rows = preset_rows([int(s) for s in a.sizes.split(",")], a.classes, pi4)
    print(markdown(rows, pi4, profiles))
    if a.json:
        a.json.write_text(json.dumps({"pi4_terms": pi4, "profiles": profiles, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
