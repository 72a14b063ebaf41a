#!/usr/bin/env bash
# Installs what building and testing pg_tenancy needs, only what is missing (a second run is
# fast): Debian packages for PostgreSQL 15 and its headers, clang for bindgen, sudo (for
# `cargo pgrx test --runas postgres`), pgbouncer, and cargo-pgrx at the version Cargo.toml pins.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_MAJOR="${PG_MAJOR:-15}"
PGRX_VERSION="$(sed -n 's/^pgrx = "=\(.*\)"/\1/p' Cargo.toml)"
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"

packages=(postgresql-"$PG_MAJOR" postgresql-server-dev-"$PG_MAJOR" postgresql-contrib libclang-dev clang
          pkg-config sudo pgbouncer)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian starts a cluster of its own on 5432; ours run on other ports, so it may stay.

if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION\$"; then
    echo "installing cargo-pgrx $PGRX_VERSION"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

PGRX_HOME="${PGRX_HOME:-$HOME/.pgrx}"
if ! grep -qs "pg$PG_MAJOR = \"$PG_CONFIG\"" "$PGRX_HOME/config.toml"; then
    cargo pgrx init --pg"$PG_MAJOR" "$PG_CONFIG"
fi
