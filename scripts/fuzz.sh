#!/usr/bin/env bash
# Runs the cargo-fuzz targets of the token parsers.
#   scripts/fuzz.sh RUNS TARGET...
# cargo-fuzz needs a nightly toolchain; it is installed with cargo when missing. Without a
# nightly toolchain on the machine (none can be downloaded here) the run is reported and
# skipped: the parsers' own tests (`cargo test -p tenancy_tokens`) still run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:?runs}"
shift
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: no nightly toolchain on this machine; skipping the fuzz run"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
for target in "$@"; do
    dict=()
    [ -f "fuzz/dicts/${target%_verify}.dict" ] && dict=("-dict=fuzz/dicts/${target%_verify}.dict")
    echo "fuzz: $target, $runs inputs"
    cargo +nightly fuzz run --fuzz-dir fuzz "$target" -- -runs="$runs" "${dict[@]}" 2>&1 | tail -n 3
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz: $target failed"; exit 1; }
done
