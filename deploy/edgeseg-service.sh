#!/usr/bin/env bash
# Start `edgeseg run` headless from the EDGESEG_* settings of edgeseg.env (used by edgeseg.service).
#
#   edgeseg-service wait-camera   wait (bounded) for the camera device node; ExecStartPre
#   edgeseg-service run           exec `edgeseg run ...` built from the settings; ExecStart
#   edgeseg-service print         print that command line instead of running it
#
# systemd passes the settings as environment variables (EnvironmentFile=). By hand:
#   set -a; . /opt/edgeseg/edgeseg.env; set +a; /opt/edgeseg/bin/edgeseg-service print
set -euo pipefail

die() { echo "edgeseg-service: $*" >&2; exit 1; }

# The venv sits beside bin/ in the install prefix; EDGESEG_BIN overrides (tests, custom installs).
edgeseg_bin() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    if [[ -n "${EDGESEG_BIN:-}" ]]; then
        echo "$EDGESEG_BIN"
    elif [[ -x "$here/../venv/bin/edgeseg" ]]; then
        echo "$(cd "$here/.." && pwd)/venv/bin/edgeseg"
    else
        command -v edgeseg || die "edgeseg is not installed: run install-pi.sh, or set EDGESEG_BIN"
    fi
}

# The device node the camera setting refers to, or nothing for a file/URL source.
camera_device() {
    [[ -n "${EDGESEG_SOURCE:-}" ]] && return 0
    local cam="${EDGESEG_CAMERA:-0}"
    case "$cam" in
        picam) echo /dev/video0 ;;  # the CSI receiver (unicam on Pi 4, rp1-cfe on Pi 5)
        /dev/*) echo "$cam" ;;
        *[!0-9]*) die "EDGESEG_CAMERA=$cam: use a V4L2 index (0 for /dev/video0) or picam" ;;
        *) echo "/dev/video$cam" ;;
    esac
}

wait_camera() {
    local dev timeout waited=0
    dev="$(camera_device)"
    [[ -z "$dev" ]] && return 0
    timeout="${EDGESEG_CAMERA_WAIT:-30}"
    [[ "$timeout" =~ ^[0-9]+$ ]] || die "EDGESEG_CAMERA_WAIT=$timeout: give whole seconds"
    while [[ ! -e "$dev" ]]; do
        if (( waited >= timeout )); then
            die "no $dev after ${timeout}s; is the camera connected and enabled?" \
                "(ls /dev/video*; for a Pi camera module: rpicam-hello --list-cameras)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    (( waited > 0 )) && echo "edgeseg-service: $dev appeared after ${waited}s"
    return 0
}

# Fill the array named by $1 with the `edgeseg run` command line.
build_command() {
    local -n cmd=$1
    local extra=() save="${EDGESEG_SAVE:-}"
    [[ -n "${EDGESEG_MODEL:-}" ]] || die "EDGESEG_MODEL is not set; set it in edgeseg.env"
    [[ -e "$EDGESEG_MODEL" ]] || die "EDGESEG_MODEL=$EDGESEG_MODEL: no such file (cwd $(pwd))"
    # A service never gives up on its camera: reconnect for as long as it takes (counted).
    cmd=("$(edgeseg_bin)" run "$EDGESEG_MODEL" --no-display --reconnect "${EDGESEG_RECONNECT:-forever}")
    if [[ -n "${EDGESEG_SOURCE:-}" ]]; then
        cmd+=(--source "$EDGESEG_SOURCE")
    else
        cmd+=(--camera "${EDGESEG_CAMERA:-0}")
    fi
    [[ -n "${EDGESEG_THREADS:-}" ]] && cmd+=(--threads "$EDGESEG_THREADS")
    if [[ -n "${EDGESEG_STREAM_PORT:-}" ]]; then
        cmd+=(--stream "$EDGESEG_STREAM_PORT" --host "${EDGESEG_STREAM_HOST:-127.0.0.1}")
    fi
    if [[ -n "$save" ]]; then
        # The install prefix is read-only under the service's sandbox: relative saves go to
        # the state directory (/var/lib/edgeseg) that systemd makes writable.
        [[ "$save" != /* && -n "${STATE_DIRECTORY:-}" ]] && save="$STATE_DIRECTORY/$save"
        cmd+=(--save "$save")
    fi
    [[ -n "${EDGESEG_DELEGATE:-}" ]] && cmd+=(--delegate "$EDGESEG_DELEGATE")
    # Extra options are split on whitespace, like a shell would, but never glob-expanded.
    read -r -a extra <<< "${EDGESEG_ARGS:-}"
    cmd+=("${extra[@]}")
    return 0
}

main() {
    local command=()
    case "${1:-run}" in
        wait-camera) wait_camera ;;
        print)
            build_command command
            printf '%q ' "${command[@]}"
            echo
            ;;
        run)
            build_command command
            echo "edgeseg-service: ${command[*]}"
            exec "${command[@]}"
            ;;
        -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}" ;;
        *) die "unknown command $1 (wait-camera, run, print)" ;;
    esac
}

main "$@"
