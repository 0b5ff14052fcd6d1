"""Count the Cortex-A72 / A76 instructions a model (or the whole camera loop) executes, under qemu-user.

    python benchmarks/a72_count.py setup [--work DIR]
    python benchmarks/a72_count.py invoke M.tflite [M2.tflite ...] [--cpu a72|a76] [--runs 2] [--profile]
    python benchmarks/a72_count.py pipeline M.tflite [--frame 640x480] [--image photo.jpg] [--cpu a72]
    python benchmarks/a72_count.py references [--cpu a72]     # Keras MobileNet v1/v2 224², int8

The aarch64 ai-edge-litert / numpy / OpenCV wheels (and edgeseg from this checkout) run under
Debian's dynamically linked `qemu-aarch64` 7.2 (the static one cannot load plugins) with
`-cpu cortex-a72` (Raspberry Pi 4) or `-cpu cortex-a76` (Raspberry Pi 5, with dot product), and the
TCG plugin in benchmarks/qemu_plugin/insn_count.c counts the guest instructions between the marks
benchmarks/qemu_guest.py sets around each stage. The guest sees a /proc/cpuinfo naming the core
(CPU part 0xd08 / 0xd0b), which is what XNNPACK reads to pick its core-specific kernels.

Instruction counts are deterministic (two runs agree to within 0.01 %); they are not times.
benchmarks/pi_estimate.py turns them into estimated Pi milliseconds. One thread always: the
plugin's counter is exact only for a single-threaded guest.

`setup` needs root once (apt-get: qemu-user, debootstrap, gcc, libglib2.0-dev; a deb-src line for
Debian's qemu source, whose include/qemu/qemu-plugin.h is QEMU 7.2.0's, checked by SHA-256) and
builds, under --work (default /tmp/edgeseg-arm64, or $EDGESEG_ARM64_WORK): rootfs/ and
site-numpy2/ (by deploy/test-arm64-emulated.sh --prepare-only), cpu-a72/ and cpu-a76/ (the root
with that core's cpuinfo) and plugin/libinsn_count.so.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORK = Path(os.environ.get("EDGESEG_ARM64_WORK", "/tmp/edgeseg-arm64"))
# include/qemu/qemu-plugin.h of QEMU 7.2.0, from Debian's qemu_7.2+dfsg.orig.tar.xz (bookworm).
PLUGIN_HEADER_SHA256 = "19f277b037d05a8bcb5069f2f81a465d177208e5903048a915c56627d4c3748e"
# What `cat /proc/cpuinfo` prints on the boards: Pi 4 (BCM2711, Cortex-A72 r0p3) and
# Pi 5 (BCM2712, Cortex-A76 r4p1). XNNPACK's cpuinfo reads the part number from here.
CPUS = {
    "a72": ("cortex-a72", "0x0", "0xd08", "3", "fp asimd evtstrm crc32 cpuid"),
    "a76": ("cortex-a76", "0x4", "0xd0b", "1", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp "
            "asimdhp cpuid asimdrdm lrcpc dcpop asimddp"),
}


def die(message: str) -> None:
    sys.exit(f"error: {message}")


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def setup(work: Path) -> None:
    """The arm64 root, the aarch64 wheels, one root per core, and the plugin."""
    need = {"qemu-aarch64": "qemu-user", "debootstrap": "debootstrap", "gcc": "gcc",
            "pkg-config": "pkg-config"}
    missing = [pkg for exe, pkg in need.items() if not shutil.which(exe)]
    if not shutil.which("pkg-config") or subprocess.run(["pkg-config", "--exists", "glib-2.0"]).returncode:
        missing.append("libglib2.0-dev")
    if missing:
        _run(["apt-get", "install", "-y", "--no-install-recommends", *missing])
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # its pip
    _run(["bash", str(REPO / "deploy/test-arm64-emulated.sh"), "--prepare-only", "--work", str(work)], env=env)
    for key in CPUS:
        cpu_root(work, key)
    build_plugin(work)
    print(f"ready: {work}")


def cpu_root(work: Path, key: str) -> Path:
    """work/cpu-KEY: the arm64 root (symlinked) with a /proc/cpuinfo of that core (qemu's -L)."""
    root, prefix = work / "rootfs", work / f"cpu-{key}"
    (prefix / "proc").mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        link = prefix / entry.name
        if entry.name != "proc" and not link.is_symlink():
            link.symlink_to(entry.resolve() if not entry.is_symlink() else os.readlink(entry))
    _, variant, part, revision, features = CPUS[key]
    lines = []
    for i in range(4):
        lines += [f"processor\t: {i}", "BogoMIPS\t: 108.00", f"Features\t: {features}",
                  "CPU implementer\t: 0x41", "CPU architecture: 8", f"CPU variant\t: {variant}",
                  f"CPU part\t: {part}", f"CPU revision\t: {revision}", ""]
    (prefix / "proc/cpuinfo").write_text("\n".join(lines) + "\n")
    return prefix


def _plugin_header(work: Path) -> Path:
    header = work / "plugin/qemu-plugin.h"
    if not header.exists():
        src = work / "plugin/src"
        src.mkdir(parents=True, exist_ok=True)
        got = subprocess.run(["apt-get", "source", "--download-only", "qemu"], cwd=src,
                             capture_output=True, text=True)
        tarballs = sorted(src.glob("qemu_7.2*.orig.tar.xz"))
        if got.returncode or not tarballs:
            die("cannot fetch Debian's qemu 7.2 source for qemu-plugin.h: add "
                "'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                "http://deb.debian.org/debian bookworm main' to /etc/apt/sources.list.d/, "
                "apt-get update, and run setup again")
        _run(["tar", "xJf", str(tarballs[-1]), "-C", str(src), "--wildcards", "*/include/qemu/qemu-plugin.h"])
        shutil.copy(next(src.glob("*/include/qemu/qemu-plugin.h")), header)
    digest = hashlib.sha256(header.read_bytes()).hexdigest()
    if digest != PLUGIN_HEADER_SHA256:
        die(f"{header} is not QEMU 7.2.0's qemu-plugin.h (sha256 {digest}); delete it and run setup again")
    return header


def build_plugin(work: Path) -> Path:
    header = _plugin_header(work)
    out = work / "plugin/libinsn_count.so"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "glib-2.0"], check=True,
                           capture_output=True, text=True).stdout.split()
    _run(["gcc", "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-I", str(header.parent),
          str(REPO / "benchmarks/qemu_plugin/insn_count.c"), "-o", str(out), *flags])
    return out


