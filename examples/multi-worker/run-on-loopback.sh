#!/usr/bin/env bash
# Two edgeseg workers on this machine's loopback: what README's "Training on several machines"
# measured. Usage: run-on-loopback.sh DATASET OUTPUT.keras [more edgeseg train options]
set -euo pipefail
data=$1 out=$2; shift 2
read -r p0 p1 < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("localhost", 0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
pids=()
for i in 0 1; do
  TF_CONFIG="{\"cluster\":{\"worker\":[\"localhost:$p0\",\"localhost:$p1\"]},\"task\":{\"type\":\"worker\",\"index\":$i}}" \
    edgeseg train --data "$data" -o "$out" --strategy multi-worker "$@" > "worker$i.log" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
tail -n 3 worker0.log
exit $status
