#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a short time (CAIRN_FUZZ_SECS, 15 s by default) over
# its committed seed corpus, as CI's smoke check that no target crashes on what it finds quickly.
# Long runs are done by hand (docs/security.md, Fuzzing). Needs a nightly toolchain; without one
# it says so and exits 0, because the seed corpora are also run by the stable `cargo test -p
# cairn-fuzzing`. Installs cargo-fuzz from crates.io when it is missing.
#
# Usage: scripts/fuzz.sh [target...]     (all targets when none is named)
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${CAIRN_FUZZ_SECS:-15}
# A fixed random seed makes CI's short runs repeatable: a slower machine explores a prefix of the
# same inputs rather than different ones. Long runs by hand should vary it (CAIRN_FUZZ_SEED=0
# lets libFuzzer pick one).
seed=${CAIRN_FUZZ_SEED:-1}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly); the seed corpora still run in cargo test -p cairn-fuzzing"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

# The targets' scratch files (the WAL target's log directory) and the working corpus go to a
# directory removed on exit; findings go to fuzz/artifacts/<target>/ (git-ignored).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export CAIRN_FUZZ_DIR=$scratch

# One build of every target (coverage instrumentation, debug assertions), which the runs below
# reuse. No sanitizer (`-s none`): the crates under test contain no `unsafe` code, so AddressSanitizer
# would only slow the build and the runs; panics, aborts, timeouts and RSS blow-ups are caught
# without it.
cargo +nightly fuzz build --fuzz-dir fuzz -s none
failed=()
for target in "${targets[@]}"; do
    corpus="$scratch/corpus-$target"
    log="$scratch/$target.log"
    mkdir -p "$corpus"
    echo "==> fuzz $target for ${secs}s"
    # -rss_limit_mb makes a memory blow-up a finding instead of a stall; -timeout makes a hang
    # one (seconds per input).
    status=0
    cargo +nightly fuzz run --fuzz-dir fuzz -s none "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$secs" -seed="$seed" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    if [[ $status -ne 0 ]]; then
        tail -n 40 "$log"
        echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/"
        failed+=("$target")
    fi
done
if [[ ${#failed[@]} -ne 0 ]]; then
    echo "fuzz: crashes in: ${failed[*]}"
    exit 1
fi
echo "fuzz: every target ran ${secs}s clean"
