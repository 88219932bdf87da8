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

step "done in $((SECONDS - started)) s"
