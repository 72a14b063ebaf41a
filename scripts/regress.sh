#!/usr/bin/env bash
# Runs the pg_regress golden-file suite in tests/pg_regress against a running cluster.
#
#   scripts/regress.sh PORT [TEST ...]
#
# pg_regress creates a fresh database for the run; `setup` (CREATE EXTENSION) runs first, then
# every test in tests/pg_regress/sql in name order (or the ones named). The layout is the one
# `cargo pgrx regress` uses, so a developer who is not root can run that instead.
# Results and diffs land in target/pg_regress/.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${1:?port}"
shift
PG_CONFIG="${PG_CONFIG:-$(scripts/pg-config.sh 15)}"
pg_regress="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress"

if [ $# -gt 0 ]; then
    tests=("$@")
else
    tests=()
    for f in tests/pg_regress/sql/*.sql; do
        t="$(basename "$f" .sql)"
        [ "$t" = setup ] || tests+=("$t")
    done
fi

out="target/pg_regress"
rm -rf "$out"
mkdir -p "$out"
"$pg_regress" \
    --bindir="$("$PG_CONFIG" --bindir)" \
    --host=127.0.0.1 --port="$port" --user=postgres \
    --dbname=pg_tenancy_regress \
    --inputdir=tests/pg_regress --outputdir="$out" \
    setup "${tests[@]}" || { status=$?; [ -f "$out/regression.diffs" ] && cat "$out/regression.diffs"; exit $status; }
