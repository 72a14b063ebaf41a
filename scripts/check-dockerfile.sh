#!/usr/bin/env bash
# The Dockerfile cannot be built here (no Docker engine). This checks what can be checked, for
# the major PG_CONFIG names: `cargo pgrx package` (the Dockerfile's build stage) produces
# exactly the files `make install` installs, and the runtime stage copies the package's library
# and extension directories, for whichever PG_MAJOR the image is built with.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG="${PG_CONFIG:?PG_CONFIG names the pg_config to package for}"
major="$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')"
pkg="target/package-check/pg$major"
rm -rf "$pkg"
cargo pgrx package --debug --pg-config "$PG_CONFIG" --no-default-features --features "pg$major" \
    --out-dir "$pkg" >/dev/null 2>&1
libdir="$("$PG_CONFIG" --pkglibdir)"
extdir="$("$PG_CONFIG" --sharedir)/extension"

# What `make install` installs: the library, the control file, this version's install script
# and every upgrade script (cargo-pgrx copies sql/pg_tenancy--FROM--TO.sql).
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
expected=$( {
    echo "${libdir#/}/pg_tenancy.so"
    echo "${extdir#/}/pg_tenancy.control"
    echo "${extdir#/}/pg_tenancy--$version.sql"
    for f in sql/pg_tenancy--*--*.sql; do
        echo "${extdir#/}/$(basename "$f")"
    done
} | sort)
actual=$(cd "$pkg" && find . -type f | sed 's|^\./||' | sort)
if [ "$expected" != "$actual" ]; then
    echo "check-dockerfile: the package differs from what make install installs" >&2
    diff <(echo "$expected") <(echo "$actual") >&2 || true
    exit 1
fi
# The image's layout is Debian's for every major: the runtime stage copies both directories.
grep -q '^ARG PG_MAJOR=' Dockerfile
grep -q '^COPY --from=build /pkg/usr/share/postgresql/${PG_MAJOR}/extension/ /usr/share/postgresql/${PG_MAJOR}/extension/$' Dockerfile
grep -q '^COPY --from=build /pkg/usr/lib/postgresql/${PG_MAJOR}/lib/ /usr/lib/postgresql/${PG_MAJOR}/lib/$' Dockerfile
grep -q -- '--features pg${PG_MAJOR} --out-dir /pkg$' Dockerfile
grep -q '"shared_preload_libraries=pg_tenancy"' Dockerfile
echo "check-dockerfile: PostgreSQL $major, $(echo "$actual" | wc -l) files, as make install installs them"
