#!/usr/bin/env bash
# Install the edgeseg runtime (no TensorFlow) and its systemd service on a Raspberry Pi.
#
# Usage: sudo ./install-pi.sh [options]
#
# For Raspberry Pi OS Bookworm 64-bit and Debian/Ubuntu arm64; also runs on x86_64 Debian for
# testing. Safe to run again: it reuses the venv and rewrites only files that changed.
#
# Options:
#   --prefix DIR        install here (default /opt/edgeseg): venv/, bin/, models/, edgeseg.env
#   --user NAME         unprivileged service user, created if missing (default edgeseg)
#   --from PATH         pip-install edgeseg from a checkout or a wheel instead of PyPI
#   --wheelhouse DIR    install edgeseg and every dependency from the wheels in DIR, never
#                       from a package index (a device without internet); the default when
#                       the bundle's wheels/ holds more than edgeseg's own wheel
#   --bundle DIR        also install the model and edgeseg.env of an `edgeseg bundle` folder
#                       (the default when this script sits in such a folder)
#   --picamera MODE     auto|yes|no: use picamera2 from apt (python3-picamera2) through a
#                       venv with --system-site-packages; auto = yes on a Raspberry Pi
#   --coral             install the Edge TPU runtime (libedgetpu1-std) and its udev rules
#                       from Coral's apt repository, for a Coral USB Accelerator
#   --python PATH       interpreter for the venv (default /usr/bin/python3)
#   --upgrade           upgrade edgeseg and its dependencies if already installed
#   --no-service        don't create the user or install/enable the systemd service
#   --no-apt            never run apt-get; say what to install instead
#   --dry-run           print the commands that would change the system; change nothing
#   -h, --help          this help
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX=/opt/edgeseg
SVC_USER=edgeseg
FROM=""
WHEELHOUSE=""
BUNDLE=""
PICAMERA=auto
CORAL=0
PY=""
UPGRADE=0
SERVICE=1
APT=1
DRY_RUN=0
CORAL_LIST=/etc/apt/sources.list.d/coral-edgetpu.list
CORAL_KEY=/usr/share/keyrings/coral-edgetpu.gpg

say() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }

# Run a command that changes the system, or only print it with --dry-run.
run() {
    if (( DRY_RUN )); then
        printf '+ %s\n' "$*"
    else
        "$@"
    fi
}

is_root() { [[ "$(id -u)" == 0 ]]; }

need_root() {
    is_root || (( DRY_RUN )) || die "$1 needs root: run again with sudo"
}

