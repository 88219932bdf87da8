#!/usr/bin/env bash
# Runs the same workloads against a private MariaDB and (optionally) a running Cairn, and prints
# both results with the ratio cairn/mariadb next to Cairn's target for that workload.
#
# Usage: benches/compare.sh [--cairn-port PORT | --cairn-url URL] [--workloads LIST]
#                           [--protocols LIST] [--pause SECONDS] [--json-out FILE]
#                           [-- cairn-loadgen flags...]
#
#   --cairn-port PORT   Cairn's MySQL port on 127.0.0.1 (user root, no password).
#   --cairn-url URL     Cairn as a full URL instead (mysql://user:pass@host:port/).
#                       Without either, only MariaDB is measured.
#   --workloads LIST    Comma-separated; default point-select,exim-join,greylist,insert,update.
#   --protocols LIST    Comma-separated; default binary. text = literals in COM_QUERY, as Exim.
#   --pause SECONDS     Idle time before each run so the previous server's background work
#                       (InnoDB flushing, purge) settles; default 3.
#   --json-out FILE     Also append every run's JSON report to FILE.
#   -- flags...         Passed to every cairn-loadgen run after the defaults
#                       (--connections 32 --seconds 10 --warmup 2 --rows 100000), e.g.
#                       -- --connections 8 --seconds 5
#
# The loader is target/release/cairn-loadgen (built here if missing; honours CARGO_TARGET_DIR),
# or $LOADGEN if set. MariaDB is started with scripts/mariadb/start.sh and stopped on exit.

set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cairn_url=""
workloads="point-select,exim-join,greylist,insert,update"
protocols="binary"
pause=3
json_out=""
extra=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --cairn-port) cairn_url="mysql://root@127.0.0.1:${2:?--cairn-port needs a value}/"; shift 2 ;;
        --cairn-url) cairn_url="${2:?--cairn-url needs a value}"; shift 2 ;;
        --workloads) workloads="${2:?--workloads needs a value}"; shift 2 ;;
        --protocols) protocols="${2:?--protocols needs a value}"; shift 2 ;;
        --pause) pause="${2:?--pause needs a value}"; shift 2 ;;
        --json-out) json_out="${2:?--json-out needs a value}"; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

# ---- The load generator -------------------------------------------------------------------------

if [[ -n "${LOADGEN:-}" ]]; then
    loadgen="$LOADGEN"
else
    loadgen="${CARGO_TARGET_DIR:-$repo/target}/release/cairn-loadgen"
    if [[ ! -x "$loadgen" ]]; then
        echo "compare.sh: building cairn-loadgen (release)" >&2
        (cd "$repo" && cargo build --release -p cairn-bench --bin cairn-loadgen >&2)
    fi
fi
[[ -x "$loadgen" ]] || { echo "compare.sh: no load generator at $loadgen" >&2; exit 1; }

# ---- MariaDB --------------------------------------------------------------------------------------

started=$("$repo/scripts/mariadb/start.sh" | tail -n 1)
mariadb_port=$(sed -n 's/.*PORT=\([0-9]*\).*/\1/p' <<<"$started")
mariadb_dir=$(sed -n 's/.*DATADIR=\([^ ]*\).*/\1/p' <<<"$started")
[[ -n "$mariadb_port" && -n "$mariadb_dir" ]] || { echo "compare.sh: start.sh said '$started'" >&2; exit 1; }
trap '"$repo/scripts/mariadb/stop.sh" "$mariadb_dir"' EXIT
mariadb_url="mysql://root@127.0.0.1:$mariadb_port/"

# ---- Runs -------------------------------------------------------------------------------------------

# Cairn's performance targets as multiples of MariaDB's throughput.
target_ratio() {
    case "$1" in
        point-select) echo 1.5 ;;
        exim-join) echo 3 ;;
        greylist) echo 10 ;;
        insert|update) echo 1 ;;
        *) echo "" ;;
    esac
}

json_field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2"; }

# Runs one workload against one server; prints a result row and leaves the JSON in $last_json
# (empty when the run could not take place).
last_json=""
measure() {
    local server=$1 url=$2 workload=$3 protocol=$4 output
    sleep "$pause"
    if output=$("$loadgen" --url "$url" --workload "$workload" --protocol "$protocol" --json \
            --connections 32 --seconds 10 --warmup 2 --rows 100000 "${extra[@]}" 2>&1); then
        last_json=$(tail -n 1 <<<"$output")
        [[ -n "$json_out" ]] && echo "$last_json" >>"$json_out"
        printf '%-13s %-7s %-8s %12s %10s %10s %10s %8s\n' "$workload" "$protocol" "$server" \
            "$(json_field qps "$last_json")" "$(json_field p50 "$last_json")" \
            "$(json_field p99 "$last_json")" "$(json_field max "$last_json")" \
            "$(json_field errors "$last_json")"
        if [[ "$(json_field errors "$last_json")" != "0" ]]; then
            sed -n 's/.*"error_samples":\(\[[^]]*\]\).*/    errors: \1/p' <<<"$last_json"
        fi
    else
        last_json=""
        printf '%-13s %-7s %-8s   FAILED: %s\n' "$workload" "$protocol" "$server" "$(tail -n 1 <<<"$output")"
    fi
}

echo "MariaDB: $mariadb_url   Cairn: ${cairn_url:-(none)}   loader: $loadgen"
echo "extra loadgen flags: ${extra[*]:-(none)}"
printf '%-13s %-7s %-8s %12s %10s %10s %10s %8s\n' workload proto server qps p50_us p99_us max_us errors

IFS=, read -r -a workload_list <<<"$workloads"
IFS=, read -r -a protocol_list <<<"$protocols"
for workload in "${workload_list[@]}"; do
    for protocol in "${protocol_list[@]}"; do
        measure mariadb "$mariadb_url" "$workload" "$protocol"
        mariadb_qps=$(json_field qps "$last_json")
        if [[ -n "$cairn_url" ]]; then
            measure cairn "$cairn_url" "$workload" "$protocol"
            cairn_qps=$(json_field qps "$last_json")
            if [[ -n "$mariadb_qps" && -n "$cairn_qps" ]]; then
                awk -v c="$cairn_qps" -v m="$mariadb_qps" -v t="$(target_ratio "$workload")" 'BEGIN {
                    if (m > 0) {
                        r = c / m
                        printf "    ratio cairn/mariadb %.2f   (target >= %s: %s)\n", r, t, (r >= t ? "met" : "NOT met")
                    } else {
                        print "    ratio undefined: MariaDB made no progress"
                    }
                }'
            fi
        fi
    done
done
