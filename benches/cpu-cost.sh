#!/usr/bin/env bash
# CPU time each server process spends per operation of a workload: a measure that stays meaningful
# on a shared, noisy machine, where throughput does not (other work steals the cores, but not the
# CPU time a process itself uses).
#
# Usage: benches/cpu-cost.sh --url URL --proc NAME=PID [--proc NAME=PID ...] [-- cairn-loadgen flags...]
#
#   --url URL        the server to load (mysql://user@host:port/)
#   --proc NAME=PID  a process whose CPU time (user + system, from /proc/PID/stat) is counted; repeat
#                    for every process of the server (sqld, each datad; or mariadbd)
#   -- flags         passed to cairn-loadgen after --url and --json (e.g. --workload exim-join
#                    --connections 1 --seconds 10 --no-setup)
#
# The counted window is the whole loadgen run, warm-up included (the operations counted are the
# measured ones plus the warm-up's). Load the data first with a short run and pass --no-setup
# here, or the load is counted too.
#
# Prints one line per process: CPU microseconds per operation, user and system, and the sum.

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
loadgen=${LOADGEN:-"$repo/target/release/cairn-loadgen"}
url=""
procs=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --url) url="${2:?--url needs a value}"; shift 2 ;;
        --proc) procs+=("${2:?--proc needs NAME=PID}"); shift 2 ;;
        --) shift; break ;;
        *) echo "cpu-cost.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -n "$url" && ${#procs[@]} -gt 0 ]] || { echo "usage: $0 --url URL --proc NAME=PID ... [-- loadgen flags]" >&2; exit 2; }
[[ -x "$loadgen" ]] || { echo "cpu-cost.sh: $loadgen is missing (cargo build --release -p cairn-bench)" >&2; exit 2; }

ticks=$(getconf CLK_TCK)

# utime and stime (fields 14 and 15) of a process, in clock ticks, including its exited threads.
cpu_of() {
    local stat
    stat=$(cat "/proc/$1/stat") || { echo "cpu-cost.sh: process $1 is gone" >&2; exit 1; }
    # The command name (field 2) may hold spaces; cut the line after its closing parenthesis.
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo "${12} ${13}"
}

declare -A user0 sys0
for p in "${procs[@]}"; do
    read -r u s < <(cpu_of "${p#*=}")
    user0[$p]=$u
    sys0[$p]=$s
done
report=$("$loadgen" --url "$url" --json "$@" | tail -n 1)
ops=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["ops"] + r.get("warmup_ops", 0))' "$report")
qps=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(round(r.get("qps", 0)))' "$report")
echo "operations: $ops (measured window: $qps per second)"
total=0
for p in "${procs[@]}"; do
    read -r u s < <(cpu_of "${p#*=}")
    du=$((u - user0[$p]))
    ds=$((s - sys0[$p]))
    python3 - "$p" "$du" "$ds" "$ops" "$ticks" <<'EOF'
import sys
name, du, ds, ops, ticks = sys.argv[1].split("=")[0], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
per = lambda t: t * 1e6 / ticks / max(ops, 1)
print(f"{name:>10}: {per(du + ds):8.1f} us/op  (user {per(du):7.1f}, system {per(ds):7.1f})")
EOF
    total=$((total + du + ds))
done
python3 -c 'import sys; t,o,k=map(int,sys.argv[1:]); print("%10s: %8.1f us/op" % ("all", t*1e6/k/max(o,1)))' "$total" "$ops" "$ticks"
