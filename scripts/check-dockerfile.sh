#!/usr/bin/env bash
# The Dockerfile cannot be built here (no Docker engine). This checks what can be checked: the
# build stage's `cargo pgrx package` plus its copy of the release and upgrade scripts produce
# exactly the files `make install` installs, and the runtime stage copies those directories.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
pkg="target/package-check"
rm -rf "$pkg"
cargo pgrx package --debug --pg-config "$PG_CONFIG" --no-default-features --features pg15 \
    --out-dir "$pkg" >/dev/null 2>&1
ext="$pkg/usr/share/postgresql/15/extension"
cp sql/releases/*.sql sql/upgrades/*.sql "$ext/"   # the Dockerfile's build stage does the same

# What `make install` installs (cargo pgrx install + the Makefile's release/upgrade copy).
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
expected=$( {
    echo "usr/lib/postgresql/15/lib/pg_tenancy.so"
    echo "usr/share/postgresql/15/extension/pg_tenancy.control"
    echo "usr/share/postgresql/15/extension/pg_tenancy--$version.sql"
    for f in sql/releases/*.sql sql/upgrades/*.sql; do
        echo "usr/share/postgresql/15/extension/$(basename "$f")"
    done
} | sort)
actual=$(cd "$pkg" && find . -type f | sed 's|^\./||' | sort)
if [ "$expected" != "$actual" ]; then
    echo "check-dockerfile: the package differs from what make install installs" >&2
    diff <(echo "$expected") <(echo "$actual") >&2 || true
    exit 1
fi
# The runtime stage copies both package directories, and the build stage copies the scripts.
grep -q '^COPY --from=build /pkg/usr/share/postgresql/15/extension/ /usr/share/postgresql/15/extension/$' Dockerfile
grep -q '^COPY --from=build /pkg/usr/lib/postgresql/15/lib/ /usr/lib/postgresql/15/lib/$' Dockerfile
grep -q 'cp sql/releases/\*.sql sql/upgrades/\*.sql /pkg/usr/share/postgresql/15/extension/' Dockerfile
grep -q '"shared_preload_libraries=pg_tenancy"' Dockerfile
echo "check-dockerfile: $(echo "$actual" | wc -l) files, as make install installs them"