parse_args() {
    while (( $# )); do
        case "$1" in
            --prefix) PREFIX="${2:?--prefix needs a folder}"; shift ;;
            --user) SVC_USER="${2:?--user needs a name}"; shift ;;
            --from) FROM="${2:?--from needs a path}"; shift ;;
            --wheelhouse) WHEELHOUSE="${2:?--wheelhouse needs a folder}"; shift ;;
            --bundle) BUNDLE="${2:?--bundle needs a folder}"; shift ;;
            --picamera) PICAMERA="${2:?--picamera needs auto, yes or no}"; shift ;;
            --coral) CORAL=1 ;;
            --python) PY="${2:?--python needs a path}"; shift ;;
            --upgrade) UPGRADE=1 ;;
            --no-service) SERVICE=0 ;;
            --no-apt) APT=0 ;;
            --dry-run) DRY_RUN=1 ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
        shift
    done
    [[ "$PREFIX" =~ ^/[A-Za-z0-9._/-]+$ ]] ||
        die "--prefix $PREFIX: give an absolute path of letters, digits, . _ - and /"
    PREFIX="${PREFIX%/}"
    [[ "$SVC_USER" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "--user $SVC_USER is not a valid user name"
    case "$PICAMERA" in auto | yes | no) ;; *) die "--picamera $PICAMERA: use auto, yes or no" ;; esac
    if [[ -n "$FROM" ]]; then
        [[ -e "$FROM" ]] || die "--from $FROM: no such file or folder"
        FROM="$(cd "$(dirname "$FROM")" && pwd)/$(basename "$FROM")"
    fi
    if [[ -z "$BUNDLE" && -d "$SCRIPT_DIR/models" && -f "$SCRIPT_DIR/edgeseg.env" ]]; then
        BUNDLE="$SCRIPT_DIR"
    fi
    if [[ -n "$BUNDLE" ]]; then
        [[ -f "$BUNDLE/edgeseg.env" ]] || die "--bundle $BUNDLE has no edgeseg.env; make it with edgeseg bundle"
        BUNDLE="$(cd "$BUNDLE" && pwd)"
        # A bundle made with --wheelhouse carries the dependencies' wheels: go offline.
        local whl
        for whl in "$BUNDLE"/wheels/*.whl; do
            if [[ -z "$WHEELHOUSE" && -f "$whl" && "$(basename "$whl")" != edgeseg-* ]]; then
                WHEELHOUSE="$BUNDLE/wheels"
            fi
        done
    fi
    if [[ -n "$WHEELHOUSE" ]]; then
        [[ -d "$WHEELHOUSE" ]] || die "--wheelhouse $WHEELHOUSE: no such folder"
        WHEELHOUSE="$(cd "$WHEELHOUSE" && pwd)"
    fi
    if [[ -z "$PY" ]]; then
        if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; else PY=python3; fi
    fi
    return 0
}

is_raspberry_pi() { grep -qs "Raspberry Pi" /proc/device-tree/model; }

check_platform() {
    local arch
    arch="$(uname -m)"
    case "$arch" in
        aarch64 | arm64) ;;
        x86_64) say "x86_64: not a Pi, fine for trying the runtime out" ;;
        armv7l | armv6l) die "$arch is a 32-bit OS; the TFLite runtime wheels need 64-bit: install Raspberry Pi OS (64-bit)" ;;
        *) warn "untested architecture $arch" ;;
    esac
    grep -qsE '^ID(_LIKE)?=.*debian' /etc/os-release ||
        warn "not a Debian-based OS: the apt steps below may not apply"
    command -v "$PY" >/dev/null || die "$PY not found: sudo apt-get install python3"
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
        die "$PY is older than 3.9; edgeseg needs Python 3.9 or newer"
    if [[ "$PICAMERA" == auto ]]; then
        if is_raspberry_pi; then PICAMERA=yes; else PICAMERA=no; fi
    fi
    return 0
}

# Install Debian packages, or with --no-apt (or without apt-get) say how and stop.
apt_install() {
    if (( ! APT )) || ! command -v apt-get >/dev/null; then
        die "missing: $*; install with: sudo apt-get install $*"
    fi
    need_root "installing $*"
    say "apt-get install $*"
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

ensure_packages() {
    local missing=()
    "$PY" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    if [[ "$PICAMERA" == yes ]] && ! "$PY" -c 'import picamera2' 2>/dev/null; then
        missing+=(python3-picamera2)
    fi
    if (( ${#missing[@]} )); then
        apt_install "${missing[@]}"
    fi
    return 0
}

# The Edge TPU runtime comes from Coral's apt repository, not Debian's; see
# https://coral.ai/docs/accelerator/get-started/ ("Install the Edge TPU runtime").
setup_coral() {
    if dpkg-query -W -f='${Status}' libedgetpu1-std 2>/dev/null | grep -q "ok installed" ||
        dpkg-query -W -f='${Status}' libedgetpu1-max 2>/dev/null | grep -q "ok installed"; then
        say "Edge TPU runtime already installed"
        return 0
    fi
    (( APT )) || die "--coral with --no-apt: add Coral's apt repository and install libedgetpu1-std (https://coral.ai/docs/accelerator/get-started/)"
    need_root "--coral"
    say "adding Coral's apt repository ($CORAL_LIST) and installing libedgetpu1-std"
    if [[ ! -s "$CORAL_KEY" ]]; then
        if ! command -v curl >/dev/null || ! command -v gpg >/dev/null; then
            apt_install curl gnupg
        fi
        if (( DRY_RUN )); then
            printf '+ curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | gpg --dearmor -o %s\n' "$CORAL_KEY"
        else
            curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | gpg --dearmor -o "$CORAL_KEY"
        fi
    fi
    local line="deb [signed-by=$CORAL_KEY] https://packages.cloud.google.com/apt coral-edgetpu-stable main"
    if (( DRY_RUN )); then
        printf '+ echo "%s" > %s\n' "$line" "$CORAL_LIST"
    else
        echo "$line" > "$CORAL_LIST"
    fi
    run apt-get update
    apt_install libedgetpu1-std
    # The package's udev rules (60-libedgetpu1-std.rules) give plugdev the USB device.
    run udevadm control --reload-rules
    run udevadm trigger --subsystem-match=usb
    say "Edge TPU runtime installed; unplug and replug the Coral USB Accelerator"
}

setup_venv() {
    local venv="$PREFIX/venv" cfg="$PREFIX/venv/pyvenv.cfg"
    if [[ ! -d "$PREFIX" ]]; then
        run mkdir -p "$PREFIX"
    fi
    [[ -w "$PREFIX" ]] || (( DRY_RUN )) || die "cannot write $PREFIX: run with sudo, or pick --prefix"
    if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c '' 2>/dev/null; then
        say "reusing the venv in $venv"
    else
        local flags=()
        [[ "$PICAMERA" == yes ]] && flags+=(--system-site-packages)
        say "creating a venv in $venv${flags[*]:+ (${flags[*]}, for picamera2)}"
        run "$PY" -m venv "${flags[@]}" "$venv" ||
            die "$PY -m venv failed; on Debian: sudo apt-get install python3-venv"
    fi
    # picamera2 from apt is only visible through the system site packages.
    if [[ "$PICAMERA" == yes && -f "$cfg" ]] && grep -q '^include-system-site-packages = false' "$cfg"; then
        run sed -i 's/^include-system-site-packages = false/include-system-site-packages = true/' "$cfg"
    fi
    return 0
}

pip_install() {
    local pip=("$PREFIX/venv/bin/python" -m pip install --disable-pip-version-check)
    local target="edgeseg" wheels=()
    (( UPGRADE )) && pip+=(--upgrade)
    if [[ -n "$WHEELHOUSE" ]]; then
        # Only these wheels: a device without internet must not wait on an index.
        pip+=(--no-index --find-links "$WHEELHOUSE")
        if [[ -z "$FROM" ]]; then
            shopt -s nullglob
            wheels=("$WHEELHOUSE"/edgeseg-*.whl)
            shopt -u nullglob
            (( ${#wheels[@]} )) && target="${wheels[-1]}"
        fi
    fi
    if [[ -n "$FROM" ]]; then
        target="$FROM"
    elif [[ "$target" == edgeseg && -n "$BUNDLE" && -d "$BUNDLE/wheels" ]]; then
        shopt -s nullglob
        wheels=("$BUNDLE"/wheels/edgeseg-*.whl)
        shopt -u nullglob
        (( ${#wheels[@]} )) && target="${wheels[-1]}"
    fi
    if [[ "$PICAMERA" == yes ]]; then
        # apt's picamera2 (and simplejpeg, pidng) are built against Debian's NumPy 1.x: a
        # NumPy 2 in the venv would shadow it and break them.
        if (( DRY_RUN )); then
            printf '+ echo "numpy<2" > %s\n' "$PREFIX/pip-constraints.txt"
        else
            echo "numpy<2" > "$PREFIX/pip-constraints.txt"
        fi
        pip+=(--constraint "$PREFIX/pip-constraints.txt")
    fi
    say "pip install $target (the runtime only: no TensorFlow)${WHEELHOUSE:+, offline from $WHEELHOUSE}"
    if ! run "${pip[@]}" "$target"; then
        [[ -n "$WHEELHOUSE" ]] && die "pip could not install $target from $WHEELHOUSE alone:" \
            "a dependency's wheel for this platform is missing; add it with pip download" \
            "--platform manylinux2014_aarch64 --only-binary=:all: -d $WHEELHOUSE PACKAGE"
        [[ "$target" == edgeseg ]] && die "pip could not install edgeseg from PyPI; install" \
            "a wheel or checkout with --from PATH (edgeseg bundle --wheel ships one)"
        die "pip install $target failed (see above)"
    fi
}

# Copy a file atomically, only when it differs: a second run changes nothing.
put_file() {
    local src="$1" dest="$2" mode="$3"
    if [[ -f "$dest" ]] && cmp -s "$src" "$dest"; then
        return 0
    fi
    say "writing $dest"
    run install -m "$mode" "$src" "$dest.tmp.$$"
    run mv -f "$dest.tmp.$$" "$dest"
}

install_files() {
    local tmp
    run mkdir -p "$PREFIX/bin" "$PREFIX/models"
    put_file "$SCRIPT_DIR/edgeseg-service.sh" "$PREFIX/bin/edgeseg-service" 755
    [[ -f "$SCRIPT_DIR/README.md" ]] && put_file "$SCRIPT_DIR/README.md" "$PREFIX/README.md" 644
    tmp="$(mktemp)"
    sed -e "s#/opt/edgeseg#$PREFIX#g" -e "s#^User=edgeseg\$#User=$SVC_USER#" \
        "$SCRIPT_DIR/edgeseg.service" > "$tmp"
    put_file "$tmp" "$PREFIX/edgeseg.service" 644
    rm -f "$tmp"
    if [[ -n "$BUNDLE" ]]; then
        local f
        for f in "$BUNDLE"/models/*; do
            [[ -f "$f" ]] && put_file "$f" "$PREFIX/models/$(basename "$f")" 644
        done
        if [[ -f "$PREFIX/edgeseg.env" ]] && ! cmp -s "$BUNDLE/edgeseg.env" "$PREFIX/edgeseg.env"; then
            run cp -p "$PREFIX/edgeseg.env" "$PREFIX/edgeseg.env.$(date +%Y%m%d-%H%M%S).bak"
        fi
        put_file "$BUNDLE/edgeseg.env" "$PREFIX/edgeseg.env" 644
    elif [[ ! -f "$PREFIX/edgeseg.env" ]]; then
        put_file "$SCRIPT_DIR/edgeseg.env" "$PREFIX/edgeseg.env" 644
    else
        say "keeping your $PREFIX/edgeseg.env"
    fi
}

setup_user() {
    local group groups=(video render)
    (( CORAL )) && groups+=(plugdev)
    need_root "creating the service user $SVC_USER"
    if ! id -u "$SVC_USER" >/dev/null 2>&1; then
        say "creating the system user $SVC_USER"
        run useradd --system --user-group --home-dir /var/lib/edgeseg --no-create-home \
            --shell /usr/sbin/nologin "$SVC_USER"
    fi
    # video: /dev/video*, /dev/media*, /dev/dma_heap; render: Pi 5 ISP; plugdev: the Coral.
    for group in "${groups[@]}"; do
        getent group "$group" >/dev/null || continue
        id -nG "$SVC_USER" 2>/dev/null | tr ' ' '\n' | grep -qx "$group" && continue
        run usermod -aG "$group" "$SVC_USER"
    done
    return 0
}

env_value() {  # the value of KEY in the installed (or, in a dry run, the new) edgeseg.env
    local v file="$PREFIX/edgeseg.env"
    [[ -f "$file" ]] || file="${BUNDLE:-$SCRIPT_DIR}/edgeseg.env"
    v="$(grep -E "^$1=" "$file" 2>/dev/null | tail -n 1 | cut -d= -f2-)" || true
    v="${v%\"}"; v="${v#\"}"
    echo "$v"
}

setup_service() {
    local unit=/etc/systemd/system/edgeseg.service model
    if [[ ! -d /run/systemd/system ]] && (( ! DRY_RUN )); then
        warn "systemd is not running here: skipping the service ($PREFIX/edgeseg.service is ready)"
        return 0
    fi
    need_root "installing the service"
    put_file "$PREFIX/edgeseg.service" "$unit" 644
    run systemctl daemon-reload
    run systemctl enable edgeseg.service
    model="$(env_value EDGESEG_MODEL)"
    [[ "$model" == /* ]] || model="$PREFIX/$model"
    if [[ -f "$model" ]]; then
        run systemctl restart edgeseg.service
        say "edgeseg.service (re)started; journalctl -u edgeseg -f shows its log"
    else
        say "no model at $model yet: copy one there (edgeseg bundle makes it), then: sudo systemctl start edgeseg"
    fi
}

verify() {
    local venv="$PREFIX/venv"
    (( DRY_RUN )) && return 0
    "$venv/bin/edgeseg" --version || die "edgeseg does not start from $venv/bin/edgeseg"
    "$venv/bin/python" -c 'from ai_edge_litert.interpreter import Interpreter' ||
        die "the TFLite runtime (ai-edge-litert) does not import in $venv"
    if [[ "$PICAMERA" == yes ]]; then
        "$venv/bin/python" -c 'import picamera2' ||
            warn "picamera2 does not import in the venv; a USB webcam (EDGESEG_CAMERA=0) still works"
    fi
    if (( CORAL )) && ! ldconfig -p | grep -q 'libedgetpu\.so\.1'; then
        warn "libedgetpu.so.1 not found; the Coral delegate will not load"
    fi
    say "runtime OK: $venv/bin/edgeseg"
}

main() {
    parse_args "$@"
    check_platform
    say "installing edgeseg into $PREFIX (picamera2: $PICAMERA, coral: $( ((CORAL)) && echo yes || echo no))"
    [[ -n "$BUNDLE" ]] && say "with the model and settings of the bundle in $BUNDLE"
    ensure_packages
    (( CORAL )) && setup_coral
    setup_venv
    pip_install
    install_files
    if (( SERVICE )); then
        setup_user
        setup_service
    else
        say "--no-service: not touching users or systemd"
    fi
    verify
    say "done. Settings: $PREFIX/edgeseg.env; stream: ssh -L 8080:localhost:8080 <pi>, then http://localhost:8080/"
}

main "$@"
