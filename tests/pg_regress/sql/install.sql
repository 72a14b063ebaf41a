-- What CREATE EXTENSION pg_tenancy installs: schema, functions, tables, views, policies,
-- roles, grants, seed data, settings and event triggers. Nothing volatile (oids,
-- timestamps, uuids) is printed.
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT e.extname, n.nspname AS schema, e.extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'pg_tenancy';

-- Every object that belongs to the extension (but the row types of its tables and views, which
-- PostgreSQL 18 lists as members too: they come and go with their relations).
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS object
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_tenancy')
   AND d.deptype = 'e'
   AND NOT EXISTS (SELECT FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem
                    WHERE d.classid = 'pg_type'::regclass AND t.oid = d.objid
                      AND (t.typrelid <> 0 OR e.typrelid <> 0))
 ORDER BY 1;

-- Functions: signature, volatility, parallel safety, strictness, SECURITY DEFINER and the
-- settings pinned on them.
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS function,
       pg_get_function_result(p.oid) AS returns,
       l.lanname AS lang,
       CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END AS volatility,
       CASE p.proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted' ELSE 'unsafe' END AS parallel,
       p.proisstrict AS strict,
       p.prosecdef AS secdef,
       p.proconfig AS config
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'tenancy'::regnamespace
 ORDER BY 1;

-- Argument defaults of the public functions.
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments
  FROM pg_proc p
 WHERE p.pronamespace = 'tenancy'::regnamespace AND p.pronargdefaults > 0
 ORDER BY 1;

-- Who may execute what: PUBLIC (an explicit grant in the ACL), and the two group roles.
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS function,
       EXISTS (SELECT FROM aclexplode(p.proacl) a
                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public,
       has_function_privilege('tenancy_client', p.oid, 'EXECUTE') AS client,
       has_function_privilege('tenancy_app', p.oid, 'EXECUTE') AS app
  FROM pg_proc p
 WHERE p.pronamespace = 'tenancy'::regnamespace
 ORDER BY 1;

-- The schema is usable by everyone, writable by nobody else.
SELECT has_schema_privilege('tenancy_client', 'tenancy', 'USAGE') AS client_usage,
       has_schema_privilege('tenancy_client', 'tenancy', 'CREATE') AS client_create,
       has_schema_privilege('tenancy_app', 'tenancy', 'CREATE') AS app_create;

-- Tables and views, with their row-level security flags and options.
SELECT c.relname, c.relkind, c.relrowsecurity AS rls, c.relforcerowsecurity AS force,
       c.reloptions
  FROM pg_class c
 WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
 ORDER BY 1;

-- Columns of the tables and views.
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
       pg_get_expr(d.adbin, d.adrelid) AS "default"
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p', 'v')
 ORDER BY c.relname, a.attnum;

-- Constraints and indexes (NOT NULL is shown with the columns above; PostgreSQL 18 also
-- catalogs it as a constraint).
SELECT conrelid::regclass AS "table", conname, pg_get_constraintdef(oid) AS definition
  FROM pg_constraint
 WHERE connamespace = 'tenancy'::regnamespace AND contype <> 'n'
 ORDER BY conrelid::regclass::text, conname;
SELECT tablename, indexname, indexdef
  FROM pg_indexes
 WHERE schemaname = 'tenancy'
 ORDER BY 1, 2;

-- Policies on pg_tenancy's own tables.
SELECT tablename, policyname, permissive, roles, cmd, qual, with_check
  FROM pg_policies
 WHERE schemaname = 'tenancy'
 ORDER BY 1, 2;

-- Table privileges of the group roles (and of PUBLIC, through the ACL).
SELECT c.relname,
       string_agg(DISTINCT CASE WHEN has_table_privilege('tenancy_client', c.oid, p) THEN p END, ',') AS client,
       string_agg(DISTINCT CASE WHEN has_table_privilege('tenancy_app', c.oid, p) THEN p END, ',') AS app,
       string_agg(DISTINCT a.privilege_type, ',') FILTER (WHERE a.grantee = 0) AS public
  FROM pg_class c
  CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p
  LEFT JOIN LATERAL aclexplode(c.relacl) a ON a.privilege_type = p
 WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'v')
 GROUP BY c.relname
 ORDER BY 1;

