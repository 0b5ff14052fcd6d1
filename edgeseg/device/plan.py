"""`edgeseg plan`: the presets × input sizes × alphas that reach a frame rate on a device, by estimate."""

from __future__ import annotations

from dataclasses import dataclass

from edgeseg.config import ALPHAS  # the encoder widths a model can be built with
from edgeseg.config import preset as preset_fields
from edgeseg.device.estimate import Estimate, OpRow, cost_data, estimate_rows
from edgeseg.errors import EdgesegError

SIZES = (224, 256, 288, 320, 352, 384, 416)
_BASE = 224  # the op tables in pi_cost.json are of 224×224 models

# Measured int8 mIoU of a configuration, where one was measured (synthetic scenes of
# `edgeseg data synth` at 128², 4 classes; benchmarks/RESULTS.md and the README).
MEASURED = {
    ("realtime", 0.5): "int8 mIoU 0.761 (README demo)",
    ("realtime", 0.25): "13 pts below α0.5 at 6 epochs (§6c)",
    ("seed", 0.5): "1/8-tap seed decoder: int8 0.619 (§6b)",
    ("realtime_1core", 0.5): "+1.6 pts vs realtime at its lr 5e-3, same CPU time (§6g)",
}
PRESETS = ("realtime", "realtime_1core", "seed")


@dataclass(frozen=True)
class Candidate:
    """One configuration and its estimate.

    Attributes:
        preset: ``seed``, ``realtime`` or ``realtime_1core``.
        alpha: MobileNet width multiplier.
        size: Input height = width, pixels.
        classes: Output classes.
        estimate: The :class:`edgeseg.device.estimate.Estimate` (pi4/pi5).
        measured: What is known of its accuracy, or ``""``.
    """

    preset: str
    alpha: float
    size: int
    classes: int
    estimate: Estimate
    measured: str

    @property
    def build_command(self) -> str:
        alpha = "" if preset_fields(self.preset)["alpha"] == self.alpha else f" --alpha {self.alpha:g}"
        return (f"edgeseg build --preset {self.preset}{alpha} -c {self.classes} --height {self.size} "
                f"--width {self.size} -o model.keras")

    @property
    def train_command(self) -> str:
        alpha = "" if preset_fields(self.preset)["alpha"] == self.alpha else f" --alpha {self.alpha:g}"
        return (f"edgeseg train --data DATA --preset {self.preset}{alpha} --classes {self.classes} "
                f"--height {self.size} --width {self.size} -o model.keras && "
                "edgeseg convert model.keras --int8 -o model.tflite")


def _tables_of(preset: str, alpha: float, classes: int) -> list[str]:
    """The names of the 224² tables ``rows_for`` reads for a configuration."""
    return [f"{preset}_a{alpha}_k2_224"] if classes == 2 else [f"{preset}_a{alpha}_k3_224",
                                                              f"{preset}_a{alpha}_k21_224"]


def rows_for(preset: str, alpha: float, classes: int, size: int) -> list[OpRow]:
    """Cost-model rows of a configuration, scaled from the shipped 224² tables.

    Every spatial size of these networks is the input's divided by a power of two, so output
    positions and elements scale with (size/224)². Two classes read the 2-class table as it
    is: its head is another graph (LOGISTIC of the logit difference, then DEQUANTIZE +
    QUANTIZE to uint8) than the softmax head of three or more classes. Three or more classes
    interpolate each op's sizes between the 3- and 21-class tables (linear in the class
    count; beyond 21, extrapolated), which must hold the same ops in the same order.

    Raises:
        EdgesegError: A configuration the cost model has no table for, a size that is not a
            multiple of 32, or two tables whose ops differ (tables made by different converters).
    """
    tables = cost_data()["plan"]
    names = _tables_of(preset, alpha, classes)
    missing = [n for n in names if n not in tables]
    if missing:
        raise EdgesegError(f"no cost table {', '.join(missing)} for preset {preset} alpha {alpha}, "
                           f"{classes} classes; known: {', '.join(sorted(tables))}.")
    if size % 32:
        raise EdgesegError(f"input size {size} must be a multiple of 32.")
    lo, hi = tables[names[0]], tables[names[-1]]
    ops_lo, ops_hi = [r[:2] for r in lo], [r[:2] for r in hi]
    if ops_lo != ops_hi:
        at = next((i for i, (a, b) in enumerate(zip(ops_lo, ops_hi)) if a != b), min(len(lo), len(hi)))
        raise EdgesegError(
            f"the cost tables {names[0]} ({len(lo)} ops) and {names[-1]} ({len(hi)} ops) differ at op {at} "
            f"({ops_lo[at] if at < len(lo) else 'none'} vs {ops_hi[at] if at < len(hi) else 'none'}), so "
            "they cannot be interpolated; remake both with one converter and run "
            "`python benchmarks/pi_cost_fit.py tables MODELS_DIR`.")
    s, t = (size / _BASE) ** 2, (classes - 3) / 18 if classes >= 3 else 0.0
    rows = []
    for a, b in zip(lo, hi):
        pixels, taps, cin, cout, elements = (x + (y - x) * t for x, y in zip(a[2:], b[2:]))
        rows.append(OpRow(a[0], a[1], round(pixels * s), round(taps), round(cin), round(cout), round(elements * s)))
    return rows


def candidates(device: str, threads: int, classes: int, sizes: tuple[int, ...] = SIZES) -> list[Candidate]:
    """Every preset × alpha × size with its estimate on ``device`` (pi4, pi5)."""
    if classes < 2:
        raise EdgesegError(f"--classes {classes} must be at least 2 (background included).")
    tables = cost_data()["plan"]
    out = []
    for preset in PRESETS:
        for alpha in ALPHAS:
            if any(n not in tables for n in _tables_of(preset, alpha, classes)):
                continue  # not in the shipped cost model
            for size in sizes:
                est = estimate_rows(rows_for(preset, alpha, classes, size), device, threads)
                out.append(Candidate(preset, alpha, size, classes, est, MEASURED.get((preset, alpha), "")))
    return out


def plan(device: str, fps: float, threads: int = 4, classes: int = 2,
         sizes: tuple[int, ...] = SIZES) -> tuple[list[Candidate], Candidate | None]:
    """The configurations whose estimated fps (central figure) reaches ``fps``, and the best of them.

    Best: the realtime presets before the seed (the seed's 1/16 tap does not learn from scratch
    in a CPU budget, RESULTS.md §6b/6c), then the widest alpha, then the largest input, then
    realtime before realtime_1core (its separable decoder buys input size on a slow core; at
    the same size the dense decoder is the safer fit, RESULTS.md §6e); alpha 0.25 only when
    nothing else fits (it cost 13 mIoU points, RESULTS.md §6c).

    Raises:
        EdgesegError: Unknown device, fps <= 0, threads < 1.
    """
    if fps <= 0:
        raise EdgesegError(f"--fps {fps} must be above 0.")
    reach = [c for c in candidates(device, threads, classes, sizes) if c.estimate.fps >= fps]
    reach.sort(key=lambda c: (c.preset == "seed", c.alpha == 0.25, -c.alpha, -c.size,
                              c.preset != "realtime"))
    return reach, (reach[0] if reach else None)
