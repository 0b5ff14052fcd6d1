"""Edge TPU: a pre-flight of which ops map, and ``edgetpu_compiler`` when it is installed."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.convert.edgetpu_rules import EDGETPU_PARAM_CACHE_BYTES, parameter_bytes, rules_markdown
from edgeseg.convert.targets import OpSupport, check_target
from edgeseg.errors import EdgesegError
from edgeseg.tflite.flatbuffer import TfliteModel, read_tflite

COMPILER = "edgetpu_compiler"


@dataclass(frozen=True)
class OpPlacement:
    """One op of the pre-flight: supported or not, and where it would run."""

    support: OpSupport
    device: str  # "Edge TPU" or "CPU"


@dataclass(frozen=True)
class EdgeTpuPreflight:
    """What the Edge TPU compiler would do with a model, predicted without it.

    The compiler maps one contiguous run of ops: it starts at the first supported
    op (unsupported ops before it, such as a float QUANTIZE at the input, stay on
    the CPU) and stops at the first unsupported op after that: every op from
    there on runs on the CPU, supported or not. Support is judged by op name,
    version, builtin options, tensor types, ranks and shapes against Coral's
    published rules (``edgeseg.convert.edgetpu_rules``), not by the compiler.
    """

    model: str
    ops: tuple[OpPlacement, ...]
    fallback_at: int | None  # index of the op where the CPU takes over for good
    parameter_bytes: int = 0  # constant tensors, against the ~8 MiB on-chip cache

    @property
    def edgetpu_ops(self) -> int:
        return sum(p.device == "Edge TPU" for p in self.ops)

    @property
    def unsupported(self) -> list[OpSupport]:
        return [p.support for p in self.ops if not p.support.supported]

    @property
    def fully_mapped(self) -> bool:
        return self.edgetpu_ops == len(self.ops)

    def summary(self) -> str:
        n = len(self.ops)
        if self.fully_mapped:
            return f"all {n} ops would run on the Edge TPU"
        text = f"{self.edgetpu_ops} of {n} ops would run on the Edge TPU"
        if self.fallback_at is not None:
            op = self.ops[self.fallback_at].support
            text += (f"; from op {op.index} ({op.op}: {op.reason}) on, the rest of the graph "
                     "falls back to the CPU")
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "summary": self.summary(), "total_ops": len(self.ops),
            "edgetpu_ops": self.edgetpu_ops, "fallback_at": self.fallback_at,
            "parameter_bytes": self.parameter_bytes, "compiler_run": False,
            "ops": [{**p.support.to_dict(), "device": p.device} for p in self.ops],
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Edge TPU pre-flight: {Path(self.model).name}", "",
            f"{self.summary()}.", "",
            "`edgetpu_compiler` was **not** run: this is a prediction from each op's name, "
            "version, builtin options, tensor types and shapes against Coral's published "
            "rules. Run `edgetpu_compiler -s` for the authoritative answer.", "",
            f"Parameters: {self.parameter_bytes / 2**20:.2f} MiB of constant data; the Edge "
            f"TPU caches about {EDGETPU_PARAM_CACHE_BYTES / 2**20:.0f} MiB on chip and streams "
            "the rest from host memory each inference (slower, still mapped) [cache].", "",
            *(["**Op versions and options were not read** (no TFLite schema: "
               "pip install ai-edge-litert), so they were not checked.", ""]
              if any(p.support.version == 0 for p in self.ops) else []),
            "| # | op | version | options | Edge TPU | runs on | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in self.ops:
            s = p.support
            opts = ", ".join(f"{k}={v}" for k, v in s.options.items()) or "-"
            lines.append(f"| {s.index} | {s.op} | {s.version or '?'} | {opts} | "
                         f"{'yes' if s.supported else 'no'} | {p.device} | {s.reason} |")
        lines += ["", "Sources of the rules:", *rules_markdown()]
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``<model>_edgetpu_preflight.md`` and ``.json`` into ``out_dir`` atomically."""
        from edgeseg.atomic import write_json, write_text

        stem = Path(out_dir) / f"{Path(self.model).stem}_edgetpu_preflight"
        md = write_text(stem.with_suffix(".md"), self.to_markdown())
        return md, write_json(stem.with_suffix(".json"), self.to_dict())


def edgetpu_preflight(model: str | Path | TfliteModel) -> EdgeTpuPreflight:
    """Predict, op by op, what the Edge TPU compiler maps and where the CPU takes over.

    Args:
        model: A .tflite path, or a model already read with ``read_tflite``.
    """
    m = model if isinstance(model, TfliteModel) else read_tflite(model)
    support = check_target(m, "edgetpu").ops
    start = next((i for i, s in enumerate(support) if s.supported), len(support))
    stop = next((i for i in range(start, len(support)) if not support[i].supported), None)
    end = len(support) if stop is None else stop
    ops = tuple(OpPlacement(s, "Edge TPU" if start <= i < end else "CPU")
                for i, s in enumerate(support))
    return EdgeTpuPreflight(str(m.path), ops, stop, parameter_bytes(m))


def compile_edgetpu(path: str | Path, out_dir: str | Path, timeout: float = 600) -> Path | None:
    """Run ``edgetpu_compiler`` on ``path`` when it is on PATH; keep its log.

    Returns:
        The ``<model>_edgetpu.tflite`` it wrote into ``out_dir``, or None when the
        compiler is not installed (the caller then writes the pre-flight report).

    Raises:
        EdgesegError: The compiler failed; the message names its log.
    """
    exe = shutil.which(COMPILER)
    if exe is None:
        return None
    src, out = Path(path), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"{src.stem}_edgetpu_compiler.log"
    try:
        proc = subprocess.run([exe, "-s", "-o", str(out), str(src)], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise EdgesegError(f"{COMPILER} did not finish in {timeout:.0f} s; "
                           "try a smaller input size.") from e
    from edgeseg.atomic import write_text

    write_text(log, f"$ {COMPILER} -s -o {out} {src}\n{proc.stdout}{proc.stderr}")
    result = out / f"{src.stem}_edgetpu.tflite"
    if proc.returncode != 0 or not result.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EdgesegError(f"{COMPILER} failed (exit {proc.returncode}: {tail[0]}); "
                           f"see {log}.")
    return result


def compiler_summary(log_text: str) -> dict[str, Any]:
    """The counts an ``edgetpu_compiler -s`` log reports, for the conversion report."""
    keys = {"Number of operations that will run on Edge TPU": "edgetpu_ops",
            "Number of operations that will run on CPU": "cpu_ops",
            "Number of Edge TPU subgraphs": "subgraphs"}
    out: dict[str, Any] = {}
    for line in log_text.splitlines():
        for text, key in keys.items():
            if line.strip().startswith(text):
                value = line.split(":")[-1].strip()
                out[key] = int(value) if value.isdigit() else value
    return out