-- The group roles: NOLOGIN, no special attributes; tenancy_app is a member of tenancy_client
-- (and inherits its privileges).
SELECT rolname, rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit
  FROM pg_roles
 WHERE rolname IN ('tenancy_app', 'tenancy_client')
 ORDER BY 1;
SELECT m.roleid::regrole AS role, m.member::regrole AS member, m.admin_option
  FROM pg_auth_members m
 WHERE m.roleid IN ('tenancy_app'::regrole, 'tenancy_client'::regrole)
   AND m.member IN ('tenancy_app'::regrole, 'tenancy_client'::regrole)
 ORDER BY 1, 2;
SELECT pg_has_role('tenancy_app', 'tenancy_client', 'USAGE') AS app_uses_client,
       pg_has_role('tenancy_client', 'tenancy_app', 'MEMBER') AS client_is_app;

-- Seed data (rows other tests add are not seeded).
SELECT name, rank, description, seeded FROM tenancy.roles WHERE seeded ORDER BY rank DESC;
SELECT name, description, seeded FROM tenancy.permissions WHERE seeded ORDER BY name;
SELECT role, string_agg(permission, ' ' ORDER BY permission) AS grants
  FROM tenancy.role_permissions
 WHERE seeded
 GROUP BY role
 ORDER BY (SELECT rank FROM tenancy.roles r WHERE r.name = role) DESC;

-- Tables whose rows pg_dump keeps, and which rows.
SELECT cfg::regclass AS "table", cond AS condition
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(cfg, cond)
 WHERE e.extname = 'pg_tenancy'
 ORDER BY cfg::regclass::text;

-- Settings visible in pg_settings (tenancy.context is hidden from SHOW ALL).
SELECT name, setting, vartype, context
  FROM pg_settings
 WHERE name LIKE 'tenancy.%'
 ORDER BY 1;
SHOW tenancy.request_label;
SHOW tenancy.log_allowed;
-- Other names in the reserved prefix are refused.
SELECT regress_try($$SET tenancy.anything = 'x'$$);

-- Event triggers.
SELECT evtname, evtevent, evtenabled, evtfoid::regproc AS function, evttags
  FROM pg_event_trigger
 WHERE evtname LIKE 'tenancy%'
 ORDER BY 1;

-- tenancy_client (and so tenancy_app) cannot read tenancy.users: it holds other tenants'
-- emails. It can read the catalogue (here: its seeded rows).
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_install_client;
RESET client_min_messages;
CREATE ROLE regress_install_client LOGIN IN ROLE tenancy_client;
SET ROLE regress_install_client;
SELECT regress_try('SELECT * FROM tenancy.users');
SELECT regress_try('SELECT * FROM tenancy.isolation_registry');
SELECT regress_try('SELECT * FROM tenancy.isolated_tables');
SELECT regress_try($$INSERT INTO tenancy.roles (name, rank) VALUES ('boss', 90)$$);
SELECT regress_try($$INSERT INTO tenancy.role_permissions (role, permission) VALUES ('viewer', '*')$$);
SELECT count(*) AS roles FROM tenancy.roles WHERE seeded;
SELECT count(*) AS permissions FROM tenancy.permissions WHERE seeded;
SELECT count(*) AS grants FROM tenancy.role_permissions WHERE seeded;
RESET ROLE;
DROP ROLE regress_install_client;

-- Cache invalidation (sql/cache.sql): per cached table a statement trigger enabled ALWAYS
-- (after INSERT, UPDATE, DELETE, TRUNCATE: tgtype 60) and a row trigger enabled REPLICA (after
-- INSERT, UPDATE, DELETE: tgtype 29); api_tokens' fire on updates of every column but
-- last_used_at.
SELECT c.relname, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid) ~ 'FOR EACH STATEMENT' AS per_statement,
       t.tgtype & 127 AS tgtype,
       (SELECT string_agg(a.attname, ',' ORDER BY a.attnum)
          FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum = ANY (t.tgattr::int2[])) AS update_of
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'tenancy'::regnamespace AND NOT t.tgisinternal
 ORDER BY 1, 2;
