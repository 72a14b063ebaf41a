-- The security linter: tenancy.audit() and its checks. audit() lists findings about the live
-- database, each with SQL that fixes it.
--
-- A DBA's tool: SECURITY INVOKER, executable by superusers only (finalize.sql revokes EXECUTE
-- from PUBLIC on every function here), reads the catalogs and pg_tenancy's registry and changes
-- nothing. Every code and its fix is listed in docs/security.md ("Audit codes").
--
-- audit() computes the scope once (linter_current_scope()) and returns the union of the checks,
-- ordered by severity, code, object and message. Each check is one internal function
-- lint_<code>(scope) (one finding code, or a family of codes decided together), so that an
-- upgrade script replaces only the checks it changes. Every check takes the whole scope, used
-- or not, so that each can be replaced with CREATE OR REPLACE without changing its signature.

-- What the checks need to know about the database. Words used below:
--   group roles  tenancy_client and tenancy_app.
--   app roles    every role that is a member, directly or through other roles, of
--                tenancy_client (pg_auth_members, so superusers are not members of everything),
--                the group roles excluded.
--   targets      app roles and group roles that are not superusers: the roles whose privileges
--                matter (a superuser is reported as such and needs no privilege).
--   reach        the grantees whose privileges a target can use: PUBLIC (grantee 0) and every
--                non-superuser role a target is a member of (pg_has_role MEMBER: it can inherit
--                them or SET ROLE to them). A grant to one of them is a grant to an app role;
--                the fix revokes that grant.
--   isolated     tables in tenancy.isolation_registry; "protected" adds their partitions, which
--                have no row-level security of their own.
CREATE TYPE @extschema@.linter_scope AS (
    group_roles   oid[],    -- the group roles
    roles         oid[],    -- app roles and group roles
    targets       oid[],    -- those of them that are not superusers
    reach         oid[],    -- PUBLIC (0) and every non-superuser role a target is a member of
    isolated      oid[],    -- isolated tables
    protected     oid[],    -- isolated tables and their partitions
    extension_oid oid,      -- pg_tenancy's pg_extension row
    preloaded     boolean   -- whether shared_preload_libraries names pg_tenancy
);

-- The scope of the current database, computed once per audit().
CREATE FUNCTION @extschema@.linter_current_scope()
RETURNS @extschema@.linter_scope
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_client oid := pg_catalog.to_regrole('tenancy_client');
    s        @extschema@.linter_scope;
BEGIN
    s.group_roles := ARRAY(SELECT r.oid FROM pg_catalog.pg_roles r
                            WHERE r.rolname IN ('tenancy_client', 'tenancy_app'));
    s.roles := ARRAY(
        WITH RECURSIVE m(oid) AS (
            SELECT a.member FROM pg_catalog.pg_auth_members a WHERE a.roleid = v_client
            UNION
            SELECT a.member FROM pg_catalog.pg_auth_members a JOIN m ON a.roleid = m.oid
        )
        SELECT m.oid FROM m WHERE m.oid <> ALL (s.group_roles)) || s.group_roles;
    s.targets := ARRAY(SELECT r.oid FROM pg_catalog.pg_roles r
                        WHERE r.oid = ANY (s.roles) AND NOT r.rolsuper);
    s.reach := ARRAY[0::oid] || ARRAY(
        SELECT r.oid FROM pg_catalog.pg_roles r
         WHERE NOT r.rolsuper
           AND EXISTS (SELECT FROM pg_catalog.unnest(s.targets) t(oid)
                        WHERE pg_catalog.pg_has_role(t.oid, r.oid, 'MEMBER')));
    s.isolated := ARRAY(SELECT c.oid FROM @extschema@.isolation_registry g
                          JOIN pg_catalog.pg_class c ON c.oid = g.relid);
    s.protected := ARRAY(SELECT p.relid FROM @extschema@.linter_protected_tables(s.isolated) p);
    SELECT e.oid INTO s.extension_oid FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_tenancy';
    s.preloaded := EXISTS (
        SELECT FROM pg_catalog.regexp_split_to_table(
                        pg_catalog.current_setting('shared_preload_libraries'), ',') AS l(lib)
         WHERE pg_catalog.lower(pg_catalog.btrim(l.lib, ' "')) IN ('pg_tenancy', '$libdir/pg_tenancy'));
    RETURN s;
END
$fn$;

-- Every grantee, printable: PUBLIC for grantee 0, the quoted role name otherwise, with the
-- role's SUPERUSER and BYPASSRLS attributes.
CREATE FUNCTION @extschema@.linter_grantees()
RETURNS TABLE (oid oid, name text, super boolean, bypass boolean)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 0::oid, 'PUBLIC'::text, false, false
UNION ALL
SELECT r.oid, pg_catalog.quote_ident(r.rolname), r.rolsuper, r.rolbypassrls
  FROM pg_catalog.pg_roles r
$fn$;

-- Protected tables: the isolated tables and their partitions (and inheritance children), each
-- with the isolated table it belongs to.
CREATE FUNCTION @extschema@.linter_protected_tables(isolated oid[])
RETURNS TABLE (relid oid, isolated_relid oid)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
WITH RECURSIVE prot(relid, isolated_relid) AS (
    SELECT x.oid, x.oid FROM pg_catalog.unnest(isolated) x(oid)
    UNION
    SELECT h.inhrelid, prot.isolated_relid
      FROM pg_catalog.pg_inherits h JOIN prot ON h.inhparent = prot.relid
)
SELECT prot.relid, prot.isolated_relid FROM prot
$fn$;

