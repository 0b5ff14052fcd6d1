#!/usr/bin/env bash
# Run the edgeseg runtime on aarch64 under qemu user emulation, from an x86_64 Debian machine.
#
# Usage: deploy/test-arm64-emulated.sh MODEL.tflite [VIDEO] [--numpy1] [--work DIR]
#        deploy/test-arm64-emulated.sh --prepare-only [--work DIR]
#
# Builds a Debian Bookworm arm64 root (debootstrap, python3 + python3-numpy), downloads the
# aarch64 wheels edgeseg declares (ai-edge-litert, opencv-python-headless, numpy, ...),
# and runs, with the arm64 Python under qemu-aarch64-static emulating a Cortex-A72 (Pi 4):
# one invoke compared with this machine's x86_64 result, `edgeseg run` on VIDEO and
# `edgeseg bench`. --numpy1 uses Debian's NumPy 1.24 with numpy<2, as install-pi.sh does on a
# Pi with picamera2 from apt. Needs root for apt-get; scratch (about 500 MB) goes to
# --work (default /tmp/edgeseg-arm64). --prepare-only stops once the root ($WORK/rootfs) and the
# unpacked aarch64 wheels ($WORK/site-numpy2) are there: benchmarks/a72_count.py counts on them.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=/tmp/edgeseg-arm64
MODEL=""
VIDEO=""
NUMPY1=0
PREPARE_ONLY=0

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }

while (( $# )); do
    case "$1" in
        --numpy1) NUMPY1=1 ;;
        --prepare-only) PREPARE_ONLY=1 ;;
        --work) WORK="${2:?--work needs a folder}"; shift ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) if [[ -z "$MODEL" ]]; then MODEL="$1"; else VIDEO="$1"; fi ;;
    esac
    shift
done
if (( ! PREPARE_ONLY )); then
    [[ -f "$MODEL" ]] || die "give a .tflite model (with its .tflite.json): $0 MODEL [VIDEO]"
    MODEL="$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")"
fi
[[ -z "$VIDEO" ]] || VIDEO="$(cd "$(dirname "$VIDEO")" && pwd)/$(basename "$VIDEO")"
ROOT="$WORK/rootfs"
mkdir -p "$WORK"

if ! command -v debootstrap >/dev/null || { ((! PREPARE_ONLY)) && ! command -v qemu-aarch64-static >/dev/null; }; then
    say "installing qemu-user-static and debootstrap"
    apt-get install -y --no-install-recommends qemu-user-static debootstrap
fi

if [[ ! -x "$ROOT/usr/bin/python3.11" ]]; then
    say "debootstrap: Debian bookworm arm64 with python3 and python3-numpy in $ROOT"
    debootstrap --arch=arm64 --foreign --variant=minbase --include=python3,python3-numpy \
        bookworm "$ROOT" http://deb.debian.org/debian
    # --foreign only downloads the extra packages; unpacking them is enough to run Python.
    for deb in "$ROOT"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
    # What update-alternatives would have linked on a real system (NumPy needs BLAS).
    ln -sf blas/libblas.so.3 "$ROOT/usr/lib/aarch64-linux-gnu/libblas.so.3"
    ln -sf lapack/liblapack.so.3 "$ROOT/usr/lib/aarch64-linux-gnu/liblapack.so.3"
fi
# qemu-user passes the host's x86 /proc/cpuinfo through; the cpuinfo library in XNNPACK then
# finds no ARM cores and crashes. qemu opens files under -L ROOT first, so give it a Pi 4's.
mkdir -p "$ROOT/proc"
for ((i = 0; i < $(nproc); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
    printf 'CPU revision\t: 3\n\n'
done > "$ROOT/proc/cpuinfo"

flavour=$( ((NUMPY1)) && echo numpy1 || echo numpy2)
WHEELS="$WORK/wheels-$flavour"
SITE="$WORK/site-$flavour"
say "edgeseg wheel and its aarch64 dependencies ($flavour) from PyPI"
rm -rf "$WORK/edgeseg-wheel" "$WHEELS" "$SITE"
rm -rf "$WORK/src"
mkdir -p "$WORK/src"
# A clean copy, so the build leaves nothing in the checkout.
for f in pyproject.toml README.md LICENSE edgeseg deploy; do
    [[ -e "$REPO/$f" ]] && cp -r "$REPO/$f" "$WORK/src/"
done
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
python3 -m pip wheel -q --no-deps "$WORK/src" -w "$WORK/edgeseg-wheel"
constraints=()
if (( NUMPY1 )); then
    echo "numpy<2" > "$WORK/constraints.txt"
    constraints=(-c "$WORK/constraints.txt")
fi
platforms=()
for p in manylinux2014 manylinux_2_17 manylinux_2_27 manylinux_2_28 manylinux_2_31 manylinux_2_34; do
    platforms+=(--platform "${p}_aarch64")
done
python3 -m pip download -q --only-binary=:all: --python-version 3.11 --implementation cp \
    --abi cp311 --abi abi3 --abi none "${platforms[@]}" --platform any "${constraints[@]}" \
    -d "$WHEELS" "$WORK"/edgeseg-wheel/edgeseg-*.whl
mkdir -p "$SITE"
for whl in "$WHEELS"/*.whl; do
    # --numpy1: Debian's python3-numpy stays in charge, as with --system-site-packages.
    [[ $NUMPY1 == 1 && "$(basename "$whl")" == numpy-* ]] && continue
    python3 -m zipfile -e "$whl" "$SITE"
done

if (( PREPARE_ONLY )); then
    say "prepared: arm64 root $ROOT, aarch64 packages $SITE"
    exit 0
fi

arm64() {
    env PYTHONPATH="$SITE" PYTHONNOUSERSITE=1 QEMU_CPU=cortex-a72 \
        qemu-aarch64-static -L "$ROOT" "$ROOT/usr/bin/python3.11" "$@"
}

cat > "$WORK/invoke.py" <<'EOF'
import hashlib, platform, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=2)
it.allocate_tensors()
d = it.get_input_details()[0]
x = np.random.default_rng(66).integers(0, 256, d["shape"]).astype(d["dtype"])
it.set_tensor(d["index"], x)
it.invoke()
y = it.get_tensor(it.get_output_details()[0]["index"])
print(platform.machine(), "numpy", np.__version__, "output", y.dtype, y.shape,
      "sha256", hashlib.sha256(y.tobytes()).hexdigest()[:16])
EOF
say "one invoke, aarch64 (emulated) then x86_64 (this machine): the hashes should match"
arm64 "$WORK/invoke.py" "$MODEL" 2>/dev/null
python3 "$WORK/invoke.py" "$MODEL" 2>/dev/null || say "(no ai-edge-litert on the host python)"

cli() { arm64 -c 'import sys; from edgeseg.cli import main; sys.argv[0] = "edgeseg"; main()' "$@"; }
if [[ -n "$VIDEO" ]]; then
    say "edgeseg run on $VIDEO (aarch64, emulated)"
    cli run "$MODEL" --source "$VIDEO" --no-display --max-frames 8 --threads 2 \
        --save "$WORK/overlay.avi"
fi
say "edgeseg bench (aarch64, emulated: timings say nothing about a real Pi)"
cli bench "$MODEL" --threads 2 --runs 20 --warmup 2
say "done: the aarch64 wheels run the model; scratch is in $WORK"
