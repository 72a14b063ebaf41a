#!/usr/bin/env bash
# Starts or stops Debian's pgbouncer in transaction pooling mode in front of a local cluster, for
# the PgBouncer load test (tests/pgbouncer.rs) and for trying things by hand.
#
#   scripts/pgbouncer.sh start DIR PORT PG_PORT ROLE... [-- SETTING=VALUE ...]
#   scripts/pgbouncer.sh stop DIR
#
# `start` writes DIR/pgbouncer.ini and DIR/userlist.txt and starts pgbouncer as the postgres user
# on 127.0.0.1:PORT, forwarding every database to 127.0.0.1:PG_PORT. Clients authenticate with
# scram-sha-256 against the SCRAM secrets of ROLE... as the cluster stores them (read from
# pg_authid as the superuser): no password is written down, and pgbouncer logs in to the server
# with the client's own SCRAM proof. Settings after `--` are added to (or override) the
# [pgbouncer] section, e.g. `default_pool_size=4` or `server_reset_query_always=1`. The log is
# DIR/pgbouncer.log. A running pgbouncer of DIR is stopped first.
set -euo pipefail

PSQL="${PG_BIN:+$PG_BIN/}psql"
PGBOUNCER="${PGBOUNCER:-/usr/sbin/pgbouncer}"
action="${1:?start|stop}"
dir="$(realpath -m "${2:?directory for the configuration and the log}")"

as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

stop() {
    local pid
    [ -s "$dir/pgbouncer.pid" ] || return 0
    pid="$(cat "$dir/pgbouncer.pid")"
    if kill -0 "$pid" 2>/dev/null && grep -qs pgbouncer "/proc/$pid/cmdline"; then
        kill -INT "$pid" # immediate shutdown: clients are disconnected
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$dir/pgbouncer.pid"
}

case "$action" in
start)
    port="${3:?pgbouncer port}"
    pg_port="${4:?PostgreSQL port}"
    shift 4
    roles=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do roles+=("$1"); shift; done
    [ $# -gt 0 ] && shift # --
    [ ${#roles[@]} -gt 0 ] || { echo "$0: name at least one role" >&2; exit 2; }

    stop
    mkdir -p "$dir"
    chown postgres:postgres "$dir"

    # "role" "SCRAM-SHA-256$…", one line a role; a role without a SCRAM secret is an error.
    list="$(printf "'%s'," "${roles[@]}")"
    "$PSQL" -X -At -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$pg_port user=postgres dbname=postgres" \
        -c "SELECT format('\"%s\" \"%s\"', rolname, rolpassword)
              FROM pg_authid WHERE rolname IN (${list%,}) AND rolpassword LIKE 'SCRAM-SHA-256\$%'
             ORDER BY 1" >"$dir/userlist.txt.new"
    found="$(wc -l <"$dir/userlist.txt.new")"
    if [ "$found" -ne ${#roles[@]} ]; then
        echo "$0: found SCRAM secrets for $found of the ${#roles[@]} roles ${roles[*]}" >&2
        exit 1
    fi
    chmod 600 "$dir/userlist.txt.new"
    chown postgres:postgres "$dir/userlist.txt.new"
    mv "$dir/userlist.txt.new" "$dir/userlist.txt"

    {
        cat <<INI
[databases]
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 100
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
log_connections = 1
log_disconnections = 1
INI
        for setting in "$@"; do
            echo "${setting%%=*} = ${setting#*=}"
        done
    } >"$dir/pgbouncer.ini"
    chown postgres:postgres "$dir/pgbouncer.ini"

    : >"$dir/pgbouncer.log"
    chown postgres:postgres "$dir/pgbouncer.log"
    as_postgres "$PGBOUNCER" -d -q "$dir/pgbouncer.ini"
    # Ready when it accepts TCP connections.
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then exit 0; fi
        sleep 0.05
    done
    echo "$0: pgbouncer did not start; its log:" >&2
    cat "$dir/pgbouncer.log" >&2
    exit 1
    ;;
stop)
    stop
    ;;
*)
    echo "usage: $0 start DIR PORT PG_PORT ROLE... [-- SETTING=VALUE ...] | stop DIR" >&2
    exit 2
    ;;
esac
