-- tenancy.audit(): for each check, the bad state is built, exactly its finding appears, its
-- fix SQL is executed, and the finding is gone. A database with only isolate()d tables and
-- well-formed application roles gives no finding at all.
--
-- Runs as the superuser (audit() is a DBA's tool). Roles are cluster-wide: the ones made here are
-- regress_audit_*, dropped at the start and at the end. Findings are shown for this test's
-- objects, the group roles and this database (named <db>): roles other tests may have left in
-- the cluster are not this test's business.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_audit_app, regress_audit_client, regress_audit_bad, regress_audit_mid,
                    regress_audit_owner;
RESET client_min_messages;

-- The findings that concern this test, in audit()'s order, with the database name and the
-- superuser running the test masked.
CREATE FUNCTION aud_findings() RETURNS TABLE (severity text, code text, object text, message text)
LANGUAGE sql AS $fn$
SELECT a.severity, a.code, replace(a.object, current_database(), '<db>'),
       regexp_replace(replace(a.message, current_database(), '<db>'),
                      '\m' || quote_ident(current_user) || '\M', '<dba>', 'g')
  FROM tenancy.audit() WITH ORDINALITY a
 WHERE a.code NOT IN ('app_role_superuser', 'app_role_bypassrls', 'app_role_createrole',
                      'app_role_member_of_privileged_role')
    OR a.object LIKE 'regress\_audit\_%' OR a.object IN ('tenancy_client', 'tenancy_app')
 ORDER BY a.ordinality
$fn$;

-- Executes the fix of every finding of one code (as a DBA would), and shows what it ran.
-- Every finding must have a known severity, a snake_case code, an object, a message that
-- starts in lower case and a fix.
CREATE FUNCTION aud_fix(p_code text) RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT a.* FROM tenancy.audit() WITH ORDINALITY a
              WHERE a.severity IS NULL OR a.severity NOT IN ('critical', 'high', 'medium', 'low', 'info')
                 OR a.code !~ '^[a-z]+(_[a-z]+)*$' OR a.object IS NULL OR a.object = ''
                 OR a.message !~ '^[a-z]' OR a.fix IS NULL OR a.fix = ''
    LOOP
        RAISE EXCEPTION 'malformed finding: %', row_to_json(f);
    END LOOP;
    FOR f IN SELECT a.fix, a.ordinality FROM tenancy.audit() WITH ORDINALITY a
              WHERE a.code = p_code
                AND (a.object LIKE 'regress\_audit\_%' OR a.object IN ('tenancy_client', 'tenancy_app')
                     OR p_code NOT IN ('app_role_superuser', 'app_role_bypassrls', 'app_role_createrole',
                                       'app_role_member_of_privileged_role'))
              ORDER BY a.ordinality
    LOOP
        EXECUTE f.fix;
        RETURN NEXT replace(f.fix, current_database(), '<db>');
    END LOOP;
END
$fn$;

------------------------------------------------------------------------------------------
-- A well-formed database: application roles in the group roles, an isolated schema.
------------------------------------------------------------------------------------------
CREATE ROLE regress_audit_app LOGIN IN ROLE tenancy_app;
CREATE ROLE regress_audit_client LOGIN IN ROLE tenancy_client;
-- Not application roles: a plain group and a migration role.
CREATE ROLE regress_audit_mid NOLOGIN;
CREATE ROLE regress_audit_owner NOLOGIN;

CREATE SCHEMA aud;
GRANT USAGE ON SCHEMA aud TO tenancy_client;
CREATE TABLE aud.orders (
    tenant_id uuid NOT NULL,
    id        bigint GENERATED ALWAYS AS IDENTITY,
    sku       text NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, sku)
);
CREATE TABLE aud.order_lines (
    tenant_id uuid NOT NULL,
    order_id  bigint NOT NULL,
    line      int NOT NULL,
    PRIMARY KEY (tenant_id, order_id, line),
    FOREIGN KEY (tenant_id, order_id) REFERENCES aud.orders (tenant_id, id) ON DELETE CASCADE
);
CREATE TABLE aud.invoices (tenant_id uuid NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE aud.events (tenant_id uuid NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE aud.events_2024 PARTITION OF aud.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
SELECT tenancy.isolate('aud.orders');
SELECT tenancy.isolate('aud.order_lines');
SELECT tenancy.isolate('aud.invoices', read_permission => 'billing:read', write_permission => 'billing:write');
SELECT tenancy.isolate('aud.events');
-- What may stay: a view with security_invoker, a SECURITY DEFINER function with a pinned
-- search_path, one without that application roles cannot execute, a table without tenant column.
CREATE VIEW aud.orders_v WITH (security_invoker = true) AS SELECT tenant_id, id, sku FROM aud.orders;
GRANT SELECT ON aud.orders_v TO tenancy_client;
CREATE FUNCTION aud.pinned() RETURNS bigint LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS 'SELECT count(*) FROM aud.orders';
CREATE FUNCTION aud.private() RETURNS bigint LANGUAGE sql SECURITY DEFINER
    AS 'SELECT count(*) FROM aud.orders';
REVOKE EXECUTE ON FUNCTION aud.private() FROM PUBLIC;
CREATE TABLE aud.countries (code text PRIMARY KEY);
GRANT SELECT ON aud.countries TO tenancy_client;

-- A new database lets PUBLIC create temporary tables: that is the one finding, until its fix
-- (the hardening checklist's REVOKE) has run.
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('app_role_can_create_temp');

-- Zero findings: only isolate()d tables and well-formed application roles.
SELECT * FROM aud_findings();
-- The regress cluster preloads the library: the durable log is on.
SELECT count(*) AS durable_log_off FROM tenancy.audit() a WHERE a.code = 'durable_log_off';

-- audit() is STABLE, SECURITY INVOKER with a pinned search_path; application roles cannot run it.
SELECT proname, provolatile, prosecdef, proconfig
  FROM pg_proc WHERE oid = 'tenancy.audit()'::regprocedure;
SELECT has_function_privilege('regress_audit_app', 'tenancy.audit()', 'EXECUTE') AS app_may_audit;

------------------------------------------------------------------------------------------
-- untracked_tenant_table: a tenant_id uuid column, not isolated. Critical when application
-- roles can use it; the fix makes a nullable column NOT NULL first.
------------------------------------------------------------------------------------------
CREATE TABLE aud.notes (id int, tenant_id uuid, body text);
GRANT SELECT ON aud.notes TO tenancy_client;
CREATE TABLE aud.drafts (id int, tenant_id uuid NOT NULL);
-- Not tenant tables: another type, a temporary table, a partition of an isolated table.
CREATE TABLE aud.texty (id int, tenant_id text);
CREATE TEMP TABLE aud_scratch (tenant_id uuid);
CREATE TABLE aud.events_2025 PARTITION OF aud.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('untracked_tenant_table');
SELECT * FROM aud_findings();
SELECT table_name, in_sync FROM tenancy.isolated_tables
 WHERE table_name IN ('aud.notes'::regclass, 'aud.drafts'::regclass) ORDER BY table_name::text;
DROP TABLE aud.texty, aud_scratch;

------------------------------------------------------------------------------------------
-- isolation_drift: one finding per table, listing what drifted; the fix re-runs isolate()
-- with the table's registered arguments.
------------------------------------------------------------------------------------------
ALTER TABLE aud.orders NO FORCE ROW LEVEL SECURITY;
ALTER TABLE aud.order_lines ALTER COLUMN tenant_id DROP DEFAULT;
REVOKE DELETE ON aud.order_lines FROM tenancy_client;
DROP POLICY tenancy_write_delete ON aud.invoices;
ALTER TABLE aud.events DISABLE ROW LEVEL SECURITY;
ALTER POLICY tenancy_isolation ON aud.events USING (true);
ALTER TABLE aud.notes ALTER COLUMN tenant_id DROP NOT NULL;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('isolation_drift');
SELECT * FROM aud_findings();
SELECT table_name, read_permission, write_permission, in_sync FROM tenancy.isolated_tables
 WHERE table_name::text LIKE 'aud.%' ORDER BY table_name::text;

------------------------------------------------------------------------------------------
-- app_role_superuser, app_role_bypassrls, app_role_createrole: on application roles and on
-- the group roles themselves (an application role can SET ROLE to its group).
------------------------------------------------------------------------------------------
CREATE ROLE regress_audit_bad LOGIN SUPERUSER IN ROLE tenancy_app;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('app_role_superuser');
SELECT * FROM aud_findings();

ALTER ROLE regress_audit_client BYPASSRLS;
ALTER ROLE tenancy_client BYPASSRLS;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('app_role_bypassrls');
SELECT * FROM aud_findings();

ALTER ROLE regress_audit_bad CREATEROLE;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('app_role_createrole');
SELECT * FROM aud_findings();
SELECT rolname, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles
 WHERE rolname IN ('regress_audit_bad', 'regress_audit_client', 'tenancy_client') ORDER BY 1;

------------------------------------------------------------------------------------------
-- app_role_member_of_privileged_role: through a membership, an application role can act as
-- a role that bypasses isolation (here: reads server files, reads every table, owns an
-- isolated table). The fix cuts the first step of the path.
------------------------------------------------------------------------------------------
GRANT pg_read_server_files TO regress_audit_mid;
GRANT regress_audit_mid TO regress_audit_app;
GRANT pg_read_all_data TO tenancy_client;
ALTER TABLE aud.invoices OWNER TO regress_audit_owner;
GRANT regress_audit_owner TO regress_audit_bad;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('app_role_member_of_privileged_role');
SELECT * FROM aud_findings();
SELECT pg_has_role('regress_audit_app', 'pg_read_server_files', 'MEMBER') AS app_reads_files,
       pg_has_role('tenancy_client', 'pg_read_all_data', 'MEMBER') AS client_reads_all,
       pg_has_role('regress_audit_bad', 'regress_audit_owner', 'MEMBER') AS bad_is_owner;
REVOKE pg_read_server_files FROM regress_audit_mid;
ALTER TABLE aud.invoices OWNER TO CURRENT_USER;

------------------------------------------------------------------------------------------
-- app_role_owns_isolated_table: also a partition of an isolated table, and a group role.
------------------------------------------------------------------------------------------
ALTER TABLE aud.order_lines OWNER TO regress_audit_client;
ALTER TABLE aud.events_2024 OWNER TO tenancy_app;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('app_role_owns_isolated_table');
SELECT * FROM aud_findings();
SELECT relname, relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS owned_by_dba
  FROM pg_class WHERE oid IN ('aud.order_lines'::regclass, 'aud.events_2024'::regclass) ORDER BY 1;

------------------------------------------------------------------------------------------
-- dangerous_grant: TRUNCATE, REFERENCES, TRIGGER on isolated tables, to PUBLIC, to a group
-- role, or to a role an application role is a member of. Not to a role no application role
-- can use.
------------------------------------------------------------------------------------------
GRANT TRUNCATE ON aud.orders TO PUBLIC;
GRANT REFERENCES, TRIGGER ON aud.orders TO regress_audit_mid;
-- From here on, regress_audit_client can use what is granted to regress_audit_mid.
GRANT regress_audit_mid TO regress_audit_client;
GRANT TRIGGER ON aud.invoices TO tenancy_app;
GRANT TRUNCATE ON aud.invoices TO regress_audit_owner;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('dangerous_grant');
SELECT * FROM aud_findings();
SELECT has_table_privilege('regress_audit_client', 'aud.orders', 'TRUNCATE, REFERENCES, TRIGGER') AS client_has_any,
       has_table_privilege('regress_audit_app', 'aud.invoices', 'TRUNCATE, REFERENCES, TRIGGER') AS app_has_any;
REVOKE TRUNCATE ON aud.invoices FROM regress_audit_owner;

------------------------------------------------------------------------------------------
-- partition_readable_by_app: partitions have no row-level security of their own.
------------------------------------------------------------------------------------------
GRANT SELECT, UPDATE ON aud.events_2024 TO tenancy_client;
GRANT SELECT ON aud.events_2025 TO regress_audit_mid;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('partition_readable_by_app');
SELECT * FROM aud_findings();

------------------------------------------------------------------------------------------
-- permissive_policy_widens: an extra PERMISSIVE policy is OR-ed with tenancy_isolation.
-- RESTRICTIVE ones only narrow, and a policy for a role no application role can use does not
-- concern them.
------------------------------------------------------------------------------------------
CREATE POLICY open_reads ON aud.orders FOR SELECT TO tenancy_client USING (true);
CREATE POLICY "Everyone" ON aud.invoices USING (id > 0);
CREATE POLICY narrower ON aud.orders AS RESTRICTIVE FOR SELECT TO PUBLIC USING (sku <> '');
CREATE POLICY for_owner ON aud.orders FOR SELECT TO regress_audit_owner USING (true);
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('permissive_policy_widens');
SELECT * FROM aud_findings();
SELECT polrelid::regclass, polname FROM pg_policy
 WHERE polrelid::regclass::text LIKE 'aud.%' AND polname NOT LIKE 'tenancy\_%' ORDER BY polrelid::regclass::text, polname;
DROP POLICY narrower ON aud.orders;
DROP POLICY for_owner ON aud.orders;

------------------------------------------------------------------------------------------
-- view_without_security_invoker: views over isolated tables (directly, through other views
-- or through partitions) that application roles can query. Critical when the owner bypasses
-- row-level security.
------------------------------------------------------------------------------------------
CREATE VIEW aud.all_orders AS SELECT tenant_id, id, sku FROM aud.orders;
GRANT SELECT ON aud.all_orders TO tenancy_client;
-- Through a view application roles cannot read: the outer view is the leak.
CREATE VIEW aud.inner_orders AS SELECT tenant_id, id FROM aud.orders;
CREATE VIEW aud.outer_orders AS SELECT id FROM aud.inner_orders;
GRANT SELECT ON aud.outer_orders TO regress_audit_mid;
CREATE VIEW aud.events_view AS SELECT at FROM aud.events_2024;
GRANT SELECT ON aud.events_view TO tenancy_app;
-- Owned by a role that does not bypass row-level security: medium.
CREATE VIEW aud.owner_orders AS SELECT id FROM aud.orders;
ALTER VIEW aud.owner_orders OWNER TO regress_audit_owner;
GRANT SELECT ON aud.owner_orders TO tenancy_client;
-- Not findings: invoker views, a view nobody may query, a view over a plain table.
CREATE VIEW aud.hidden_orders AS SELECT id FROM aud.orders;
CREATE VIEW aud.country_view AS SELECT code FROM aud.countries;
GRANT SELECT ON aud.country_view TO tenancy_client;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('view_without_security_invoker');
SELECT * FROM aud_findings();
DROP VIEW aud.outer_orders, aud.inner_orders, aud.events_view, aud.owner_orders, aud.hidden_orders,
          aud.country_view, aud.all_orders;

------------------------------------------------------------------------------------------
-- matview_readable_by_app: a materialized view over isolated tables (here through an invoker
-- view) holds every tenant's rows without row-level security.
------------------------------------------------------------------------------------------
CREATE MATERIALIZED VIEW aud.order_counts AS SELECT tenant_id, count(*) AS n FROM aud.orders_v GROUP BY 1;
GRANT SELECT ON aud.order_counts TO tenancy_app;
GRANT SELECT ON aud.order_counts TO regress_audit_mid;
CREATE MATERIALIZED VIEW aud.country_list AS SELECT code FROM aud.countries;
GRANT SELECT ON aud.country_list TO tenancy_client;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('matview_readable_by_app');
SELECT * FROM aud_findings();
DROP MATERIALIZED VIEW aud.order_counts, aud.country_list;

------------------------------------------------------------------------------------------
-- definer_function_without_search_path: executable by application roles (through PUBLIC by
-- default); pg_tenancy's own functions all pin it.
------------------------------------------------------------------------------------------
CREATE FUNCTION aud.leaky(p_sku text) RETURNS bigint LANGUAGE sql SECURITY DEFINER
    AS 'SELECT count(*) FROM aud.orders WHERE sku = p_sku';
CREATE PROCEDURE aud."Refresh"() LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
REVOKE EXECUTE ON PROCEDURE aud."Refresh"() FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE aud."Refresh"() TO regress_audit_app;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('definer_function_without_search_path');
SELECT * FROM aud_findings();
SELECT oid::regprocedure, proconfig FROM pg_proc
 WHERE pronamespace = 'aud'::regnamespace AND prosecdef ORDER BY oid::regprocedure::text;
DROP FUNCTION aud.leaky(text);
DROP PROCEDURE aud."Refresh"();

------------------------------------------------------------------------------------------
-- app_role_can_create_temp, app_role_can_create_schema: TEMPORARY and CREATE on the database.
------------------------------------------------------------------------------------------
DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO regress_audit_mid', current_database()); END $$;
DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database()); END $$;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('app_role_can_create_temp');
SELECT * FROM aud_findings();
SELECT has_database_privilege('regress_audit_app', current_database(), 'TEMPORARY') AS app_temp,
       has_database_privilege('regress_audit_client', current_database(), 'TEMPORARY') AS client_temp;

DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_audit_client', current_database()); END $$;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('app_role_can_create_schema');
SELECT * FROM aud_findings();

------------------------------------------------------------------------------------------
-- app_role_can_create_in_schema, app_role_owns_schema.
------------------------------------------------------------------------------------------
GRANT CREATE ON SCHEMA aud TO tenancy_client;
GRANT CREATE ON SCHEMA public TO PUBLIC;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('app_role_can_create_in_schema');
SELECT * FROM aud_findings();

CREATE SCHEMA "Aud Owned" AUTHORIZATION regress_audit_app;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('app_role_owns_schema');
SELECT * FROM aud_findings();
DROP SCHEMA "Aud Owned";

------------------------------------------------------------------------------------------
-- app_role_owns_database: its owner can create schemas and temporary tables, and, as
-- pg_database_owner, create in schema public.
------------------------------------------------------------------------------------------
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I OWNER TO regress_audit_app', current_database()); END $$;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('app_role_owns_database');
SELECT * FROM aud_findings();

------------------------------------------------------------------------------------------
-- foreign_key_without_tenant_column, then unique_without_tenant_column (a foreign key
-- depends on the unique constraint it references: fix foreign keys first).
------------------------------------------------------------------------------------------
CREATE TABLE aud.customers (tenant_id uuid NOT NULL, id int NOT NULL, CONSTRAINT customers_id_key UNIQUE (id));
CREATE TABLE aud.tickets (
    tenant_id   uuid NOT NULL,
    id          int NOT NULL,
    customer_id int,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT tickets_customer_fkey FOREIGN KEY (customer_id) REFERENCES aud.customers (id)
        ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED
);
SELECT tenancy.isolate('aud.customers');
SELECT tenancy.isolate('aud.tickets');
-- To a table that is not isolated: not a finding (nor is order_lines' key, which pairs the
-- tenant columns).
ALTER TABLE aud.tickets ADD COLUMN country text REFERENCES aud.countries (code);
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('foreign_key_without_tenant_column');
SELECT * FROM aud_findings();
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid IN ('aud.customers'::regclass, 'aud.tickets'::regclass) AND contype <> 'n'
 ORDER BY 1;

-- Unique constraints and indexes that leave out the tenant column: medium, low when every key
-- column is a uuid. An expression over the tenant column counts; a partition's own index is
-- reported on the partition.
CREATE TABLE aud.docs (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, slug text NOT NULL);
SELECT tenancy.isolate('aud.docs');
CREATE UNIQUE INDEX docs_lower_slug ON aud.docs (lower(slug)) WHERE slug <> '';
CREATE UNIQUE INDEX docs_tenant_slug ON aud.docs ((tenant_id::text || slug));
ALTER TABLE aud.orders ADD CONSTRAINT orders_sku_key UNIQUE (sku) INCLUDE (tenant_id);
CREATE UNIQUE INDEX events_2024_at ON aud.events_2024 (at);
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('unique_without_tenant_column');
SELECT * FROM aud_findings();
SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid) FROM pg_index
 WHERE indrelid IN ('aud.docs'::regclass, 'aud.orders'::regclass, 'aud.events_2024'::regclass,
                    'aud.customers'::regclass)
   AND indisunique
 ORDER BY indexrelid::regclass::text;

------------------------------------------------------------------------------------------
-- set_privilege_on_tenancy_setting: GRANT SET ON PARAMETER tenancy.* to anything an
-- application role can use.
------------------------------------------------------------------------------------------
GRANT SET ON PARAMETER tenancy.log_allowed TO regress_audit_app;
GRANT SET, ALTER SYSTEM ON PARAMETER tenancy.context TO regress_audit_mid;
GRANT SET ON PARAMETER tenancy.log_allowed TO regress_audit_owner;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('set_privilege_on_tenancy_setting');
SELECT * FROM aud_findings();
SELECT has_parameter_privilege('regress_audit_app', 'tenancy.log_allowed', 'SET') AS app_set,
       has_parameter_privilege('regress_audit_client', 'tenancy.context', 'SET') AS client_set;
REVOKE SET ON PARAMETER tenancy.log_allowed FROM regress_audit_owner;

------------------------------------------------------------------------------------------
-- cache_trigger_disabled: a disabled (or merely ENABLEd, not ALWAYS) invalidation trigger.
------------------------------------------------------------------------------------------
ALTER TABLE tenancy.memberships DISABLE TRIGGER tenancy_cache_invalidate;
ALTER TABLE tenancy.api_tokens ENABLE TRIGGER tenancy_cache_invalidate;
DROP TRIGGER tenancy_cache_invalidate ON tenancy.roles;
ALTER TABLE tenancy.users DISABLE TRIGGER tenancy_cache_invalidate_replica;
DROP TRIGGER tenancy_cache_invalidate_replica ON tenancy.signing_keys;
SELECT * FROM aud_findings();
SELECT * FROM aud_fix('cache_trigger_disabled');
SELECT * FROM aud_findings();
SELECT c.relname, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE (t.tgname = 'tenancy_cache_invalidate' AND c.relname IN ('memberships', 'api_tokens', 'roles'))
    OR (t.tgname = 'tenancy_cache_invalidate_replica' AND c.relname IN ('users', 'signing_keys'))
 ORDER BY 1, 2;

------------------------------------------------------------------------------------------
-- durable_log_off needs a server without the library preloaded; here it is preloaded (see
-- the count above). The fix is a comment: a postgresql.conf line and a restart.
------------------------------------------------------------------------------------------

-- Every fix applied: zero findings again.
SELECT * FROM aud_findings();

-- Clean up: the database as other tests expect it (PUBLIC may create temporary tables).
DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database()); END $$;
SET client_min_messages = warning;
DROP SCHEMA aud CASCADE;
RESET client_min_messages;
DROP FUNCTION aud_findings(), aud_fix(text);
DROP OWNED BY regress_audit_app, regress_audit_client, regress_audit_bad, regress_audit_mid,
              regress_audit_owner;
DROP ROLE regress_audit_app, regress_audit_client, regress_audit_bad, regress_audit_mid,
          regress_audit_owner;
