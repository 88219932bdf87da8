#!/usr/bin/env bash
# Starts a private MariaDB server to serve as Cairn's performance and behaviour peer.
#
# Usage: scripts/mariadb/start.sh [--port N] [--buffer-pool SIZE] [-- extra mariadbd options...]
#
# On success the last line on stdout is machine-readable:
#     PORT=<tcp port> PID=<mariadbd pid> DATADIR=<instance directory>
# Everything else goes to stderr. Stop the instance with scripts/mariadb/stop.sh DATADIR.
# DATADIR is the instance's own directory: MariaDB's datadir is DATADIR/data, its tmpdir
# DATADIR/tmp, and the socket (DATADIR/mysqld.sock), pid file and error log sit beside them.
#
# What it does:
#   1. Installs mariadb-server and mariadb-client from Debian's packages if they are missing
#      (as root, non-interactively, running `apt-get update` first if the plain install fails).
#   2. Creates a fresh instance directory under ${TMPDIR:-/tmp} and initialises its data/ with
#      mariadb-install-db. The directory holds everything the instance writes (data, temporary
#      files, socket, pid file, error log), so several instances never share a file and stop.sh
#      removes everything.
#   3. Starts mariadbd on 127.0.0.1 on a free port (below the kernel's ephemeral range, so that
#      client sockets cannot be holding it) and retries with another port if the bind fails,
#      which is how several instances started at the same moment stay apart.
#   4. Creates 'root'@'127.0.0.1' without a password (--skip-name-resolve means TCP clients from
#      127.0.0.1 match that host entry, never 'localhost') and checks a TCP login works.
#
# Server settings (everything not listed is the compiled-in default of MariaDB 10.11):
#   --no-defaults                      The machine's /etc/mysql files are ignored, so the peer is
#                                      the same on every machine and cannot collide with a system
#                                      server's socket or port.
#   --user=root                        mariadbd refuses to run as root without it; this machine
#                                      runs everything as root.
#   --bind-address=127.0.0.1, --skip-name-resolve
#   --tmpdir=DATADIR/tmp               Private, so instances cannot delete each other's temporary
#                                      tables (mariadbd clears "#sql*" files from its tmpdir at
#                                      start-up).
#   --character-set-server=utf8mb4, --collation-server=utf8mb4_general_ci
#                                      What Debian's packaged config sets, and what the client
#                                      facts in shared/CLIENTS.md were recorded against.
#   --innodb-buffer-pool-size=512M     (--buffer-pool) Large enough to hold every benchmark data
#                                      set in memory; Cairn is an in-memory database, so a peer
#                                      that reads from disk would be an unfair comparison. The
#                                      compiled-in default is 128M.
#   Durability stays at InnoDB's defaults: innodb_flush_log_at_trx_commit=1 (the redo log is
#   fsynced at every commit), doublewrite on, binary log off (as in a default install). The
#   query cache is off (the 10.11 default), so repeated SELECTs are really executed.

set -euo pipefail

script_name=$(basename "$0")
log() { echo "$script_name: $*" >&2; }
die() { log "error: $*"; exit 1; }

requested_port=""
buffer_pool="512M"
extra_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --port) requested_port="${2:?--port needs a value}"; shift 2 ;;
        --buffer-pool) buffer_pool="${2:?--buffer-pool needs a value}"; shift 2 ;;
        --) shift; extra_args=("$@"); break ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# ---- 1. Packages -------------------------------------------------------------------------------

have_binaries() {
    command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]] || return 1
    command -v mariadb-install-db >/dev/null 2>&1 || return 1
    command -v mariadb >/dev/null 2>&1 || return 1
    command -v mariadb-admin >/dev/null 2>&1 || return 1
}

if ! have_binaries; then
    [[ $(id -u) -eq 0 ]] || die "MariaDB is not installed and this is not root; run: apt-get install -y mariadb-server mariadb-client"
    log "installing mariadb-server and mariadb-client from Debian's packages"
    # Two instances started at once must not run apt-get concurrently: dpkg's lock would fail one.
    exec 9>"/tmp/cairn-mariadb-install.lock"
    flock 9
    if ! have_binaries; then
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -q mariadb-server mariadb-client >&2; then
            log "plain install failed; running apt-get update and trying again"
            apt-get update -q >&2
            apt-get install -y -q mariadb-server mariadb-client >&2
        fi
    fi
    flock -u 9
    exec 9>&-
    have_binaries || die "MariaDB binaries are still missing after apt-get install"
fi

mariadbd_bin=$(command -v mariadbd || echo /usr/sbin/mariadbd)

# ---- 2. Instance directory ---------------------------------------------------------------------