def run_guest(work: Path, cpu: str, mode: str, model: Path, runs: int, *, threads: int = 1,
              profile: bool = False, frame: str = "640x480", image: str | None = None) -> dict[str, Any]:
    """Run benchmarks/qemu_guest.py under qemu with the plugin; its JSON plus the plugin's profile."""
    plugin, prefix = work / "plugin/libinsn_count.so", work / f"cpu-{cpu}"
    if not plugin.exists() or not prefix.exists():
        die(f"no emulator set up in {work}: run `python benchmarks/a72_count.py setup --work {work}` first")
    with tempfile.TemporaryDirectory(prefix="a72count-") as tmp:
        counts = Path(tmp) / "counts.txt"
        opts = f"out={counts}" + (",profile=on" if profile else "")
        cmd = ["qemu-aarch64", "-cpu", CPUS[cpu][0], "-L", str(prefix), "-plugin", f"{plugin},{opts}",
               str(prefix / "usr/bin/python3.11"), str(REPO / "benchmarks/qemu_guest.py"), mode, str(model),
               "--counts", str(counts), "--runs", str(runs), "--threads", str(threads), "--frame", frame]
        cmd += ["--profile"] if profile else []
        cmd += ["--image", str(Path(image).resolve())] if image else []
        env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONPATH": f"{REPO}:{work / 'site-numpy2'}", "TF_CPP_MIN_LOG_LEVEL": "2"}
        got = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if got.returncode:
            die(f"the emulated run of {model} failed:\n{got.stderr[-3000:]}")
        result = json.loads(got.stdout)
        result["cpu"] = CPUS[cpu][0]
        if profile:
            result["kernels"] = _symbolize(counts, result.pop("maps"), runs)
        else:
            result.pop("maps")
    return result


def _symbols(path: str) -> tuple[list[int], list[str], list[tuple[int, int, int]]]:
    """Sorted (address, name) of a shared object's functions, and its loadable segments
    (file offset, size, virtual address), from its symbol table and program headers."""
    got = subprocess.run(["nm", "-n", "--defined-only", path], capture_output=True, text=True)
    addrs, names = [], []
    for line in got.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            addrs.append(int(parts[0], 16))
            names.append(parts[2])
    segments = []
    for line in subprocess.run(["readelf", "-lW", path], capture_output=True, text=True).stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == "LOAD":
            segments.append((int(parts[1], 16), int(parts[4], 16), int(parts[2], 16)))
    return addrs, names, segments