-- Views and materialized views whose query reads a protected table, directly or through other
-- views and materialized views.
CREATE FUNCTION @extschema@.linter_views_over_protected(protected oid[])
RETURNS TABLE (viewid oid)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
WITH RECURSIVE
-- Each view or materialized view with the relations its query reads.
rdep AS (
    SELECT DISTINCT w.ev_class AS viewid, d.refobjid AS relid
      FROM pg_catalog.pg_rewrite w
      JOIN pg_catalog.pg_depend d
        ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = w.oid
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
     WHERE w.rulename = '_RETURN' AND d.refobjid <> w.ev_class
),
up(relid) AS (
    SELECT x.oid FROM pg_catalog.unnest(protected) x(oid)
    UNION
    SELECT rdep.viewid FROM rdep JOIN up ON rdep.relid = up.relid
)
SELECT DISTINCT up.relid FROM up WHERE up.relid <> ALL (protected)
$fn$;

-- The checks. Each returns audit()'s columns; the comment above each names the codes it finds.

-- untracked_tenant_table: tables with a uuid tenant_id column that isolate() never saw. Critical
-- when an app role holds privileges on one; the fix makes the column NOT NULL first if need be.
CREATE FUNCTION @extschema@.lint_untracked_tenant_table(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.unnest(scope.targets) t(oid)
                          WHERE pg_catalog.has_table_privilege(t.oid, c.oid,
                                                               'SELECT, INSERT, UPDATE, DELETE'))
            THEN 'critical' ELSE 'high' END,
       'untracked_tenant_table',
       c.oid::pg_catalog.regclass::text,
       pg_catalog.format('table %s has a uuid tenant_id column but is not isolated: %s',
                         c.oid::pg_catalog.regclass,
                         CASE WHEN EXISTS (SELECT FROM pg_catalog.unnest(scope.targets) t(oid)
                                            WHERE pg_catalog.has_table_privilege(t.oid, c.oid,
                                                    'SELECT, INSERT, UPDATE, DELETE'))
                              THEN 'application roles hold privileges on it, over every tenant''s rows'
                              ELSE 'nothing keeps tenants apart once application roles are granted it' END),
       CASE WHEN NOT a.attnotnull
            THEN pg_catalog.format('ALTER TABLE %s ALTER COLUMN tenant_id SET NOT NULL; ',
                                   c.oid::pg_catalog.regclass)
            ELSE '' END
       || pg_catalog.format('SELECT @extschema@.isolate(%L);', c.oid::pg_catalog.regclass::text)
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a
    ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND a.attnum > 0 AND NOT a.attisdropped
   AND a.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype
 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
   AND c.oid <> ALL (scope.isolated)
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', '@extschema@')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
$fn$;