instance_dir=$(mktemp -d "${TMPDIR:-/tmp}/cairn-mariadb.XXXXXX")
data_dir="$instance_dir/data"
socket="$instance_dir/mysqld.sock"
pid_file="$instance_dir/mariadbd.pid"
error_log="$instance_dir/error.log"
# A Unix socket path is limited to 107 bytes; fail clearly instead of letting mariadbd fail obscurely.
(( ${#socket} < 100 )) || { rm -rf "$instance_dir"; die "socket path '$socket' is too long; set TMPDIR to a shorter directory"; }

server_pid=""
cleanup_on_failure() {
    local status=$?
    if [[ $status -ne 0 ]]; then
        if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
            kill -TERM "$server_pid" 2>/dev/null || true
            for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
        if [[ -f "$error_log" ]]; then
            log "last lines of the error log:"
            tail -n 20 "$error_log" >&2 || true
        fi
        rm -rf "$instance_dir"
    fi
}
trap cleanup_on_failure EXIT

# stop.sh refuses to delete a directory without this marker, so a wrong argument cannot remove
# anything else.
echo "cairn-bench MariaDB instance created $(date -u +%FT%TZ)" >"$instance_dir/cairn-mariadb-instance"

# A private tmpdir is essential for coexisting instances: at start-up mariadbd deletes every
# leftover "#sql*" file in its tmpdir, which with a shared /tmp means the temporary tables of any
# other server (or of a concurrent mariadb-install-db bootstrap) running at that moment.
tmp_dir="$instance_dir/tmp"
mkdir "$tmp_dir" "$data_dir"

log "initialising $instance_dir"
if ! mariadb-install-db --no-defaults --user=root --datadir="$data_dir" --tmpdir="$tmp_dir" \
        --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
        >"$instance_dir/install-db.log" 2>&1; then
    # The cause is near the top; the tail is mariadb-install-db's generic advice.
    grep -iE "error|warning|fatal|abort" "$instance_dir/install-db.log" | head -n 20 >&2 || true
    die "mariadb-install-db failed"
fi

# ---- 3. Start on a free port ---------------------------------------------------------------------

port_is_free() {
    # A refused connection means nobody listens there. Ports below the ephemeral range are never
    # used as the local end of an outgoing connection, so a free port here can be bound.
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
    local low high candidate
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
    # Choose below the ephemeral range; 20000 keeps clear of well-known service ports.
    high=$(( low > 20100 ? low - 1 : 32767 ))
    for _ in $(seq 1 200); do
        candidate=$(( 20000 + (RANDOM * 32768 + RANDOM) % (high - 20000 + 1) ))
        if port_is_free "$candidate"; then echo "$candidate"; return 0; fi
    done
    return 1
}

server_alive() { [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; }

admin() { mariadb-admin --no-defaults --socket="$socket" --user=root "$@"; }

port=""
for attempt in 1 2 3 4 5 6; do
    if [[ -n "$requested_port" ]]; then
        port="$requested_port"
    else
        port=$(pick_port) || die "found no free TCP port"
    fi
    log "starting mariadbd on 127.0.0.1:$port (attempt $attempt)"
    # setsid detaches the server from the caller's session so it outlives this script; its output
    # goes to the error log so that nothing keeps the caller's stdout pipe open.
    setsid "$mariadbd_bin" --no-defaults --user=root \
        --datadir="$data_dir" --tmpdir="$tmp_dir" --socket="$socket" --pid-file="$pid_file" --log-error="$error_log" \
        --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
        --innodb-buffer-pool-size="$buffer_pool" \
        "${extra_args[@]}" \
        </dev/null >>"$error_log" 2>&1 &
    server_pid=$!

    ready=0
    for _ in $(seq 1 600); do
        if ! server_alive; then break; fi
        if admin ping >/dev/null 2>&1; then ready=1; break; fi
        sleep 0.1
    done
    if [[ $ready -eq 1 ]]; then break; fi

    if server_alive; then
        die "mariadbd did not answer within 60 s"
    fi
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    if [[ -z "$requested_port" ]] && grep -qiE "Address already in use|Can't start server: Bind" "$error_log"; then
        log "port $port was taken meanwhile; picking another"
        continue
    fi
    die "mariadbd exited during start-up"
done
[[ -n "$server_pid" ]] || die "could not bind a free port after several attempts"

# The pid file is the server's own word on its pid; it must agree with the process we started.
for _ in $(seq 1 50); do [[ -s "$pid_file" ]] && break; sleep 0.1; done
[[ -s "$pid_file" ]] || die "mariadbd wrote no pid file"
file_pid=$(cat "$pid_file")
[[ "$file_pid" == "$server_pid" ]] || die "pid file says $file_pid but the started process is $server_pid"

# ---- 4. Accounts -----------------------------------------------------------------------------------

mariadb --no-defaults --socket="$socket" --user=root --batch <<'SQL' || die "could not create 'root'@'127.0.0.1'"
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL

mariadb --no-defaults --protocol=TCP --host=127.0.0.1 --port="$port" --user=root --batch \
    --execute='SELECT 1' >/dev/null || die "root cannot log in over TCP on 127.0.0.1:$port"

echo "$port" >"$instance_dir/port"
trap - EXIT
log "ready: mysql://root@127.0.0.1:$port/ (error log $error_log)"
echo "PORT=$port PID=$server_pid DATADIR=$instance_dir"
