#!/usr/bin/env bash
# Runs the client examples (examples/python, examples/node, examples/rust) against a running
# cluster and checks that each prints exactly examples/expected.txt.
#
#   scripts/examples.sh PORT [python|node|rust ...]     (default: all three)
#
# As the superuser (postgres, trusted on 127.0.0.1), it recreates database tenancy_examples
# with pg_tenancy, the login roles examples_app (tenancy_app) and examples_client
# (tenancy_client) with fresh random passwords, two tenants and their users, the isolated
# table orders, an API token and a JWT signing key, and hands them to the programs in
# environment variables. Rerunnable: everything is dropped and made again.
#
# Each program runs twice: directly, then through PgBouncer in transaction pooling mode
# (scripts/pgbouncer.sh, port EXAMPLES_PGBOUNCER_PORT, default 28971; `none` skips it).
#
# Dependencies come from the registries, pinned by the committed lock files, and are installed
# under target/examples (python venv, cargo target dir) and examples/node/node_modules; a
# second run reinstalls nothing unless a lock file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${1:?usage: $0 PORT [python|node|rust ...]}"
shift
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(python node rust)

PSQL="${PG_BIN:+$PG_BIN/}psql"
PYTHON="${PYTHON:-python3}"
work="$PWD/target/examples"
db=tenancy_examples
mkdir -p "$work"

log() { echo "examples: $*" >&2; }

# --- dependencies (idempotent) ---------------------------------------------------------------

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

install_python() {
    local venv="$work/venv" sum
    sum="$(sha256sum examples/python/requirements.txt | cut -d' ' -f1)"
    stamp_ok "$venv/.requirements.sha256" "$sum" && return
    log "installing the python example's requirements into $venv"
    "$PYTHON" -m venv --clear "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps \
        -r examples/python/requirements.txt
    echo "$sum" >"$venv/.requirements.sha256"
}

install_node() {
    local sum
    sum="$(sha256sum examples/node/package-lock.json | cut -d' ' -f1)"
    stamp_ok examples/node/node_modules/.lock.sha256 "$sum" && return
    log "npm ci in examples/node"
    (cd examples/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$sum" >examples/node/node_modules/.lock.sha256
}

build_rust() {
    # A no-op when nothing changed (cargo's own check).
    cargo build -q --locked --manifest-path examples/rust/Cargo.toml --target-dir "$work/rust"
}

for lang in "${langs[@]}"; do
    case "$lang" in
    python) install_python ;;
    node) install_node ;;
    rust) build_rust ;;
    *) echo "unknown example: $lang" >&2; exit 2 ;;
    esac
done

# --- the database, as the superuser ----------------------------------------------------------

password() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }
app_password="$(password)"
client_password="$(password)"

"$PSQL" -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$port user=postgres dbname=postgres" <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $db WITH (FORCE);
DROP ROLE IF EXISTS examples_app;
DROP ROLE IF EXISTS examples_client;
CREATE DATABASE $db;
SQL

# The values the programs need, one KEY=value line each.
"$PSQL" -X -q -At -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$port user=postgres dbname=$db" \
    -v app_password="$app_password" -v client_password="$client_password" \
    >"$work/env" <<'SQL'
SET client_min_messages = error;  -- the superuser's set_tenant() warns that it bypasses RLS
CREATE EXTENSION pg_tenancy;      -- creates the group roles tenancy_app and tenancy_client
CREATE ROLE examples_app LOGIN PASSWORD :'app_password' IN ROLE tenancy_app;
CREATE ROLE examples_client LOGIN PASSWORD :'client_password' IN ROLE tenancy_client;
-- Temporary tables live on the server connection and would outlive a pooled client.
REVOKE TEMPORARY ON DATABASE tenancy_examples FROM PUBLIC;

CREATE TABLE orders (
    tenant_id uuid NOT NULL,
    id text NOT NULL,
    total int NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT tenancy.isolate('orders', read_permission => 'orders:read',
                       write_permission => 'orders:write') \g /dev/null

SELECT tenancy.create_user('alice@example.com') AS alice,
       tenancy.create_user('victor@example.com') AS victor,
       tenancy.create_user('bob@example.com') AS bob \gset
SELECT tenancy.create_tenant('Store A', :'alice') AS tenant_a,
       tenancy.create_tenant('Store B', :'bob') AS tenant_b \gset
INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES (:'tenant_a', :'victor', 'viewer');
INSERT INTO orders (tenant_id, id, total)
VALUES (:'tenant_a', 'a-1', 10), (:'tenant_a', 'a-2', 20), (:'tenant_b', 'b-1', 15);

BEGIN;
SELECT tenancy.set_tenant(:'tenant_a', :'alice') \g /dev/null
SELECT token AS api_token FROM tenancy.create_api_token('examples', ARRAY['orders:read']) \gset
COMMIT;
SELECT kid AS jwt_kid, secret AS jwt_secret FROM tenancy.create_signing_key() \gset

\echo TENANT_A=:tenant_a
\echo TENANT_B=:tenant_b
\echo ALICE=:alice
\echo VICTOR=:victor
\echo BOB=:bob
\echo API_TOKEN=:api_token
\echo JWT_KID=:jwt_kid
\echo JWT_SECRET=:jwt_secret
SQL

set -a
# shellcheck disable=SC1091
. "$work/env"
PGHOST=127.0.0.1
PGPORT="$port"
PGDATABASE="$db"
APP_ROLE=examples_app
APP_PASSWORD="$app_password"
CLIENT_ROLE=examples_client
CLIENT_PASSWORD="$client_password"
set +a
unset PGUSER PGPASSWORD PGOPTIONS PGSERVICE

# --- run and compare -------------------------------------------------------------------------

status=0
run_all() { # $1: how the programs reach the server (for the messages and file names)
    local via="$1" lang out
    for lang in "${langs[@]}"; do
        out="$work/$lang.$via.out"
        case "$lang" in
        python) cmd=("$work/venv/bin/python" examples/python/orders.py) ;;
        node) cmd=(node examples/node/orders.js) ;;
        rust) cmd=("$work/rust/debug/pg-tenancy-example") ;;
        esac
        if ! "${cmd[@]}" >"$out" 2>"$work/$lang.$via.err"; then
            echo "FAIL $lang ($via): exited with an error" >&2
            cat "$work/$lang.$via.err" >&2
            status=1
        elif ! diff -u examples/expected.txt "$out" >&2; then
            echo "FAIL $lang ($via): output differs from examples/expected.txt (above)" >&2
            status=1
        else
            echo "ok   $lang example, $via ($(wc -l <"$out") lines, as examples/expected.txt)"
        fi
    done
}

run_all direct

# Once more through PgBouncer in transaction pooling mode (EXAMPLES_PGBOUNCER_PORT=none skips).
bouncer_port="${EXAMPLES_PGBOUNCER_PORT:-28971}"
if [ "$bouncer_port" != none ]; then
    trap 'scripts/pgbouncer.sh stop "$work/pgbouncer"' EXIT
    scripts/pgbouncer.sh start "$work/pgbouncer" "$bouncer_port" "$port" examples_app examples_client
    PGPORT="$bouncer_port" run_all pgbouncer
fi
exit $status