-- isolation_drift: isolated tables whose live state no longer matches what isolate() made
-- (tenancy.isolated_tables' drift). Grants of TRUNCATE/REFERENCES/TRIGGER are left to
-- dangerous_grant, which has a finer fix.
CREATE FUNCTION @extschema@.lint_isolation_drift(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT CASE WHEN x.drift && ARRAY['rls_disabled', 'rls_not_forced', 'isolation_policy', 'tenant_column']
            THEN 'critical'
            WHEN x.drift && ARRAY['read_policy', 'write_policy'] THEN 'high'
            ELSE 'medium' END,
       'isolation_drift',
       x.tbl::text,
       pg_catalog.format('isolated table %s no longer matches what isolate() made: %s',
                         x.tbl, pg_catalog.array_to_string(x.drift, ', ')),
       CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_attribute a
                          WHERE a.attrelid = x.tbl AND a.attname = x.tenant_column
                            AND NOT a.attisdropped AND NOT a.attnotnull)
            THEN pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL; ', x.tbl, x.tenant_column)
            ELSE '' END
       || pg_catalog.format('SELECT @extschema@.isolate(%L, %L, %L, %L);',
                            x.tbl::text, x.tenant_column, x.read_permission, x.write_permission)
  FROM (SELECT i.table_name AS tbl, i.tenant_column, i.read_permission, i.write_permission,
               ARRAY(SELECT d FROM pg_catalog.unnest(i.drift) d WHERE d <> 'dangerous_grants') AS drift
          FROM @extschema@.isolated_tables i) x
 WHERE pg_catalog.cardinality(x.drift) > 0
$fn$;

-- app_role_superuser: app roles (and group roles) that are superusers: row-level security does
-- not apply to them.
CREATE FUNCTION @extschema@.lint_app_role_superuser(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'critical', 'app_role_superuser', w.name,
       pg_catalog.format('%s role %s is a superuser: row-level security does not apply to it',
                         CASE WHEN w.oid = ANY (scope.group_roles) THEN 'group' ELSE 'application' END, w.name),
       pg_catalog.format('ALTER ROLE %s NOSUPERUSER;', w.name)
  FROM @extschema@.linter_grantees() w WHERE w.oid = ANY (scope.roles) AND w.super
$fn$;

-- app_role_bypassrls: app roles (and group roles) with BYPASSRLS.
CREATE FUNCTION @extschema@.lint_app_role_bypassrls(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'critical', 'app_role_bypassrls', w.name,
       pg_catalog.format('%s role %s has BYPASSRLS: row-level security does not apply to it',
                         CASE WHEN w.oid = ANY (scope.group_roles) THEN 'group' ELSE 'application' END, w.name),
       pg_catalog.format('ALTER ROLE %s NOBYPASSRLS;', w.name)
  FROM @extschema@.linter_grantees() w WHERE w.oid = ANY (scope.roles) AND w.bypass
$fn$;

-- app_role_createrole: app roles (and group roles) with CREATEROLE, which can grant themselves
-- the server-file roles.
CREATE FUNCTION @extschema@.lint_app_role_createrole(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'critical', 'app_role_createrole', pg_catalog.quote_ident(r.rolname),
       pg_catalog.format('%s role %s has CREATEROLE: it can grant itself membership in '
                         'pg_read_server_files or pg_execute_server_program and read every tenant''s data',
                         CASE WHEN r.oid = ANY (scope.group_roles) THEN 'group' ELSE 'application' END,
                         pg_catalog.quote_ident(r.rolname)),
       pg_catalog.format('ALTER ROLE %I NOCREATEROLE;', r.rolname)
  FROM pg_catalog.pg_roles r WHERE r.oid = ANY (scope.roles) AND r.rolcreaterole AND NOT r.rolsuper
$fn$;

-- app_role_member_of_privileged_role: app roles that can act as a privileged role (superuser,
-- BYPASSRLS, CREATEROLE, owner of a protected table, or a predefined role that reads or writes
-- every table or the server's files) through a membership other than in the group roles, which
-- are checked themselves. The fix cuts the app role's first step towards it.
CREATE FUNCTION @extschema@.lint_app_role_member_of_privileged_role(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
-- Roles whose privileges or attributes an app role must not be able to use.
WITH privileged AS (
    SELECT r.oid,
           pg_catalog.concat_ws(', ',
               CASE WHEN r.rolsuper THEN 'superuser' END,
               CASE WHEN r.rolbypassrls THEN 'bypassrls' END,
               CASE WHEN r.rolcreaterole THEN 'createrole' END,
               CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_class c
                                  WHERE c.oid = ANY (scope.protected) AND c.relowner = r.oid)
                    THEN 'owner of isolated tables' END,
               CASE r.rolname WHEN 'pg_read_all_data' THEN 'reads every table'
                              WHEN 'pg_write_all_data' THEN 'writes every table'
                              WHEN 'pg_read_server_files' THEN 'reads the server''s files'
                              WHEN 'pg_write_server_files' THEN 'writes the server''s files'
                              WHEN 'pg_execute_server_program' THEN 'runs programs on the server'
                              WHEN 'pg_read_all_settings' THEN 'reads every setting, tenancy.cluster_secret too'
               END) AS why
      FROM pg_catalog.pg_roles r
)
SELECT 'critical', 'app_role_member_of_privileged_role', pg_catalog.quote_ident(r.rolname),
       pg_catalog.format('%s role %s %s%s',
                         CASE WHEN r.oid = ANY (scope.group_roles) THEN 'group' ELSE 'application' END,
                         pg_catalog.quote_ident(r.rolname),
                         CASE WHEN p.only_self THEN 'is a member of ' ELSE 'can act as ' END || p.list,
                         CASE WHEN p.only_self THEN ''
                              ELSE ' through its membership in ' || pg_catalog.quote_ident(m.rolname) END),
       pg_catalog.format('REVOKE %I FROM %I;', m.rolname, r.rolname)
  FROM pg_catalog.pg_roles r
  JOIN pg_catalog.pg_auth_members am ON am.member = r.oid
  JOIN pg_catalog.pg_roles m ON m.oid = am.roleid
  CROSS JOIN LATERAL (
      SELECT pg_catalog.string_agg(pg_catalog.format('%I (%s)', o.rolname, pv.why), ', '
                                   ORDER BY o.rolname) AS list,
             pg_catalog.bool_and(o.oid = m.oid) AS only_self
        FROM pg_catalog.pg_roles o JOIN privileged pv ON pv.oid = o.oid
       WHERE pv.why <> ''
         AND (o.oid = m.oid OR (NOT m.rolsuper AND pg_catalog.pg_has_role(m.oid, o.oid, 'MEMBER')))
  ) p
 WHERE r.oid = ANY (scope.roles) AND NOT r.rolsuper
   AND m.oid <> ALL (scope.roles)
   AND p.list IS NOT NULL
$fn$;

-- app_role_owns_isolated_table: protected tables owned by an app role: the owner can turn
-- row-level security off.
CREATE FUNCTION @extschema@.lint_app_role_owns_isolated_table(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'critical', 'app_role_owns_isolated_table', c.oid::pg_catalog.regclass::text,
       pg_catalog.format('%s %s is owned by %s role %s, which can alter or drop its row-level security',
                         CASE WHEN c.oid = ANY (scope.isolated) THEN 'isolated table' ELSE 'partition' END,
                         c.oid::pg_catalog.regclass,
                         CASE WHEN c.relowner = ANY (scope.group_roles) THEN 'group' ELSE 'application' END,
                         pg_catalog.quote_ident(o.rolname)),
       pg_catalog.format('ALTER TABLE %s OWNER TO CURRENT_USER;', c.oid::pg_catalog.regclass)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles o ON o.oid = c.relowner
 WHERE c.oid = ANY (scope.protected) AND c.relowner = ANY (scope.roles)
$fn$;

-- dangerous_grant: TRUNCATE (ignores RLS), REFERENCES (probes keys) and TRIGGER (sees rows before
-- the policy's check) on isolated tables, granted to anything an app role can use.
CREATE FUNCTION @extschema@.lint_dangerous_grant(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'high', 'dangerous_grant', c.oid::pg_catalog.regclass::text,
       pg_catalog.format('isolated table %s grants %s to %s: %s',
                         c.oid::pg_catalog.regclass,
                         pg_catalog.string_agg(acl.privilege_type, ', ' ORDER BY acl.privilege_type), g.name,
                         pg_catalog.string_agg(
                             CASE acl.privilege_type
                                  WHEN 'TRUNCATE' THEN 'TRUNCATE ignores row-level security'
                                  WHEN 'REFERENCES' THEN 'REFERENCES lets a foreign key probe other tenants'' keys'
                                  ELSE 'TRIGGER lets a trigger see rows before the policy''s check' END,
                             ', ' ORDER BY acl.privilege_type)),
       pg_catalog.format('REVOKE %s ON TABLE %s FROM %s;',
                         pg_catalog.string_agg(acl.privilege_type, ', ' ORDER BY acl.privilege_type),
                         c.oid::pg_catalog.regclass, g.name)
  FROM pg_catalog.pg_class c
  CROSS JOIN LATERAL pg_catalog.aclexplode(
      COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner))) acl
  JOIN @extschema@.linter_grantees() g ON g.oid = acl.grantee
 WHERE c.oid = ANY (scope.isolated)
   AND acl.privilege_type IN ('TRUNCATE', 'REFERENCES', 'TRIGGER')
   AND acl.grantee <> c.relowner AND acl.grantee = ANY (scope.reach)
 GROUP BY c.oid, g.name
$fn$;

-- partition_readable_by_app: any privilege on a partition of an isolated table granted to
-- anything an app role can use: a partition has no row-level security of its own.
CREATE FUNCTION @extschema@.lint_partition_readable_by_app(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'critical', 'partition_readable_by_app', c.oid::pg_catalog.regclass::text,
       pg_catalog.format('partition %s of an isolated table grants %s to %s: a partition has no '
                         'row-level security of its own',
                         c.oid::pg_catalog.regclass,
                         pg_catalog.string_agg(acl.privilege_type, ', ' ORDER BY acl.privilege_type), g.name),
       pg_catalog.format('REVOKE ALL ON TABLE %s FROM %s;', c.oid::pg_catalog.regclass, g.name)
  FROM pg_catalog.pg_class c
  CROSS JOIN LATERAL pg_catalog.aclexplode(
      COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner))) acl
  JOIN @extschema@.linter_grantees() g ON g.oid = acl.grantee
 WHERE c.oid = ANY (scope.protected) AND c.oid <> ALL (scope.isolated)
   AND acl.grantee <> c.relowner AND acl.grantee = ANY (scope.reach)
 GROUP BY c.oid, g.name
$fn$;

-- permissive_policy_widens: PERMISSIVE policies on isolated tables that isolate() did not create
-- and that apply to a role an app role can use: they are OR-ed with tenancy_isolation.
CREATE FUNCTION @extschema@.lint_permissive_policy_widens(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'critical', 'permissive_policy_widens', p.polrelid::pg_catalog.regclass::text,
       pg_catalog.format('permissive policy %I on isolated table %s applies to %s and is OR-ed with '
                         'tenancy_isolation: rows it admits are visible across tenants',
                         p.polname, p.polrelid::pg_catalog.regclass,
                         (SELECT pg_catalog.string_agg(g.name, ', ' ORDER BY g.name)
                            FROM @extschema@.linter_grantees() g WHERE g.oid = ANY (p.polroles))),
       pg_catalog.format('DROP POLICY %I ON %s;', p.polname, p.polrelid::pg_catalog.regclass)
  FROM pg_catalog.pg_policy p
 WHERE p.polrelid = ANY (scope.isolated) AND p.polpermissive
   AND p.polname <> ALL (@extschema@.isolation_policy_names())
   AND p.polroles && scope.reach
$fn$;

-- view_without_security_invoker: views over protected tables that run with their owner's
-- rights and that an app role can query (views that belong to an extension are left out).
CREATE FUNCTION @extschema@.lint_view_without_security_invoker(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT CASE WHEN o.rolsuper OR o.rolbypassrls THEN 'critical' ELSE 'medium' END,
       'view_without_security_invoker', c.oid::pg_catalog.regclass::text,
       pg_catalog.format('view %s reads isolated tables with the rights of its owner %s%s, '
                         'and application roles can query it',
                         c.oid::pg_catalog.regclass, pg_catalog.quote_ident(o.rolname),
                         CASE WHEN o.rolsuper OR o.rolbypassrls
                              THEN ', who bypasses row-level security: it shows every tenant''s rows'
                              ELSE '' END),
       pg_catalog.format('ALTER VIEW %s SET (security_invoker = true);', c.oid::pg_catalog.regclass)
  FROM @extschema@.linter_views_over_protected(scope.protected) v
  JOIN pg_catalog.pg_class c ON c.oid = v.viewid AND c.relkind = 'v'
  JOIN pg_catalog.pg_roles o ON o.oid = c.relowner
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_options_to_table(c.reloptions) ro
                    WHERE ro.option_name = 'security_invoker' AND ro.option_value::boolean)
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND e.objid = c.oid AND e.deptype = 'e')
   AND EXISTS (SELECT FROM pg_catalog.unnest(scope.targets) t(oid)
                WHERE pg_catalog.has_table_privilege(t.oid, c.oid, 'SELECT, INSERT, UPDATE, DELETE'))
$fn$;

-- matview_readable_by_app: materialized views over protected tables (filled by their owner,
-- without row-level security) with SELECT granted to anything an app role can use.
CREATE FUNCTION @extschema@.lint_matview_readable_by_app(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'critical', 'matview_readable_by_app', c.oid::pg_catalog.regclass::text,
       pg_catalog.format('materialized view %s holds rows of isolated tables without row-level '
                         'security and grants SELECT to %s', c.oid::pg_catalog.regclass, g.name),
       pg_catalog.format('REVOKE SELECT ON TABLE %s FROM %s;', c.oid::pg_catalog.regclass, g.name)
  FROM @extschema@.linter_views_over_protected(scope.protected) v
  JOIN pg_catalog.pg_class c ON c.oid = v.viewid AND c.relkind = 'm'
  CROSS JOIN LATERAL pg_catalog.aclexplode(
      COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner))) acl
  JOIN @extschema@.linter_grantees() g ON g.oid = acl.grantee
 WHERE acl.privilege_type = 'SELECT' AND acl.grantee = ANY (scope.reach)
$fn$;

-- definer_function_without_search_path: SECURITY DEFINER functions an app role can execute whose
-- search_path is the caller's (pg_tenancy's own functions are left out).
CREATE FUNCTION @extschema@.lint_definer_function_without_search_path(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'high', 'definer_function_without_search_path', p.oid::pg_catalog.regprocedure::text,
       pg_catalog.format('security definer function %s runs with the rights of %s under the '
                         'caller''s search_path, and application roles can execute it',
                         p.oid::pg_catalog.regprocedure, pg_catalog.quote_ident(o.rolname)),
       pg_catalog.format('ALTER ROUTINE %s SET search_path = pg_catalog, %I, pg_temp;',
                         p.oid::pg_catalog.regprocedure, n.nspname)
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_catalog.pg_roles o ON o.oid = p.proowner
 WHERE p.prosecdef
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT FROM pg_catalog.unnest(p.proconfig) s WHERE s LIKE 'search\_path=%')
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend e
                    WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND e.objid = p.oid
                      AND e.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                      AND e.refobjid = scope.extension_oid AND e.deptype = 'e')
   AND EXISTS (SELECT FROM pg_catalog.unnest(scope.targets) t(oid)
                WHERE pg_catalog.has_function_privilege(t.oid, p.oid, 'EXECUTE'))
$fn$;

-- app_role_can_create_temp and app_role_can_create_schema: TEMPORARY and CREATE on this
-- database granted to anything an app role can use: objects an app role creates outlive its
-- transaction and carry data to the next client of a pooled connection.
CREATE FUNCTION @extschema@.lint_app_role_can_create_temp_or_schema(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'high',
       CASE acl.privilege_type WHEN 'TEMPORARY' THEN 'app_role_can_create_temp'
                               ELSE 'app_role_can_create_schema' END,
       pg_catalog.quote_ident(d.datname),
       pg_catalog.format('database %I grants %s to %s: %s',
                         d.datname, acl.privilege_type, g.name,
                         CASE acl.privilege_type
                              WHEN 'TEMPORARY'
                              THEN 'application roles can create temporary tables, which outlive the '
                                   'transaction on a pooled connection and shadow application tables'
                              ELSE 'application roles can create schemas and keep data across tenants in them' END),
       pg_catalog.format('REVOKE %s ON DATABASE %I FROM %s;', acl.privilege_type, d.datname, g.name)
  FROM pg_catalog.pg_database d
  CROSS JOIN LATERAL pg_catalog.aclexplode(
      COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) acl
  JOIN @extschema@.linter_grantees() g ON g.oid = acl.grantee
 WHERE d.datname = pg_catalog.current_database()
   AND acl.privilege_type IN ('TEMPORARY', 'CREATE')
   AND acl.grantee = ANY (scope.reach)
   AND NOT (acl.grantee = d.datdba AND d.datdba = ANY (scope.roles))
$fn$;

-- app_role_can_create_in_schema: CREATE on a schema granted to anything an app role can use.
CREATE FUNCTION @extschema@.lint_app_role_can_create_in_schema(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'high', 'app_role_can_create_in_schema', pg_catalog.quote_ident(n.nspname),
       pg_catalog.format('schema %I grants CREATE to %s: application roles can create tables '
                         'that keep data across tenants, or objects that shadow the application''s',
                         n.nspname, g.name),
       pg_catalog.format('REVOKE CREATE ON SCHEMA %I FROM %s;', n.nspname, g.name)
  FROM pg_catalog.pg_namespace n
  CROSS JOIN LATERAL pg_catalog.aclexplode(
      COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) acl
  JOIN @extschema@.linter_grantees() g ON g.oid = acl.grantee
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
   AND acl.privilege_type = 'CREATE'
   AND acl.grantee = ANY (scope.reach)
   AND NOT (acl.grantee = n.nspowner AND n.nspowner = ANY (scope.roles))
$fn$;

-- app_role_owns_schema: schemas owned by an app role (or a group role).
CREATE FUNCTION @extschema@.lint_app_role_owns_schema(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'high', 'app_role_owns_schema', pg_catalog.quote_ident(n.nspname),
       pg_catalog.format('schema %I is owned by %s role %s, which can create objects in it and '
                         'drop or rename every table in it',
                         n.nspname, CASE WHEN n.nspowner = ANY (scope.group_roles) THEN 'group' ELSE 'application' END,
                         pg_catalog.quote_ident(o.rolname)),
       pg_catalog.format('ALTER SCHEMA %I OWNER TO CURRENT_USER;', n.nspname)
  FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles o ON o.oid = n.nspowner
 WHERE n.nspowner = ANY (scope.roles)
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
$fn$;

-- app_role_owns_database: this database, when an app role (or a group role) owns it.
CREATE FUNCTION @extschema@.lint_app_role_owns_database(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'high', 'app_role_owns_database', pg_catalog.quote_ident(d.datname),
       pg_catalog.format('database %I is owned by %s role %s, which can create schemas and '
                         'temporary tables and change the database''s settings',
                         d.datname, CASE WHEN d.datdba = ANY (scope.group_roles) THEN 'group' ELSE 'application' END,
                         pg_catalog.quote_ident(o.rolname)),
       pg_catalog.format('ALTER DATABASE %I OWNER TO CURRENT_USER;', d.datname)
  FROM pg_catalog.pg_database d JOIN pg_catalog.pg_roles o ON o.oid = d.datdba
 WHERE d.datname = pg_catalog.current_database() AND d.datdba = ANY (scope.roles)
$fn$;

-- unique_without_tenant_column: unique indexes and constraints on protected tables that leave
-- out the tenant column: inserting another tenant's key fails, which tells that the row exists.
-- Indexes attached to a partitioned parent's index are reported once, on the parent. Low when
-- every key column is a uuid (hard to guess), medium otherwise.
CREATE FUNCTION @extschema@.lint_unique_without_tenant_column(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT CASE WHEN u.all_uuid THEN 'low' ELSE 'medium' END,
       'unique_without_tenant_column', u.tbl::text,
       pg_catalog.format('%s %I on %s leaves out the tenant column %I: a duplicate key reveals '
                         'that another tenant''s row exists%s',
                         CASE u.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint'
                                        ELSE 'unique index' END,
                         u.name, u.tbl, u.tc,
                         CASE WHEN u.all_uuid THEN ' (its keys are uuids: hard to guess)' ELSE '' END),
       CASE WHEN u.contype IS NOT NULL
            THEN pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s;',
                                   u.tbl, u.name, u.name,
                                   pg_catalog.regexp_replace(pg_catalog.pg_get_constraintdef(u.conoid),
                                                             '\(', pg_catalog.format('(%I, ', u.tc)))
            ELSE pg_catalog.format('DROP INDEX %s; %s;', u.idx,
                                   pg_catalog.regexp_replace(pg_catalog.pg_get_indexdef(u.idx),
                                                             ' USING (\w+) \(',
                                                             pg_catalog.format(' USING \1 (%I, ', u.tc)))
       END
  FROM (
    SELECT c.oid::pg_catalog.regclass AS tbl, i.indexrelid::pg_catalog.regclass AS idx,
           ic.relname AS name, k.contype, k.oid AS conoid, g.tenant_column AS tc,
           NOT EXISTS (SELECT FROM pg_catalog.unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) ka(n)
                        WHERE ka.n = 0 OR NOT EXISTS (
                            SELECT FROM pg_catalog.pg_attribute b
                             WHERE b.attrelid = c.oid AND b.attnum = ka.n
                               AND b.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype)) AS all_uuid
      FROM pg_catalog.pg_class c
      -- The tenant column of the isolated table this table is, or is a partition of.
      JOIN @extschema@.linter_protected_tables(scope.isolated) prot ON prot.relid = c.oid
      JOIN @extschema@.isolation_registry g ON g.relid::oid = prot.isolated_relid
      JOIN pg_catalog.pg_attribute a
        ON a.attrelid = c.oid AND a.attname = g.tenant_column AND NOT a.attisdropped
      JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisunique
      JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
      LEFT JOIN pg_catalog.pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = c.oid
                                          AND k.contype IN ('p', 'u')
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid)
       AND a.attnum <> ALL ((i.indkey::int2[])[0:i.indnkeyatts - 1])
       -- An expression over the tenant column counts as including it.
       AND NOT (i.indexprs IS NOT NULL AND EXISTS (
               SELECT FROM pg_catalog.pg_depend d
                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                  AND d.objid = i.indexrelid AND d.refobjid = c.oid AND d.refobjsubid = a.attnum))
  ) u
$fn$;

-- foreign_key_without_tenant_column: foreign keys between isolated tables that do not pair the
-- two tenant columns: a row may reference (and, with ON DELETE CASCADE, be deleted by) another
-- tenant's row, and a failed reference tells that a key exists.
CREATE FUNCTION @extschema@.lint_foreign_key_without_tenant_column(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'high', 'foreign_key_without_tenant_column', fk.src::text,
       pg_catalog.format('foreign key %I from %s to %s does not pair the tenant columns: a row can '
                         'reference another tenant''s row, and a failed reference reveals that it exists',
                         fk.conname, fk.src, fk.ref),
       CASE WHEN fk.ref_unique THEN ''
            ELSE pg_catalog.format('ALTER TABLE %s ADD UNIQUE (%s); ', fk.ref, fk.ref_cols) END
       || pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I FOREIGN KEY (%s) '
                            'REFERENCES %s (%s)%s;',
                            fk.src, fk.conname, fk.conname, fk.src_cols, fk.ref, fk.ref_cols, fk.tail)
  FROM (
    SELECT k.conname, k.conrelid::pg_catalog.regclass AS src, k.confrelid::pg_catalog.regclass AS ref,
           pg_catalog.quote_ident(rs.tenant_column) || COALESCE(', ' || pp.src_names, '') AS src_cols,
           pg_catalog.quote_ident(rr.tenant_column) || COALESCE(', ' || pp.ref_names, '') AS ref_cols,
           EXISTS (SELECT FROM pg_catalog.pg_index i
                    WHERE i.indrelid = k.confrelid AND i.indisunique AND i.indpred IS NULL
                      AND i.indexprs IS NULL
                      AND (i.indkey::int2[])[0:i.indnkeyatts - 1] @> (ar.attnum || pp.ref_nums)
                      AND (i.indkey::int2[])[0:i.indnkeyatts - 1] <@ (ar.attnum || pp.ref_nums))
               AS ref_unique,
           CASE WHEN k.confmatchtype = 'f' THEN ' MATCH FULL' ELSE '' END
           || CASE k.confupdtype WHEN 'r' THEN ' ON UPDATE RESTRICT' WHEN 'c' THEN ' ON UPDATE CASCADE'
                                 WHEN 'n' THEN ' ON UPDATE SET NULL' WHEN 'd' THEN ' ON UPDATE SET DEFAULT'
                                 ELSE '' END
           || CASE k.confdeltype WHEN 'r' THEN ' ON DELETE RESTRICT' WHEN 'c' THEN ' ON DELETE CASCADE'
                                 WHEN 'n' THEN ' ON DELETE SET NULL (' || pp.set_names || ')'
                                 WHEN 'd' THEN ' ON DELETE SET DEFAULT (' || pp.set_names || ')'
                                 ELSE '' END
           || CASE WHEN k.condeferrable THEN ' DEFERRABLE' ELSE '' END
           || CASE WHEN k.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END AS tail
      FROM pg_catalog.pg_constraint k
      JOIN @extschema@.isolation_registry rs ON rs.relid::oid = k.conrelid
      JOIN @extschema@.isolation_registry rr ON rr.relid::oid = k.confrelid
      JOIN pg_catalog.pg_attribute as_ ON as_.attrelid = k.conrelid AND as_.attname = rs.tenant_column
                                      AND NOT as_.attisdropped
      JOIN pg_catalog.pg_attribute ar ON ar.attrelid = k.confrelid AND ar.attname = rr.tenant_column
                                     AND NOT ar.attisdropped
      -- The other column pairs, in order, without the tenant columns.
      CROSS JOIN LATERAL (
          SELECT pg_catalog.string_agg(pg_catalog.quote_ident(sa.attname), ', ' ORDER BY x.n) AS src_names,
                 pg_catalog.string_agg(pg_catalog.quote_ident(ra.attname), ', ' ORDER BY x.n) AS ref_names,
                 COALESCE(pg_catalog.array_agg(x.ref ORDER BY x.n), '{}')::int2[] AS ref_nums,
                 COALESCE(
                     (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(da.attname), ', ' ORDER BY y.n)
                        FROM pg_catalog.unnest(k.confdelsetcols) WITH ORDINALITY y(att, n)
                        JOIN pg_catalog.pg_attribute da ON da.attrelid = k.conrelid AND da.attnum = y.att),
                     pg_catalog.string_agg(pg_catalog.quote_ident(sa.attname), ', ' ORDER BY x.n)) AS set_names
            FROM ROWS FROM (pg_catalog.unnest(k.conkey), pg_catalog.unnest(k.confkey)) WITH ORDINALITY x(src, ref, n)
            JOIN pg_catalog.pg_attribute sa ON sa.attrelid = k.conrelid AND sa.attnum = x.src
            JOIN pg_catalog.pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = x.ref
           WHERE x.src <> as_.attnum AND x.ref <> ar.attnum
      ) pp
     WHERE k.contype = 'f' AND k.conparentid = 0
       AND k.conrelid = ANY (scope.isolated) AND k.confrelid = ANY (scope.isolated)
       AND NOT EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest(k.conkey), pg_catalog.unnest(k.confkey)) z(src, ref)
                        WHERE z.src = as_.attnum AND z.ref = ar.attnum)
  ) fk
$fn$;

-- set_privilege_on_tenancy_setting: SET (or ALTER SYSTEM) on a tenancy.* setting granted to
-- anything an app role can use.
CREATE FUNCTION @extschema@.lint_set_privilege_on_tenancy_setting(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'high', 'set_privilege_on_tenancy_setting', pa.parname,
       pg_catalog.format('parameter %s grants %s to %s: pg_tenancy''s settings are for superusers',
                         pa.parname, pg_catalog.string_agg(acl.privilege_type, ', ' ORDER BY acl.privilege_type),
                         g.name),
       pg_catalog.format('REVOKE %s ON PARAMETER %s FROM %s;',
                         pg_catalog.string_agg(acl.privilege_type, ', ' ORDER BY acl.privilege_type),
                         pa.parname, g.name)
  FROM pg_catalog.pg_parameter_acl pa
  CROSS JOIN LATERAL pg_catalog.aclexplode(pa.paracl) acl
  JOIN @extschema@.linter_grantees() g ON g.oid = acl.grantee
 WHERE pa.parname LIKE 'tenancy.%'
   AND acl.privilege_type IN ('SET', 'ALTER SYSTEM')
   AND acl.grantee = ANY (scope.reach)
 GROUP BY pa.parname, g.name
$fn$;

-- cache_trigger_disabled: a cache invalidation trigger missing or not in its mode (statement
-- trigger ENABLE ALWAYS, row trigger ENABLE REPLICA): the caches are off (correct, but every
-- check reads the tables again). See docs/security.md, "Caches".
CREATE FUNCTION @extschema@.lint_cache_trigger_disabled(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'medium', 'cache_trigger_disabled', c.oid::pg_catalog.regclass::text,
       CASE WHEN t.oid IS NULL
            THEN pg_catalog.format('%s has no trigger %s: pg_tenancy caches nothing',
                                   c.oid::pg_catalog.regclass, k.name)
            ELSE pg_catalog.format('trigger %s on %s is not ENABLE %s (%s): pg_tenancy caches nothing',
                                   k.name, c.oid::pg_catalog.regclass, k.mode_word, t.tgenabled)
       END,
       CASE WHEN t.oid IS NULL
            THEN pg_catalog.format('CREATE TRIGGER %s AFTER INSERT OR UPDATE%s OR DELETE%s ON %s '
                                   'FOR EACH %s EXECUTE FUNCTION @extschema@.cache_invalidate(); ',
                                   k.name,
                                   CASE WHEN c.relname = 'api_tokens'
                                        THEN ' OF id, tenant_id, name, scopes, created_by, created_at, expires_at, revoked_at, token_hash, parent_id'
                                        ELSE '' END,
                                   CASE WHEN k.per_row THEN '' ELSE ' OR TRUNCATE' END,
                                   c.oid::pg_catalog.regclass,
                                   CASE WHEN k.per_row THEN 'ROW' ELSE 'STATEMENT' END)
            ELSE ''
       END
       || pg_catalog.format('ALTER TABLE %s ENABLE %s TRIGGER %s;',
                            c.oid::pg_catalog.regclass, k.mode_word, k.name)
  FROM pg_catalog.pg_class c
 CROSS JOIN (VALUES ('tenancy_cache_invalidate', false, 'ALWAYS', 'A'::"char"),
                    ('tenancy_cache_invalidate_replica', true, 'REPLICA', 'R'::"char"))
            AS k(name, per_row, mode_word, mode)
  LEFT JOIN pg_catalog.pg_trigger t
         ON t.tgrelid = c.oid AND t.tgname = k.name
 WHERE c.relnamespace = '@extschema@'::pg_catalog.regnamespace
   AND c.relname IN ('tenants', 'users', 'memberships', 'roles', 'role_permissions',
                     'permissions', 'api_tokens', 'signing_keys')
   AND (t.oid IS NULL OR t.tgenabled <> k.mode)
$fn$;

-- durable_log_off: pg_tenancy is not preloaded, so denials go to the server log only.
CREATE FUNCTION @extschema@.lint_durable_log_off(scope @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT 'medium', 'durable_log_off', 'shared_preload_libraries',
       'pg_tenancy is not in shared_preload_libraries: denials go to the server log only, not to '
       'tenancy.auth_log, and the missing-context check starts only when a backend first loads the library',
       '-- in postgresql.conf: shared_preload_libraries = ''pg_tenancy'' (added to the existing '
       'list), then restart the server'
 WHERE NOT scope.preloaded
$fn$;

-- restrictive_policy_on_citus_table: a RESTRICTIVE policy on a table Citus manages. Citus
-- creates the policies of a table's shards without AS RESTRICTIVE, so on the workers the
-- policy is ORed with the permissive ones and widens access instead of narrowing it. (The
-- policies isolate() makes are all permissive.) Only where Citus is installed.
CREATE FUNCTION @extschema@.lint_restrictive_policy_on_citus_table(s @extschema@.linter_scope)
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE $q$
    SELECT 'critical'::text, 'restrictive_policy_on_citus_table'::text,
           pg_catalog.format('%I on %s', p.polname, p.polrelid::pg_catalog.regclass),
           pg_catalog.format('policy %I on %s is RESTRICTIVE, and Citus creates the policies of its '
                             'shards without AS RESTRICTIVE: on the workers it widens access',
                             p.polname, p.polrelid::pg_catalog.regclass),
           pg_catalog.format('DROP POLICY %I ON %s; -- then AND its condition into the permissive '
                             'policies of the commands it governs', p.polname,
                             p.polrelid::pg_catalog.regclass)
      FROM pg_catalog.pg_policy p
      JOIN pg_catalog.pg_dist_partition d ON d.logicalrelid = p.polrelid
     WHERE NOT p.polpermissive
    $q$;
END
$fn$;

-- Every finding of every check, most severe first (then by code, object and message).
CREATE FUNCTION @extschema@.audit()
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    s @extschema@.linter_scope := @extschema@.linter_current_scope();
BEGIN
    RETURN QUERY
    SELECT f.sev, f.cd, f.obj, f.msg, f.fx
      FROM (
          SELECT * FROM @extschema@.lint_untracked_tenant_table(s)
          UNION ALL SELECT * FROM @extschema@.lint_isolation_drift(s)
          UNION ALL SELECT * FROM @extschema@.lint_app_role_superuser(s)
          UNION ALL SELECT * FROM @extschema@.lint_app_role_bypassrls(s)
          UNION ALL SELECT * FROM @extschema@.lint_app_role_createrole(s)
          UNION ALL SELECT * FROM @extschema@.lint_app_role_member_of_privileged_role(s)
          UNION ALL SELECT * FROM @extschema@.lint_app_role_owns_isolated_table(s)
          UNION ALL SELECT * FROM @extschema@.lint_dangerous_grant(s)
          UNION ALL SELECT * FROM @extschema@.lint_partition_readable_by_app(s)
          UNION ALL SELECT * FROM @extschema@.lint_permissive_policy_widens(s)
          UNION ALL SELECT * FROM @extschema@.lint_view_without_security_invoker(s)
          UNION ALL SELECT * FROM @extschema@.lint_matview_readable_by_app(s)
          UNION ALL SELECT * FROM @extschema@.lint_definer_function_without_search_path(s)
          UNION ALL SELECT * FROM @extschema@.lint_app_role_can_create_temp_or_schema(s)
          UNION ALL SELECT * FROM @extschema@.lint_app_role_can_create_in_schema(s)
          UNION ALL SELECT * FROM @extschema@.lint_app_role_owns_schema(s)
          UNION ALL SELECT * FROM @extschema@.lint_app_role_owns_database(s)
          UNION ALL SELECT * FROM @extschema@.lint_unique_without_tenant_column(s)
          UNION ALL SELECT * FROM @extschema@.lint_foreign_key_without_tenant_column(s)
          UNION ALL SELECT * FROM @extschema@.lint_set_privilege_on_tenancy_setting(s)
          UNION ALL SELECT * FROM @extschema@.lint_cache_trigger_disabled(s)
          UNION ALL SELECT * FROM @extschema@.lint_durable_log_off(s)
          UNION ALL SELECT * FROM @extschema@.lint_restrictive_policy_on_citus_table(s)
          UNION ALL SELECT * FROM @extschema@.lint_delete_blocked()
      ) AS f(sev, cd, obj, msg, fx)
     ORDER BY pg_catalog.array_position(ARRAY['critical', 'high', 'medium', 'low', 'info'], f.sev),
              f.cd COLLATE pg_catalog."C", f.obj COLLATE pg_catalog."C", f.msg COLLATE pg_catalog."C";
END
$fn$;
