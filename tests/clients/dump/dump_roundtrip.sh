#!/usr/bin/env bash
# mysqldump round trip between MariaDB and the server under test (Cairn in CI).
#
# 1. A private MariaDB (scripts/mariadb/start.sh) gets the CalMail-like schema and data of
#    calmail_schema.sql in database `cairn_dump`; `mariadb-dump --databases cairn_dump` dumps it.
# 2. That dump is loaded unchanged into the server under test with the mariadb CLI, as an operator
#    moving to Cairn would, and the server under test is dumped the same way.
# 3. The two dumps must be identical except for the comment lines that name the server and the
#    time (the header's "MariaDB dump", "Host", "Server version" lines and "Dump completed").
# 4. The server's dump is loaded into a fresh MariaDB database and dumped once more: that third
#    dump must be identical to the first, so a dump taken from Cairn restores into MariaDB.
# 5. A schema created on the server under test with its own defaults (cairn_native_schema.sql: no
#    charset or collation clauses, so Cairn's utf8mb4_0900_ai_ci, and ENUM and SET columns) is
#    dumped from it and loaded into MariaDB, and every row reads back the same from both.
#
# Server under test: CAIRN_HOST, CAIRN_PORT, CAIRN_USER, CAIRN_PASSWORD (run.sh sets them). The
# MariaDB instance is private to this test and stopped at exit; databases `cairn_dump` and
# `cairn_native` are dropped on the server under test at the end.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)

CAIRN_HOST=${CAIRN_HOST:-127.0.0.1}
CAIRN_PORT=${CAIRN_PORT:-3306}
CAIRN_USER=${CAIRN_USER:-root}
CAIRN_PASSWORD=${CAIRN_PASSWORD:-}

fail() { echo "FAIL $*"; exit 1; }
ok() { echo "ok   $*"; }
note() { echo "note $*"; }

command -v mariadb >/dev/null || fail "the mariadb CLI is not installed (Debian package mariadb-client)"
dump_bin=$(command -v mariadb-dump || command -v mysqldump) || fail "mariadb-dump is not installed (Debian package mariadb-client)"

