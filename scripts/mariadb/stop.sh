#!/usr/bin/env bash
# Stops a MariaDB instance started by scripts/mariadb/start.sh and removes its directory.
#
# Usage: scripts/mariadb/stop.sh DATADIR
#
# The server gets SIGTERM (a clean InnoDB shutdown) and up to 60 s to exit, then SIGKILL. Only a
# directory carrying start.sh's marker file is touched, and only a process whose command line
# names that directory is signalled, so a stale pid file cannot hit an unrelated process.

set -euo pipefail

script_name=$(basename "$0")
log() { echo "$script_name: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 DATADIR"
instance_dir="$1"

if [[ ! -d "$instance_dir" ]]; then
    log "$instance_dir does not exist; nothing to stop"
    exit 0
fi
[[ -f "$instance_dir/cairn-mariadb-instance" ]] \
    || die "$instance_dir was not created by start.sh (no cairn-mariadb-instance marker); refusing to touch it"

pid_file="$instance_dir/mariadbd.pid"
if [[ -s "$pid_file" ]]; then
    pid=$(cat "$pid_file")
    if [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r "/proc/$pid/cmdline" ]] \
        && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--datadir=$instance_dir/data "; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 600); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "mariadbd $pid did not stop within 60 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    else
        log "no running mariadbd for $instance_dir (stale pid file)"
    fi
fi

rm -rf "$instance_dir"
log "stopped and removed $instance_dir"
