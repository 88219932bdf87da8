#!/usr/bin/env bash
# Runs tests/clients/run.sh (every real MySQL client) against a fresh local Cairn cluster with two
# node groups, as scripts/test.sh does in CI.
#
# Usage: tests/clients/against_cairn.sh [path/to/cairn] [extra run.sh arguments...]
#
# Starts `cairn up --data-nodes 4 --replicas 2` (two node groups) on free loopback ports in a
# temporary directory, waits until it says it is ready, runs every client (installing what they
# need first, see README.md), then stops the cluster and removes the directory. Fails if any
# client fails or if a node's log shows a panic; the logs of a failed run are printed.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cairn="${1:-$root/target/debug/cairn}"
[[ $# -gt 0 ]] && shift
[[ -x "$cairn" ]] || { echo "against_cairn.sh: no cairn binary at $cairn (cargo build --bin cairn)" >&2; exit 2; }

# Free loopback ports for the SQL node and the management node (data nodes pick their own).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
mysql_port=$(free_port)
mgm_port=$(free_port)

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-clients.XXXXXX")
cluster_pid=""
stop_cluster() {
    if [[ -n "$cluster_pid" ]] && kill -0 "$cluster_pid" 2>/dev/null; then
        # `cairn up` stops every node cleanly on SIGTERM; its process group is ours (setsid).
        kill -TERM "$cluster_pid" 2>/dev/null || true
        for _ in $(seq 1 40); do
            kill -0 "$cluster_pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL -- "-$cluster_pid" 2>/dev/null || true
        wait "$cluster_pid" 2>/dev/null || true
    fi
    cluster_pid=""
}
cleanup() {
    stop_cluster
    rm -rf "$work"
}
trap cleanup EXIT

setsid "$cairn" up --data-dir "$work/data" --mysql-port "$mysql_port" --mgm-port "$mgm_port" \
    --data-nodes 4 --replicas 2 --sql-nodes 1 --data-memory 128M >"$work/up.log" 2>&1 &
cluster_pid=$!

ready=0
for _ in $(seq 1 240); do
    if grep -q "Press Ctrl-C to stop the cluster" "$work/up.log" 2>/dev/null; then
        ready=1
        break
    fi
    kill -0 "$cluster_pid" 2>/dev/null || break
    sleep 0.5
done
if [[ $ready -ne 1 ]]; then
    echo "against_cairn.sh: the cluster did not come up within 120 s:" >&2
    cat "$work/up.log" >&2
    exit 1
fi

status=0
started=$SECONDS
"$here/run.sh" --host 127.0.0.1 --port "$mysql_port" --user root "$@" || status=$?
echo "against_cairn.sh: clients ran in $((SECONDS - started)) s against 2 node groups"

stop_cluster
if grep -l "panicked" "$work"/data/logs/*.log >/dev/null 2>&1; then
    echo "against_cairn.sh: a node panicked:" >&2
    grep -h -A 12 "panicked" "$work"/data/logs/*.log | head -n 60 >&2
    status=1
fi
if [[ $status -ne 0 ]]; then
    echo "against_cairn.sh: node logs are under $work/data/logs (shown above where a node panicked)" >&2
    tail -n 20 "$work"/data/logs/sqld-*.log >&2 || true
fi
exit "$status"
