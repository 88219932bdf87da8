#!/usr/bin/env bash
# Runs the soak test (soak.py) against a fresh local cluster of two node groups.
#
# Usage: benches/soak/soak.sh [--cairn path/to/cairn] [soak.py options: --seconds 600 --connections 200 ...]
#
# Starts `cairn up --data-nodes 4 --replicas 2` on free loopback ports in a temporary directory,
# runs soak.py (at nice 10, with the clients tests/clients/run.sh installs: run
# `tests/clients/run.sh --install-only` once first), stops the cluster and removes the directory.
# The cluster's own processes run at normal priority; only the load generator is niced.
# The default run is ten minutes with 200 connections; `--seconds 30 --connections 40` is a smoke
# test of the script itself.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cairn="$root/target/debug/cairn"
if [[ "${1:-}" == --cairn ]]; then
    cairn=${2:?--cairn needs a path}
    shift 2
fi
[[ -x "$cairn" ]] || { echo "soak.sh: no cairn binary at $cairn (cargo build --bin cairn)" >&2; exit 2; }
python="${CLIENT_CACHE:-$HOME/.cache/cairn-clients}/venv/bin/python"
[[ -x "$python" ]] || { echo "soak.sh: no client virtualenv at $python (tests/clients/run.sh --install-only)" >&2; exit 2; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
mysql_port=$(free_port)
mgm_port=$(free_port)
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-soak.XXXXXX")
cluster_pid=""
cleanup() {
    if [[ -n "$cluster_pid" ]] && kill -0 "$cluster_pid" 2>/dev/null; then
        kill -TERM "$cluster_pid" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$cluster_pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$cluster_pid" 2>/dev/null || true
        wait "$cluster_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

setsid "$cairn" up --data-dir "$work/data" --mysql-port "$mysql_port" --mgm-port "$mgm_port" \
    --data-nodes 4 --replicas 2 --sql-nodes 1 --data-memory 256M >"$work/up.log" 2>&1 &
cluster_pid=$!
for _ in $(seq 1 240); do
    grep -q "Press Ctrl-C to stop the cluster" "$work/up.log" 2>/dev/null && break
    kill -0 "$cluster_pid" 2>/dev/null || { cat "$work/up.log" >&2; exit 1; }
    sleep 0.5
done
grep -q "Press Ctrl-C to stop the cluster" "$work/up.log" || { echo "soak.sh: the cluster did not come up" >&2; exit 1; }

status=0
nice -n 10 "$python" "$here/soak.py" --port "$mysql_port" --data-dir "$work/data" "$@" || status=$?
if grep -l "panicked" "$work"/data/logs/*.log >/dev/null 2>&1; then
    echo "soak.sh: a node panicked:" >&2
    grep -h -A 12 "panicked" "$work"/data/logs/*.log | head -n 40 >&2
    status=1
fi
exit "$status"
