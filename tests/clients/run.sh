#!/usr/bin/env bash
# Runs one realistic test program per real MySQL client against a MySQL-compatible server.
#
# Usage: tests/clients/run.sh --host H --port P [--user root] [--password PW]
#                             [--only name,name] [--pending feature,feature]
#                             [--skip-install] [--install-only] [--list]
#
# Prints one line per client, `PASS name (secs)`, `FAIL name: first failure` or
# `SKIP name: reason`, then a closing `N passed, N failed, N skipped` line, and exits non-zero if
# any client failed. Each client's full output is kept in $CLIENT_CACHE/logs/<name>.log.
#
# --pending names server features the server under test does not have yet: `transactions`
# (COMMIT/ROLLBACK as a second connection sees them), `unique` (UNIQUE keys enforced: 1062),
# `routines` (stored functions: the exim-greylist client is skipped). Checks of a pending feature
# print `pending feature: what: ...` instead of failing (counted on the PASS line); drop the
# word once the feature lands and they are real checks again.
#
# Installing: every client is installed the way a new user of a fresh Debian 12 machine would:
# Debian packages with `apt-get install -y`, Python packages with pip into a virtualenv, Node
# packages with npm into a local node_modules, the Java and Go programs compiled against Debian's
# driver packages. Virtualenv, node_modules and compiled programs live under
# ${CLIENT_CACHE:-~/.cache/cairn-clients}; a stamp file per piece (a hash of what it was built
# from) makes a second run skip everything that is already in place. The install phase prints how
# long each piece took and how much it downloaded.
#
# The README beside this script says what each client test checks.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script_name=$(basename "$0")
log() { echo "$script_name: $*" >&2; }
die() { log "error: $*"; exit 2; }

# Every client this script knows, in the order they run. The name is what --only takes and what
# the PASS/FAIL line shows.
all_clients=(mysql-cli pymysql mysqlclient connector-pure connector-cext sqlalchemy mysql2
             dbd-mariadb dbd-mysql jdbc php-pdo php-mysqli go exim exim-greylist mysqldump)

host="" port="" user="root" password="" only="" pending="" skip_install=0 install_only=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --host) host="${2:?--host needs a value}"; shift 2 ;;
        --port) port="${2:?--port needs a value}"; shift 2 ;;
        --user) user="${2:?--user needs a value}"; shift 2 ;;
        --password) password="${2?--password needs a value}"; shift 2 ;;
        --only) only="${2:?--only needs a value}"; shift 2 ;;
        --pending) pending="${2?--pending needs a value}"; shift 2 ;;
        --skip-install) skip_install=1; shift ;;
        --install-only) install_only=1; shift ;;
        --list) printf '%s\n' "${all_clients[@]}"; exit 0 ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
if [[ $install_only -eq 0 ]]; then
    [[ -n "$host" && -n "$port" ]] || die "--host and --port are required (see --help)"
fi

selected=()
if [[ -n "$only" ]]; then
    IFS=',' read -r -a wanted <<<"$only"
    for name in "${wanted[@]}"; do
        found=0
        for known in "${all_clients[@]}"; do [[ "$known" == "$name" ]] && found=1; done
        [[ $found -eq 1 ]] || die "unknown client '$name'; known: ${all_clients[*]}"
        selected+=("$name")
    done
else
    selected=("${all_clients[@]}")
fi

cache="${CLIENT_CACHE:-$HOME/.cache/cairn-clients}"
mkdir -p "$cache/logs"
cache=$(cd "$cache" && pwd)
logs="$cache/logs"

# ---- What each client needs --------------------------------------------------------------------

# Debian packages per client. gcc is on every machine of this kind (it is what -sys crates use),
# so the mysqlclient build needs only the MariaDB headers and pkg-config on top.
apt_packages_for() {
    case "$1" in
        mysql-cli) echo "mariadb-client" ;;
        mysqlclient) echo "libmariadb-dev pkg-config" ;;
        pymysql|connector-pure|connector-cext|sqlalchemy) echo "" ;;
        mysql2) echo "" ;;
        dbd-mariadb) echo "libdbd-mariadb-perl" ;;
        dbd-mysql) echo "libdbd-mysql-perl" ;;
        jdbc) echo "libmariadb-java" ;;
        php-pdo|php-mysqli) echo "php-cli php-mysql" ;;
        go) echo "golang-go golang-github-go-sql-driver-mysql-dev" ;;
        # The Exim tests set up their schema with the mariadb CLI.
        exim|exim-greylist) echo "exim4-daemon-heavy mariadb-client" ;;
        # The dump round trip runs its own MariaDB peer (scripts/mariadb/start.sh) to dump from.
        mysqldump) echo "mariadb-client mariadb-server" ;;
    esac
}
needs_venv() { case "$1" in pymysql|mysqlclient|connector-pure|connector-cext|sqlalchemy) return 0 ;; esac; return 1; }
needs_npm() { [[ "$1" == mysql2 ]]; }
needs_java() { [[ "$1" == jdbc ]]; }
needs_go() { [[ "$1" == go ]]; }

