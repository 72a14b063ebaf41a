-- The benchmark dataset, generated in the database (bench/bench.py runs this as postgres).
--
--   psql -v tenants=N -v rows=M -v large=L -v bsize=B -v ssize=S -v big=L*B -v all=1|0
--
-- Tenant k (1..N) has the id 70000000-0000-4000-8000-<100000000000 + k>, its member (staff)
-- 75000000-…-<100000000000 + k>; row r (1..M) has the id a0000000-…-<100000000000 + r> and
-- belongs to tenant L + 1 + (r - 1 - L*B) / S, or to (r - 1) / B + 1 for the first L*B rows:
-- L large tenants of B rows each (B = 10,000 by default) and N - L small ones of S rows. pgbench
-- computes the same numbers from a random row number and writes them into uuid literals (twelve
-- decimal digits are valid hex), so every transaction names a row and its tenant without a
-- look-up and without any function in the SQL text. Rows are stored in a pseudo-random order
-- (by md5 of the row number), so each tenant's rows are scattered over the whole table, as
-- orders of many tenants arriving over time would be.
--
-- Every variant reads its own copy of the same rows (all=1): policies never interfere.
--   orders_limit    no row-level security; the query carries WHERE tenant_id = ...
--   orders_hand     ENABLE + FORCE RLS, policy tenant_id = current_setting('app.tenant_id')::uuid
--   orders_helper   the same through a SQL helper function called without (SELECT ...)
--   orders_tenancy  tenancy.isolate()
--   orders_perm     tenancy.isolate(read_permission => 'orders:read')
-- Scaling databases (all=0) have orders_limit and orders_tenancy only.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET maintenance_work_mem = '512MB';
SET work_mem = '256MB';
-- The clusters run with synchronous_commit = off (scripts/cluster.sh). VACUUM marks a page
-- all-visible only once the commits of its rows are flushed, so without this the VACUUMs below
-- leave a table that was filled moments before without any all-visible page, depending on timing.
SET synchronous_commit = on;

CREATE EXTENSION IF NOT EXISTS pg_tenancy;
CREATE EXTENSION IF NOT EXISTS pg_prewarm;

-- Login roles (cluster-wide, so created once). None is a superuser, has BYPASSRLS or owns a table.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_plain') THEN
        CREATE ROLE bench_plain LOGIN;            -- limit, hand-written, helper: no pg_tenancy role
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_app') THEN
        CREATE ROLE bench_app LOGIN IN ROLE tenancy_app;        -- set_tenant()
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_client') THEN
        CREATE ROLE bench_client LOGIN IN ROLE tenancy_client;  -- authenticate()
    END IF;
END $$;

-- Tenants and one member per tenant (staff: orders:*), inserted directly as the superuser.
INSERT INTO tenancy.tenants (id, name, slug)
SELECT ('70000000-0000-4000-8000-' || (100000000000 + k))::uuid, 'tenant ' || k, 'tenant-' || k
  FROM generate_series(1, :tenants) AS k;
INSERT INTO tenancy.users (id, email)
SELECT ('75000000-0000-4000-8000-' || (100000000000 + k))::uuid, 'user' || k || '@bench.example'
  FROM generate_series(1, :tenants) AS k;
INSERT INTO tenancy.memberships (tenant_id, user_id, role)
SELECT ('70000000-0000-4000-8000-' || (100000000000 + k))::uuid,
       ('75000000-0000-4000-8000-' || (100000000000 + k))::uuid, 'staff'
  FROM generate_series(1, :tenants) AS k;