def _symbolize(counts: Path, maps: str, runs: int) -> list[tuple[str, str, float]]:
    """Instructions per invoke by (library, function), from the plugin's per-block profile."""
    regions = []
    for line in maps.splitlines():
        parts = line.split()
        if len(parts) >= 6 and "x" in parts[1]:
            lo, hi = (int(v, 16) for v in parts[0].split("-"))
            regions.append((lo, hi, int(parts[2], 16), parts[5]))
    regions.sort()
    starts = [r[0] for r in regions]
    per_pc: collections.Counter = collections.Counter()
    keep = False
    for line in counts.read_text().splitlines():
        if line.startswith("profile "):
            keep = line.split()[1] == "1"
        elif keep and line.startswith("pc "):
            _, pc, n = line.split()
            per_pc[int(pc, 16)] += int(n)
    tables: dict[str, tuple[list[int], list[str], list[tuple[int, int, int]]]] = {}
    out: collections.Counter = collections.Counter()
    for pc, n in per_pc.items():
        i = bisect.bisect_right(starts, pc) - 1
        if i < 0 or pc >= regions[i][1]:
            out[("?", hex(pc))] += n
            continue
        lo, _, offset, path = regions[i]
        if path not in tables:
            tables[path] = _symbols(path) if os.path.exists(path) else ([], [], [])
        addrs, names, segments = tables[path]
        addr = pc - lo + offset  # the file offset; the symbols are in link-time addresses
        for seg_offset, size, vaddr in segments:
            if seg_offset <= addr < seg_offset + size:
                addr += vaddr - seg_offset
                break
        j = bisect.bisect_right(addrs, addr) - 1
        out[(os.path.basename(path), names[j] if j >= 0 else hex(addr))] += n
    return [(lib, fn, n / runs) for (lib, fn), n in out.most_common()]


def _print_stages(result: dict[str, Any]) -> None:
    by: dict[str, list[int]] = collections.defaultdict(list)
    for name, n in result["stages"]:
        by[name].append(n)
    print(f"{result['model']}  ({result['cpu']}, {result['threads']} thread, {result['mode']})")
    for name, ns in by.items():
        spread = (max(ns) - min(ns)) / max(max(ns), 1) * 100
        print(f"  {name:<14} {sum(ns) / len(ns) / 1e6:10.3f} M instructions  "
              f"(runs: {', '.join(f'{n / 1e6:.3f}' for n in ns)}; spread {spread:.3f} %)")
    for lib, fn, n in result.get("kernels", [])[:25]:
        print(f"    {n / 1e6:9.3f} M  {fn}  [{lib}]")


def references(work: Path, cpu: str, runs: int, out_dir: Path) -> list[dict[str, Any]]:
    """Keras MobileNet v1 / v2 (alpha 1, 224², 1000 classes), full int8 per-channel, counted.

    The models XNNPACK's published Pi figures are for (random weights, as end2end-bench uses).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in ("mobilenet_v1", "mobilenet_v2"):
        path = out_dir / f"{name}_224_int8.tflite"
        if not path.exists():
            path.write_bytes(_keras_int8(name))
        results.append(run_guest(work, cpu, "invoke", path, runs))
    return results


def _keras_int8(name: str) -> bytes:
    import numpy as np
    import tensorflow as tf

    build = {"mobilenet_v1": tf.keras.applications.MobileNet, "mobilenet_v2": tf.keras.applications.MobileNetV2}
    tf.keras.utils.set_random_seed(66)
    model = build[name](input_shape=(224, 224, 3), alpha=1.0, weights=None, classes=1000)
    rng = np.random.default_rng(66)

    def calib():
        for _ in range(8):
            yield [rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = calib
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["setup", "invoke", "pipeline", "references"])
    p.add_argument("models", nargs="*", type=Path)
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help="emulator folder (setup makes it)")
    p.add_argument("--cpu", choices=sorted(CPUS), default="a72", help="a72: Pi 4; a76: Pi 5")
    p.add_argument("--runs", type=int, default=2, help="counted runs (after one warm-up)")
    p.add_argument("--profile", action="store_true", help="instructions per function (XNNPACK kernel)")
    p.add_argument("--frame", default="640x480", help="pipeline: camera frame W×H")
    p.add_argument("--image", help="pipeline: a photo as the frame (default: a synthetic scene)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    work = args.work.resolve()
    if args.command == "setup":
        setup(work)
        return
    if args.command == "references":
        results = references(work, args.cpu, args.runs, work / "references")
    else:
        if not args.models:
            die(f"give a .tflite model: python benchmarks/a72_count.py {args.command} MODEL.tflite")
        for m in args.models:
            if not m.is_file():
                die(f"{m}: no such model file")
        results = [run_guest(work, args.cpu, args.command, m.resolve(), args.runs, profile=args.profile,
                             frame=args.frame, image=args.image) for m in args.models]
    for r in results:
        _print_stages(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