any_selected() {
    local predicate=$1 name
    for name in "${selected[@]}"; do "$predicate" "$name" && return 0; done
    return 1
}

# A stamp is the hash of everything a cached piece was built from; equal stamp, nothing to do.
stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---- Install -----------------------------------------------------------------------------------

install_report=()
declare -A apt_failed=()
install_total_s=0
install_total_kb=0

now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }
add_total() { install_total_s=$(awk -v a="$install_total_s" -v b="$1" 'BEGIN { printf "%.1f", a + b }'); }

install_apt() {
    local packages=() name p missing=()
    for name in "${selected[@]}"; do
        for p in $(apt_packages_for "$name"); do packages+=("$p"); done
    done
    [[ ${#packages[@]} -gt 0 ]] || return 0
    for p in $(printf '%s\n' "${packages[@]}" | sort -u); do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        install_report+=("apt: all packages present")
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "Debian packages missing (${missing[*]}) and this is not root: apt-get install -y ${missing[*]}"
    local start apt_log=$logs/install-apt.log
    start=$(now_s)
    log "apt-get install -y ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Two runs at once must not both drive dpkg; the lock makes the second wait.
    exec 8>"$cache/.apt.lock"
    flock 8
    # A fresh machine may have empty package lists; update first then, otherwise only on failure.
    if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
        apt-get update -q >"$apt_log" 2>&1 || { cat "$apt_log" >&2; die "apt-get update failed"; }
    fi
    if ! apt-get install -y -q "${missing[@]}" >>"$apt_log" 2>&1; then
        log "apt-get install failed; running apt-get update and trying again"
        apt-get update -q >>"$apt_log" 2>&1 || true
        if ! apt-get install -y -q "${missing[@]}" >>"$apt_log" 2>&1; then
            # One package that cannot be had must not stop the others: install them one by one,
            # and the clients whose package failed are reported as SKIP with apt's reason.
            for p in "${missing[@]}"; do
                if ! apt-get install -y -q "$p" >>"$apt_log" 2>&1; then
                    apt_failed[$p]=$(grep -E '^E: ' "$apt_log" | tail -n 1)
                    log "apt-get install $p failed: ${apt_failed[$p]}"
                fi
            done
        fi
    fi
    flock -u 8
    exec 8>&-
    # apt says "Need to get 87.2 MB of archives."; that is the download size.
    local kb
    kb=$(awk '/^Need to get/ { v=$4; u=$5; gsub(",", "", v); sub("/.*", "", v);
              if (u ~ /^kB/) k=v; else if (u ~ /^MB/) k=v*1000; else if (u ~ /^GB/) k=v*1000000; else k=v/1000;
              t+=k } END { printf "%d", t }' "$apt_log")
    local secs
    secs=$(elapsed "$start")
    add_total "$secs"
    install_total_kb=$((install_total_kb + kb))
    install_report+=("apt: ${#missing[@]} packages requested (${missing[*]}) in ${secs}s, downloaded $((kb / 1000)) MB")
}

venv="$cache/venv"
install_venv() {
    local requirements="$here/python/requirements.txt" python="${PYTHON:-python3}"
    command -v "$python" >/dev/null || die "no $python on PATH"
    local stamp
    stamp=$( { cat "$requirements"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
    if [[ -f "$venv/.cairn-stamp" && "$(cat "$venv/.cairn-stamp")" == "$stamp" ]]; then
        install_report+=("pip: virtualenv up to date ($venv)")
        return 0
    fi
    local start pip_log=$logs/install-pip.log
    start=$(now_s)
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" >"$pip_log" 2>&1; then
        # Debian's own python3 needs python3-venv for `-m venv`.
        [[ $(id -u) -eq 0 ]] && apt-get install -y -q python3-venv >>"$pip_log" 2>&1
        "$python" -m venv "$venv" >>"$pip_log" 2>&1 || { cat "$pip_log" >&2; die "could not create a virtualenv"; }
    fi
    log "pip install -r python/requirements.txt into $venv"
    # --no-cache-dir keeps the measurement honest: every package is downloaded, as on a new machine.
    "$venv/bin/pip" install --disable-pip-version-check --no-cache-dir -r "$requirements" >>"$pip_log" 2>&1 \
        || { tail -n 30 "$pip_log" >&2; die "pip install failed (log: $pip_log)"; }
    # pip prints "Downloading name-1.0.whl (1.2 MB)" per file.
    local kb secs
    kb=$(grep -oE 'Downloading [^ ]+ \([0-9.]+ [kMG]?B\)' "$pip_log" | sed -E 's/.*\(([0-9.]+) ([kMG]?B)\)/\1 \2/' |
         awk '{ k = ($2 == "kB") ? $1 : ($2 == "MB") ? $1 * 1000 : ($2 == "GB") ? $1 * 1000000 : $1 / 1000; t += k }
              END { printf "%d", t }')
    echo "$stamp" >"$venv/.cairn-stamp"
    secs=$(elapsed "$start")
    add_total "$secs"
    install_total_kb=$((install_total_kb + kb))
    install_report+=("pip: $(grep -c '^' "$requirements") requirements in ${secs}s, downloaded $((kb / 1000)) MB; $("$venv/bin/pip" freeze --disable-pip-version-check | tr '\n' ' ')")
}

node_dir="$cache/node"
install_npm() {
    command -v npm >/dev/null || die "npm is not on PATH"
    local stamp
    stamp=$( { cat "$here/node/package.json"; node --version; } | sha256sum | cut -d' ' -f1)
    if [[ -f "$node_dir/.cairn-stamp" && "$(cat "$node_dir/.cairn-stamp")" == "$stamp" && -d "$node_dir/node_modules" ]]; then
        install_report+=("npm: node_modules up to date ($node_dir)")
        return 0
    fi
    local start npm_log=$logs/install-npm.log
    start=$(now_s)
    rm -rf "$node_dir"
    mkdir -p "$node_dir"
    cp "$here/node/package.json" "$node_dir/"
    log "npm install in $node_dir"
    # A private npm cache that starts empty measures exactly what was downloaded.
    (cd "$node_dir" && npm install --no-audit --no-fund --cache "$node_dir/.npm-cache" >"$npm_log" 2>&1) \
        || { tail -n 30 "$npm_log" >&2; die "npm install failed (log: $npm_log)"; }
    local kb secs
    kb=$(du -sk "$node_dir/.npm-cache/_cacache/content-v2" 2>/dev/null | cut -f1)
    rm -rf "$node_dir/.npm-cache"
    echo "$stamp" >"$node_dir/.cairn-stamp"
    secs=$(elapsed "$start")
    add_total "$secs"
    install_total_kb=$((install_total_kb + ${kb:-0}))
    install_report+=("npm: mysql2 $(node -p "require('$node_dir/node_modules/mysql2/package.json').version") in ${secs}s, downloaded $(( ${kb:-0} / 1000 )) MB")
}

java_dir="$cache/java"
mariadb_jar=/usr/share/java/mariadb-java-client.jar
build_java() {
    command -v javac >/dev/null || die "javac is not on PATH"
    [[ -f "$mariadb_jar" ]] || die "$mariadb_jar is missing (Debian package libmariadb-java)"
    local stamp
    stamp=$( { cat "$here/java/ClientTest.java"; javac -version 2>&1; sha256sum "$mariadb_jar"; } | sha256sum | cut -d' ' -f1)
    if [[ -f "$java_dir/.cairn-stamp" && "$(cat "$java_dir/.cairn-stamp")" == "$stamp" ]]; then
        install_report+=("javac: ClientTest up to date")
        return 0
    fi
    local start secs
    start=$(now_s)
    rm -rf "$java_dir"
    mkdir -p "$java_dir"
    javac -Xlint:all -cp "$mariadb_jar" -d "$java_dir" "$here/java/ClientTest.java" >"$logs/install-javac.log" 2>&1 \
        || { cat "$logs/install-javac.log" >&2; die "javac failed"; }
    echo "$stamp" >"$java_dir/.cairn-stamp"
    secs=$(elapsed "$start")
    add_total "$secs"
    install_report+=("javac: ClientTest compiled in ${secs}s")
}

go_dir="$cache/go"
build_go() {
    command -v go >/dev/null || die "go is not on PATH (Debian package golang-go)"
    local stamp
    stamp=$( { cat "$here/go/main.go"; go version; } | sha256sum | cut -d' ' -f1)
    if [[ -f "$go_dir/.cairn-stamp" && "$(cat "$go_dir/.cairn-stamp")" == "$stamp" && -x "$go_dir/clienttest" ]]; then
        install_report+=("go: clienttest up to date")
        return 0
    fi
    local start secs
    start=$(now_s)
    mkdir -p "$go_dir/cache"
    # GOPATH mode over Debian's source packages in /usr/share/gocode: nothing is fetched, and
    # GOPROXY=off makes any attempt to fetch fail loudly instead of reaching out.
    (cd "$here/go" && GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= GOTOOLCHAIN=local \
        GOCACHE="$go_dir/cache" go build -o "$go_dir/clienttest" main.go) >"$logs/install-go.log" 2>&1 \
        || { cat "$logs/install-go.log" >&2; die "go build failed"; }
    echo "$stamp" >"$go_dir/.cairn-stamp"
    secs=$(elapsed "$start")
    add_total "$secs"
    install_report+=("go: clienttest built in ${secs}s")
}

if [[ $skip_install -eq 0 ]]; then
    exec 7>"$cache/.install.lock"
    flock 7
    install_apt
    any_selected needs_venv && install_venv
    any_selected needs_npm && install_npm
    any_selected needs_java && build_java
    any_selected needs_go && build_go
    flock -u 7
    for line in "${install_report[@]}"; do echo "install: $line"; done
    echo "install: total ${install_total_s}s, downloaded $((install_total_kb / 1000)) MB"
fi
[[ $install_only -eq 1 ]] && exit 0

# ---- Run ---------------------------------------------------------------------------------------

export CAIRN_HOST="$host" CAIRN_PORT="$port" CAIRN_USER="$user" CAIRN_PASSWORD="$password"
export CAIRN_PENDING="$pending"
is_pending() { [[ ",$pending," == *",$1,"* ]]; }
# The Python programs import common.py; keep the source tree free of __pycache__ directories.
export PYTHONDONTWRITEBYTECODE=1
py="$venv/bin/python"

# Prints "SKIP reason" when a client cannot run here, nothing when it can.
why_skip() {
    local name=$1 p
    if [[ $name == exim-greylist ]] && is_pending routines; then
        echo "needs stored functions (--pending routines)"
        return
    fi
    for p in $(apt_packages_for "$name"); do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || { echo "Debian package $p is not installed (${apt_failed[$p]:-run without --skip-install})"; return; }
    done
    if needs_venv "$name" && [[ ! -x "$py" ]]; then echo "no virtualenv at $venv (run without --skip-install)"; return; fi
    if needs_npm "$name" && [[ ! -d "$node_dir/node_modules/mysql2" ]]; then echo "mysql2 is not installed in $node_dir"; return; fi
    if needs_java "$name" && [[ ! -f "$java_dir/ClientTest.class" ]]; then echo "ClientTest is not compiled"; return; fi
    if needs_go "$name" && [[ ! -x "$go_dir/clienttest" ]]; then echo "the Go program is not built"; return; fi
    return 0
}

run_client() {
    local name=$1
    case "$name" in
        mysql-cli) python3 "$here/cli/cli_test.py" ;;
        pymysql) "$py" "$here/python/dbapi_test.py" pymysql ;;
        mysqlclient) "$py" "$here/python/dbapi_test.py" mysqlclient ;;
        connector-pure) "$py" "$here/python/dbapi_test.py" connector-pure ;;
        connector-cext) "$py" "$here/python/dbapi_test.py" connector-cext ;;
        sqlalchemy) "$py" "$here/python/sqlalchemy_test.py" ;;
        mysql2) NODE_PATH="$node_dir/node_modules" node "$here/node/mysql2_test.js" ;;
        dbd-mariadb) perl "$here/perl/dbi_test.pl" MariaDB ;;
        dbd-mysql) perl "$here/perl/dbi_test.pl" mysql ;;
        jdbc) java -cp "$java_dir:$mariadb_jar" ClientTest ;;
        php-pdo) php "$here/php/pdo_test.php" ;;
        php-mysqli) php "$here/php/mysqli_test.php" ;;
        go) "$go_dir/clienttest" ;;
        exim) bash "$here/exim/exim_route_test.sh" ;;
        exim-greylist) bash "$here/exim/exim_greylist_test.sh" ;;
        mysqldump) bash "$here/dump/dump_roundtrip.sh" ;;
    esac
}

