#!/usr/bin/env bash
# The quickstart, step by step, against the demo cluster `make demo` starts.
#   scripts/demo.sh PORT
set -euo pipefail
port="${1:?port}"
db=tenancy_demo
psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$port user=postgres dbname=$1" "${@:2}"; }
psql_app() { PGPASSWORD=shop_app_pw psql -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$port user=shop_app dbname=$db" "$@"; }

psql_admin postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"

echo "== 1. The DBA installs pg_tenancy and creates the application's login role"
psql_admin "$db" <<'SQL'
\set ECHO queries
CREATE EXTENSION pg_tenancy;
DROP ROLE IF EXISTS shop_app;
CREATE ROLE shop_app LOGIN PASSWORD 'shop_app_pw' IN ROLE tenancy_app;
SQL

echo
echo "== 2. Two stores, each with members; the app defines costs:read and grants it to staff"
psql_admin "$db" <<'SQL'
\set ECHO queries
CREATE TABLE products (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    name      text NOT NULL,
    price     numeric NOT NULL,
    cost      numeric NOT NULL
);
SELECT tenancy.isolate('products');
INSERT INTO tenancy.permissions (name, description) VALUES ('costs:read', 'see cost prices');
INSERT INTO tenancy.role_permissions (role, permission) VALUES ('staff', 'costs:read');

-- A helper that shows an error's SQLSTATE instead of stopping the demo.
CREATE SCHEMA demo;
GRANT USAGE ON SCHEMA demo TO PUBLIC;
CREATE FUNCTION demo.attempt(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
    EXECUTE statement INTO r;
    RETURN 'ok' || coalesce(': ' || nullif(r, ''), '');
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $$;

\set ECHO none
SELECT tenancy.create_user('alice@store-a.example') AS alice \gset
SELECT tenancy.create_user('sam@store-a.example') AS sam \gset
SELECT tenancy.create_user('vic@store-a.example') AS vic \gset
SELECT tenancy.create_user('bob@store-b.example') AS bob \gset
SELECT tenancy.create_tenant('Store A', :'alice', 'store-a') AS store_a \gset
SELECT tenancy.create_tenant('Store B', :'bob', 'store-b') AS store_b \gset
INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES
    (:'store_a', :'sam', 'staff'), (:'store_a', :'vic', 'viewer');
INSERT INTO products (tenant_id, name, price, cost) VALUES
    (:'store_a', 'espresso beans', 14.00, 6.10),
    (:'store_a', 'milk frother',   39.00, 17.50),
    (:'store_b', 'green tea',       9.00, 2.20);
SELECT t.slug AS store, u.email, m.role
  FROM tenancy.memberships m JOIN tenancy.tenants t ON t.id = m.tenant_id
  JOIN tenancy.users u ON u.id = m.user_id ORDER BY t.slug, u.email;
SQL

ids=$(psql_admin "$db" -At -F' ' -c "SELECT (SELECT id FROM tenancy.tenants WHERE slug='store-a'), (SELECT id FROM tenancy.tenants WHERE slug='store-b'), (SELECT id FROM tenancy.users WHERE email='sam@store-a.example'), (SELECT id FROM tenancy.users WHERE email='vic@store-a.example'), (SELECT id FROM products WHERE name='green tea')")
read -r store_a store_b sam vic tea <<<"$ids"

echo
echo "== 3. shop_app (a login role in tenancy_app) sees one store per transaction"
psql_app -v a="$store_a" -v b="$store_b" <<'SQL'
\echo '-- as Store A:'
BEGIN; SELECT tenancy.set_tenant(:'a') \g /dev/null
SELECT name, price FROM products ORDER BY name;
COMMIT;
\echo '-- as Store B:'
BEGIN; SELECT tenancy.set_tenant(:'b') \g /dev/null
SELECT name, price FROM products ORDER BY name;
COMMIT;
SQL

echo
echo "== 4. Without a context, the same query fails closed (28000), it does not return an empty page"
psql_app -At -c "SELECT demo.attempt('SELECT count(*)::text FROM products')"

echo
echo "== 5. RBAC: a viewer of Store A has no costs:read, so the app's check fails with 42501"
psql_app -At -v a="$store_a" -v vic="$vic" <<'SQL'
BEGIN;
SELECT tenancy.set_tenant(:'a', :'vic') \g /dev/null
SELECT demo.attempt($$SELECT tenancy.require_permission('costs:read')::text$$);
ROLLBACK;
SQL

echo
echo "== 6. Two independent layers: staff of Store A asks for Store B's product cost"
psql_app -At -v a="$store_a" -v sam="$sam" -v tea="$tea" <<'SQL'
BEGIN;
SELECT tenancy.set_tenant(:'a', :'sam') \g /dev/null
\echo '-- RBAC passes (sam is staff, staff has costs:read):'
SELECT demo.attempt($$SELECT tenancy.require_permission('costs:read')::text$$);
\echo '-- cost of Store A''s own product:'
SELECT name || ': ' || cost FROM products WHERE name = 'espresso beans';
\echo '-- cost of Store B''s product, by its id (RLS: zero rows):'
SELECT count(*) || ' rows' FROM products WHERE id = :'tea';
ROLLBACK;
SQL

echo
echo "== 7. The application cannot forge a context"
psql_app -At -v b="$store_b" <<'SQL'
SELECT demo.attempt(format($$SELECT set_config('tenancy.context', 't=%s;s=set_tenant', true)$$, :'b'));
SELECT demo.attempt($$SELECT tenancy.current_tenant()::text$$);
SQL
echo
echo "== 8. Every denial is on record, although the denied transactions rolled back"
sleep 1
psql_admin "$db" -c "SELECT action, permission, outcome, reason, db_role
                       FROM tenancy.auth_log ORDER BY id"

echo
echo "Demo complete."