work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-dump.XXXXXX")
mariadb_dir=""
cleanup() {
    # Leave nothing behind on the server under test, then stop the private MariaDB.
    server_sql -e "DROP DATABASE IF EXISTS cairn_dump; DROP DATABASE IF EXISTS cairn_native" >/dev/null 2>&1 || true
    if [[ -n "$mariadb_dir" ]]; then
        "$root/scripts/mariadb/stop.sh" "$mariadb_dir" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The connection options of one server for the mariadb CLI and mariadb-dump. utf8mb4 both ways,
# so that 4-byte characters survive (mariadb-dump's default is utf8mb4 too; the CLI's is not).
server_args() { # host port user password
    local args=(--protocol=TCP --host="$1" --port="$2" --user="$3" --default-character-set=utf8mb4)
    [[ -n "$4" ]] && args+=(--password="$4")
    printf '%s\n' "${args[@]}"
}
mapfile -t server_opts < <(server_args "$CAIRN_HOST" "$CAIRN_PORT" "$CAIRN_USER" "$CAIRN_PASSWORD")
server_sql() { mariadb "${server_opts[@]}" "$@"; }

# ---- The private MariaDB -----------------------------------------------------------------------

started=$("$root/scripts/mariadb/start.sh" 2>"$work/mariadb-start.log" | tail -n 1) \
    || { cat "$work/mariadb-start.log"; fail "could not start MariaDB (scripts/mariadb/start.sh)"; }
eval "$started"
mariadb_dir=$DATADIR
mapfile -t peer_opts < <(server_args 127.0.0.1 "$PORT" root "")
peer_sql() { mariadb "${peer_opts[@]}" "$@"; }
ok "MariaDB started on port $PORT"

# mariadb-dump with its defaults (extended inserts, LOCK TABLES, DISABLE KEYS, versioned comments),
# plus --databases so that the dump creates and selects the database itself, and
# --order-by-primary: a plain `SELECT *` returns InnoDB's rows in primary-key order but Cairn's
# (like NDB's) partition by partition, in hash order; both orders load the same data.
dump() { # output-file connection-options...
    local out=$1
    shift
    "$dump_bin" "$@" --order-by-primary --databases "${dump_database:-cairn_dump}" >"$out" 2>"$out.err" || { cat "$out.err"; return 1; }
}

# The lines that legitimately differ between two dumps of the same data: the header names the
# dump tool, host and server version, the footer the time of the dump.
strip_volatile() {
    grep -a -v -E '^-- (MariaDB dump|MySQL dump|Host:|Server version|Dump completed)' "$1"
}

# MariaDB's dump rewritten in MySQL 8's spelling, which Cairn (a MySQL 8.0 server to its clients)
# uses in SHOW CREATE TABLE/DATABASE. These are the only rewrites, each a spelling of the same
# definition that MySQL 8 itself would print after loading MariaDB's dump:
# - integer display widths are dropped (MySQL 8.0.19+), except TINYINT(1), which drivers read as
#   a boolean;
# - a numeric column default is quoted (`DEFAULT '1024'`; MariaDB 10.2+ prints `DEFAULT 1024`);
# - `CURRENT_TIMESTAMP` for MariaDB's `current_timestamp()`, `year` for `year(4)`;
# - CREATE DATABASE carries MySQL 8's `/*!80016 DEFAULT ENCRYPTION='N' */` (MariaDB skips it).
mysql8_spelling() {
    sed -E \
        -e '/^  `/ { s/\b((small|medium|big)?int)\([0-9]+\)/\1/g; s/\btinyint\(([02-9]|[0-9]{2,})\)/tinyint/g }' \
        -e "/^  \`/ s/ DEFAULT (-?[0-9][0-9.eE+-]*)([ ,]|\$)/ DEFAULT '\1'\2/" \
        -e '/^  `/ { s/current_timestamp\(\)/CURRENT_TIMESTAMP/g; s/ year\(4\)/ year/ }' \
        -e "/^CREATE DATABASE / s|( \*/);\$|\1 /*!80016 DEFAULT ENCRYPTION='N' */;|" \
        "$1"
}

same_dump() { # what first second
    if diff -u <(strip_volatile "$2") <(strip_volatile "$3") >"$work/diff.txt"; then
        ok "$1"
    else
        head -n 80 "$work/diff.txt"
        fail "$1: the dumps differ (diff above: - $(basename "$2"), + $(basename "$3"))"
    fi
}

# ---- 1. MariaDB: schema, data, first dump -----------------------------------------------------------------

peer_sql -e "DROP DATABASE IF EXISTS cairn_dump; CREATE DATABASE cairn_dump DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
peer_sql cairn_dump <"$here/calmail_schema.sql" || fail "MariaDB rejected calmail_schema.sql"
dump "$work/1-mariadb.sql" "${peer_opts[@]}" || fail "mariadb-dump of MariaDB failed"
ok "dumped MariaDB: $(grep -c '^CREATE TABLE' "$work/1-mariadb.sql") tables, $(wc -c <"$work/1-mariadb.sql") bytes"

# ---- 2. Load into the server under test, dump it --------------------------------------------------

server_sql -e "DROP DATABASE IF EXISTS cairn_dump" || fail "could not drop cairn_dump on the server under test"
server_sql <"$work/1-mariadb.sql" >"$work/load-server.log" 2>&1 \
    || { cat "$work/load-server.log"; fail "the MariaDB dump does not load unchanged into the server under test"; }
ok "MariaDB's dump loaded unchanged into the server under test"

# Spot checks that the data arrived as values, not only as text that dumps back the same.
counts=$(server_sql --batch --skip-column-names -e "SELECT (SELECT COUNT(*) FROM cairn_dump.account), (SELECT COUNT(*) FROM cairn_dump.subscriber), (SELECT SUM(used_bytes) FROM cairn_dump.account), (SELECT HEX(password_hash) FROM cairn_dump.account WHERE id = 1)")
[[ "$counts" == $'6\t6\t27670116110687784255\t00FF10275C27' ]] \
    || fail "rows read back from the server under test: '$counts', expected 6, 6, the used_bytes sum and the password bytes"
ok "row counts, a BIGINT UNSIGNED sum and VARBINARY bytes read back as loaded"

dump "$work/2-server.sql" "${server_opts[@]}" || fail "mariadb-dump of the server under test failed"
if grep -q -- '-MariaDB' <(server_sql --batch --skip-column-names -e "SELECT VERSION()"); then
    # run.sh pointed at MariaDB itself: its dump must come back exactly as it was.
    cp "$work/1-mariadb.sql" "$work/1-expected.sql"
else
    mysql8_spelling "$work/1-mariadb.sql" >"$work/1-expected.sql"
fi
same_dump "the server's dump is MariaDB's dump (in MySQL 8's spelling), byte for byte but for the header" "$work/1-expected.sql" "$work/2-server.sql"

# The dump also reloads into the server under test itself (a backup restored in place).
server_sql <"$work/2-server.sql" >"$work/reload-server.log" 2>&1 \
    || { cat "$work/reload-server.log"; fail "the server's own dump does not reload into it"; }
dump "$work/3-server-again.sql" "${server_opts[@]}" || fail "second mariadb-dump of the server under test failed"
same_dump "the server's dump reloads into the server and dumps the same again" "$work/2-server.sql" "$work/3-server-again.sql"

# ---- 3. The server's dump into a fresh MariaDB database ----------------------------------------

peer_sql -e "DROP DATABASE cairn_dump"
peer_sql <"$work/2-server.sql" >"$work/load-mariadb.log" 2>&1 \
    || { cat "$work/load-mariadb.log"; fail "the server's dump does not load into MariaDB"; }
ok "the server's dump loaded unchanged into a fresh MariaDB database"
dump "$work/4-mariadb-again.sql" "${peer_opts[@]}" || fail "mariadb-dump of MariaDB (second time) failed"
same_dump "MariaDB dumps the reloaded data exactly as it dumped the original" "$work/1-mariadb.sql" "$work/4-mariadb-again.sql"

# ---- 4. A schema created on the server under test, into MariaDB ---------------------------------

server_sql -e "DROP DATABASE IF EXISTS cairn_native; CREATE DATABASE cairn_native" || fail "could not create cairn_native on the server under test"
server_sql cairn_native <"$here/cairn_native_schema.sql" || fail "the server under test rejected cairn_native_schema.sql"
dump_database=cairn_native dump "$work/5-native.sql" "${server_opts[@]}" || fail "mariadb-dump of cairn_native failed"
peer_sql -e "DROP DATABASE IF EXISTS cairn_native"
peer_sql <"$work/5-native.sql" >"$work/load-native.log" 2>&1 \
    || { cat "$work/load-native.log"; fail "a dump of tables created on the server under test does not load into MariaDB"; }
ok "a dump of tables created on the server under test (its default collation, ENUM and SET) loaded into MariaDB"

# Every row, read back from both servers in primary-key order, must be the same text.
for table in domain account forward subscriber; do
    query="SELECT * FROM cairn_native.\`$table\` ORDER BY 1, 2"
    server_rows=$(server_sql --batch --skip-column-names -e "$query") || fail "reading $table from the server under test"
    peer_rows=$(peer_sql --batch --skip-column-names -e "$query") || fail "reading $table from MariaDB"
    if [[ "$server_rows" != "$peer_rows" ]]; then
        diff <(echo "$server_rows") <(echo "$peer_rows") | head -n 20
        fail "table $table reads differently from MariaDB after the load (diff above: < server, > MariaDB)"
    fi
    [[ -n "$server_rows" ]] || fail "table $table is empty on the server under test"
done
ok "every row of domain, account, forward and subscriber reads the same from MariaDB"

# The SET values came across as sets, not as text: MariaDB finds members in them.
found=$(peer_sql --batch --skip-column-names -e "SELECT GROUP_CONCAT(id ORDER BY id) FROM cairn_native.account WHERE FIND_IN_SET('smtp', services)")
[[ "$found" == "1,3,5" ]] || fail "MariaDB finds smtp in the accounts '$found', expected 1,3,5"
collation=$(peer_sql --batch --skip-column-names -e "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'cairn_native' AND TABLE_NAME = 'account'")
note "MariaDB gave the loaded tables the collation $collation"
peer_sql -e "DROP DATABASE cairn_native"