CREATE TABLE orders_limit (
    id         uuid          NOT NULL DEFAULT gen_random_uuid(),
    tenant_id  uuid          NOT NULL,
    amount     numeric(12,2) NOT NULL,
    status     text          NOT NULL DEFAULT 'open',
    created_at timestamptz   NOT NULL DEFAULT now()
);
INSERT INTO orders_limit (id, tenant_id, amount, status, created_at)
SELECT ('a0000000-0000-4000-8000-' || (100000000000 + r))::uuid,
       ('70000000-0000-4000-8000-' || (100000000000 +
           CASE WHEN r <= :big THEN (r - 1) / :bsize + 1
                ELSE :large + 1 + (r - 1 - :big) / :ssize END))::uuid,
       (r::bigint * 7919 % 100000) / 100.0,
       (ARRAY['open', 'paid', 'shipped', 'refunded'])[r % 4 + 1],
       timestamptz '2024-01-01 00:00:00+00' + r * interval '1 second'
  FROM generate_series(1, :rows) AS r
 ORDER BY md5(r::text);

\if :all
CREATE TABLE orders_hand (LIKE orders_limit INCLUDING DEFAULTS);
INSERT INTO orders_hand SELECT * FROM orders_limit;
CREATE TABLE orders_helper (LIKE orders_limit INCLUDING DEFAULTS);
INSERT INTO orders_helper SELECT * FROM orders_limit;
CREATE TABLE orders_perm (LIKE orders_limit INCLUDING DEFAULTS);
INSERT INTO orders_perm SELECT * FROM orders_limit;
\endif
CREATE TABLE orders_tenancy (LIKE orders_limit INCLUDING DEFAULTS);
INSERT INTO orders_tenancy SELECT * FROM orders_limit;

-- The same two indexes on every copy (isolate() then finds its tenant index already there).
DO $$
DECLARE t regclass;
BEGIN
    FOR t IN SELECT c.oid::regclass FROM pg_class c
              WHERE c.relname LIKE 'orders\_%' AND c.relkind = 'r'
                AND c.relnamespace = 'public'::regnamespace
    LOOP
        EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY (id)', t);
        EXECUTE format('CREATE INDEX ON %s (tenant_id)', t);
    END LOOP;
END $$;

GRANT SELECT, INSERT ON orders_limit TO bench_plain;

\if :all
-- Hand-written, the pattern of today's tutorials: a custom setting read by the policy.
ALTER TABLE orders_hand
    ALTER tenant_id SET DEFAULT current_setting('app.tenant_id')::uuid,
    ENABLE ROW LEVEL SECURITY,
    FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON orders_hand
    USING (tenant_id = current_setting('app.tenant_id')::uuid)
    WITH CHECK (tenant_id = current_setting('app.tenant_id')::uuid);

-- Supabase-style helper, called in the policy without (SELECT ...). SECURITY DEFINER as the
-- Supabase docs recommend for RLS helpers (which usually read membership tables); it also keeps
-- PostgreSQL from inlining the function, so the policy really calls it.
CREATE SCHEMA app;
GRANT USAGE ON SCHEMA app TO PUBLIC;
CREATE FUNCTION app.tenant_id() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
    AS $f$ SELECT pg_catalog.current_setting('app.tenant_id')::uuid $f$;
ALTER TABLE orders_helper
    ALTER tenant_id SET DEFAULT app.tenant_id(),
    ENABLE ROW LEVEL SECURITY,
    FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON orders_helper
    USING (tenant_id = app.tenant_id())
    WITH CHECK (tenant_id = app.tenant_id());

GRANT SELECT, INSERT ON orders_hand, orders_helper TO bench_plain;
SELECT tenancy.isolate('orders_perm', read_permission => 'orders:read');
\endif
SELECT tenancy.isolate('orders_tenancy');

VACUUM (ANALYZE) orders_limit;
VACUUM (ANALYZE) orders_tenancy;
\if :all
VACUUM (ANALYZE) orders_hand;
VACUUM (ANALYZE) orders_helper;
VACUUM (ANALYZE) orders_perm;
\endif
VACUUM (ANALYZE) tenancy.tenants;
VACUUM (ANALYZE) tenancy.users;
VACUUM (ANALYZE) tenancy.memberships;
CHECKPOINT;
