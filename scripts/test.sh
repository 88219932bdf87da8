#!/usr/bin/env bash
# Runs every test of Cairn on a fresh machine: unit and golden tests of every crate, end-to-end
# tests against clusters of real processes, and (where the machine can install them) real MySQL
# clients. Called by .ci/run; the README names it as the test command.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() { printf '\n==> %s (%ds)\n' "$*" $((SECONDS - started)); }

step "build the cairn binary the end-to-end tests run"
cargo build --locked --bin cairn

step "unit, golden and end-to-end tests of every crate"
cargo test --locked --workspace --no-fail-fast

# Every cargo-fuzz target for 15 s over its seed corpus (about 3 minutes with the nightly build of
# fuzz/; skipped with a message when no nightly toolchain is installed). The seed corpora, crash
# regressions included, also ran above in the stable `cargo test -p cairn-fuzzing`.
step "fuzz targets, briefly (scripts/fuzz.sh)"
scripts/fuzz.sh

# Real MySQL clients (mysql CLI, PyMySQL, mysqlclient, mysql-connector-python, SQLAlchemy, mysql2,
# DBD::MariaDB, DBD::mysql, JDBC, PHP PDO and mysqli, Go, Exim) against a 2-node-group `cairn up`.
# run.sh installs what they need as a new user would (apt as root, pip into a virtualenv, npm);
# on a fresh machine that is about 2.5 minutes and 130 MB, then about 35 s per run. Set
# CAIRN_SKIP_CLIENTS=1 on a machine that cannot install them (not root, no network).
if [[ "${CAIRN_SKIP_CLIENTS:-0}" == 1 ]]; then
    step "real MySQL clients: skipped (CAIRN_SKIP_CLIENTS=1)"
else
    step "real MySQL clients against a 2-node-group cluster"
    tests/clients/against_cairn.sh target/debug/cairn
fi

step "done in $((SECONDS - started)) s"
