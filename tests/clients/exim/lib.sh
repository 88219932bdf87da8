# Shared pieces of the Exim tests (sourced, not run): a private working directory, SQL through the
# mariadb CLI, a private Exim configuration, and checks that print ok/FAIL lines.
#
# Exim is never pointed at the machine's own configuration and never delivers anything: the tests
# use `exim -C <private config> -bt` (address testing: routers only) and `-bh` (a simulated SMTP
# session on stdin/stdout: ACLs only, no message is accepted for delivery, no connection is made).
#
# Running `-C` as root: Exim accepts an alternate configuration file from root without it being
# listed in TRUSTED_CONFIG_LIST (/etc/exim4/trusted_configs on Debian): a root caller keeps root
# privilege (debug output "retaining priv uid"); any other caller would have privilege dropped,
# which address testing does not need. The file must be owned by root (or the compiled-in
# CONFIGURE_OWNER, 0:0 on Debian) and be neither group- nor world-writable, so it is written by
# this script (owned by the caller) with mode 0600. Its spool and log directories are in the same
# private directory, which is removed at exit.

set -euo pipefail

CAIRN_HOST=${CAIRN_HOST:-127.0.0.1}
CAIRN_PORT=${CAIRN_PORT:-3306}
CAIRN_USER=${CAIRN_USER:-root}
CAIRN_PASSWORD=${CAIRN_PASSWORD:-}

fail() { echo "FAIL $*"; exit 1; }
ok() { echo "ok   $*"; }
note() { echo "note $*"; }

command -v exim >/dev/null || fail "exim is not installed (Debian package exim4-daemon-heavy)"
command -v mariadb >/dev/null || fail "the mariadb CLI is not installed (Debian package mariadb-client)"

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-exim.XXXXXX")
mkdir -p "$work/spool" "$work/log"
# mktemp makes the directory 0700; an SMTP session (-bh) runs as the exim user, which must be able
# to reach the spool directory (it checks its free space before accepting MAIL).
chmod 0755 "$work" "$work/spool" "$work/log"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# Runs SQL from stdin through the mariadb CLI (so DELIMITER blocks work as in a real schema file).
sql() {
    local args=(--protocol=TCP --host="$CAIRN_HOST" --port="$CAIRN_PORT" --user="$CAIRN_USER" --batch --skip-column-names)
    [[ -n "$CAIRN_PASSWORD" ]] && args+=(--password="$CAIRN_PASSWORD")
    mariadb "${args[@]}" "$@"
}

# The mysql_servers value: host::port/database/user/password (a colon in a list item is doubled).
mysql_server_spec() { echo "${CAIRN_HOST}::${CAIRN_PORT}/calmail/${CAIRN_USER}/${CAIRN_PASSWORD}"; }

# Writes $work/<name>.conf from stdin, with the settings every test needs first. The main section
# keeps Exim off the network: a fixed host name (no resolver call to learn our own), no reverse
# lookups or ident queries for -bh sessions.
write_config() {
    local name=$1 conf="$work/$1.conf"
    {
        echo "primary_hostname = cairn-test.localdomain"
        echo "qualify_domain = example.org"
        echo "spool_directory = $work/spool"
        echo "log_file_path = $work/log/%slog"
        echo "host_lookup ="
        echo "rfc1413_hosts ="
        echo "hide mysql_servers = $(mysql_server_spec)"
        cat
    } >"$conf"
    chmod 0600 "$conf"
    echo "$conf"
}

# Every exim call, even -bV, gets a private configuration: without -C it would read the system's
# /etc/exim4 and ask the resolver for this machine's name.
exim_version() { exim -C "$(write_config version </dev/null)" -bV 2>&1; }
exim_version | grep -q 'Lookups.* mysql' || fail "this exim has no MySQL lookup (need exim4-daemon-heavy)"