passed=0 failed=0 skipped=0
for name in "${selected[@]}"; do
    reason=$(why_skip "$name")
    if [[ -n "$reason" ]]; then
        echo "SKIP $name: $reason"
        skipped=$((skipped + 1))
        continue
    fi
    client_log="$logs/$name.log"
    start=$(now_s)
    # A hung client must not hang CI: five minutes is far beyond what any of them needs.
    if timeout 300 bash -c "$(declare -f run_client); $(declare -p here py node_dir java_dir mariadb_jar go_dir); run_client $name" \
            >"$client_log" 2>&1 </dev/null; then
        marked=$(grep -c '^pending ' "$client_log" || true)
        if [[ $marked -gt 0 ]]; then
            echo "PASS $name ($(elapsed "$start")s; $marked pending checks, see the log)"
        else
            echo "PASS $name ($(elapsed "$start")s)"
        fi
        passed=$((passed + 1))
    else
        status=$?
        first=$(grep -m1 -E '^FAIL' "$client_log" || true)
        [[ -n "$first" ]] || first=$(grep -v '^[[:space:]]*$' "$client_log" | tail -n 1 || true)
        first=${first#FAIL }
        [[ $status -eq 124 ]] && first="timed out after 300 s; last output: $first"
        echo "FAIL $name: ${first:-exit status $status, no output} (log: $client_log)"
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
