#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster for the demo and the client tests.
#
#   scripts/cluster.sh start DIR PORT   initdb (once) and start, as the postgres user, on 127.0.0.1
#   scripts/cluster.sh stop DIR         stop it (no error when it is not running)
#
# The cluster preloads pg_tenancy (shared_preload_libraries), so the library owns its settings
# before any client connects: a tenancy.* placeholder can never be planted by a session first.
# Local connections as postgres are trusted; every other role logs in with a password (scram).
set -euo pipefail

PG_BIN="${PG_BIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}"
action="${1:?start|stop}"
dir="${2:?data directory}"

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

case "$action" in
start)
    port="${3:?port}"
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    if [ ! -s "$dir/PG_VERSION" ]; then
        as_postgres "$PG_BIN/initdb" -D "$dir" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            --encoding=UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 || { cat "$dir.initdb.log"; exit 1; }
        cat >>"$dir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_preload_libraries = 'pg_tenancy'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
logging_collector = off
CONF
        sed -i '1i host all postgres 127.0.0.1/32 trust' "$dir/pg_hba.conf"
    fi
    if as_postgres "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        as_postgres "$PG_BIN/pg_ctl" -D "$dir" -w -m fast stop >/dev/null
    fi
    # The server runs without Rust backtrace variables: errors then read exactly as PostgreSQL's.
    as_postgres env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE \
        "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
    ;;
stop)
    if [ -s "$dir/PG_VERSION" ] && as_postgres "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        as_postgres "$PG_BIN/pg_ctl" -D "$dir" -w -m fast stop >/dev/null
    fi
    ;;
*)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
