"""Raspberry Pi 4 / Pi 5 int8 latency ESTIMATES of the presets, from emulated instruction counts.

    python benchmarks/pi_estimate.py [--sizes 224,320,416] [--classes 4] [--threads 4] [--json out.json]

Each figure is edgeseg's cost model (edgeseg/device/estimate.py, data edgeseg/device/pi_cost.json):
Cortex-A72 (Pi 4) / Cortex-A76 (Pi 5) instructions per invoke, fitted per op kind on counts of
the aarch64 LiteRT/XNNPACK wheel run under qemu-user with a counting plugin
(benchmarks/a72_count.py, benchmarks/pi_cost_fit.py), times the published ms per instruction of
Keras MobileNet v1 / v2 224² int8 counted the same way (XNNPACK README's Raspberry Pi table,
RPi 4 ARM64: 24 / 17 ms, multi-threaded; Pi 5: ÷ 4.79, the Pi 4 → Pi 5 speed-up of TFLite
SSD-MobileNetV2 112.6 → 23.5 ms quoted in edgeseg issue 15). The two references give the range.
Every figure this prints is an estimate, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgeseg.device.estimate import cost_data, estimate_rows  # noqa: E402
from edgeseg.device.plan import rows_for  # noqa: E402

PRESETS = {"seed": 1.0, "realtime": 0.5}  # preset -> its alpha


def preset_rows(sizes: list[int], classes: int, threads: int) -> list[dict[str, Any]]:
    rows = []
    for preset, alpha in PRESETS.items():
        for size in sizes:
            r: dict[str, Any] = {"preset": preset, "size": size, "classes": classes, "threads": threads}
            for device in ("pi4", "pi5"):
                e = estimate_rows(rows_for(preset, alpha, classes, size), device, threads)
                r[device] = {"instructions": e.instructions, "ms": e.ms, "ms_low": e.ms_low,
                             "ms_high": e.ms_high, "fps": e.fps}
            rows.append(r)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| preset | input | A72 instructions (M) | Pi 4 ms (est.) | Pi 4 fps (est.) | A76 instructions (M) "
             "| Pi 5 ms (est.) | Pi 5 fps (est.) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p4, p5 = r["pi4"], r["pi5"]
        lines.append(f"| {r['preset']} | {r['size']}×{r['size']} | {p4['instructions'] / 1e6:,.0f} | "
                     f"{p4['ms']:.1f} ({p4['ms_low']:.1f}–{p4['ms_high']:.1f}) | {p4['fps']:.0f} | "
                     f"{p5['instructions'] / 1e6:,.0f} | {p5['ms']:.1f} ({p5['ms_low']:.1f}–{p5['ms_high']:.1f}) "
                     f"| {p5['fps']:.0f} |")
    refs = []
    for device, dev in cost_data()["devices"].items():
        for ref in dev.get("references", ()):  # x86 has none: it was timed, not counted
            refs.append(f"{device}: {ref['name']} {ref['instructions'] / 1e6:.1f} M instructions = {ref['ms']:g} ms")
    return "\n".join(lines) + "\n\nReferences: " + "; ".join(refs) + "."


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="224,320,416")
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    rows = preset_rows([int(s) for s in a.sizes.split(",")], a.classes, a.threads)
    print(markdown(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
