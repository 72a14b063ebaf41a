-- Policy generators: isolate(), unisolate(), the isolated_tables view and auto_isolate().
--
-- These functions are SECURITY INVOKER: ALTER TABLE, CREATE POLICY and GRANT need the caller to
-- own the table, exactly as if the statements were typed by hand. Every identifier reaches
-- dynamic SQL through regclass output (quoted and, under the pinned search_path,
-- schema-qualified), %I or %L.

-- An expression as text, deparsed under a fixed search_path so that names are always
-- schema-qualified and comparisons do not depend on the caller's search_path.
CREATE FUNCTION @extschema@.deparse(expr pg_node_tree, relid oid)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT pg_catalog.pg_get_expr(expr, relid) $fn$;

-- Each of isolate()'s policies on a table, by name: kind, command, roles and expressions.
-- Stored at isolate() time and compared by isolated_tables to detect altered policies.
CREATE FUNCTION @extschema@.policy_signature(tbl regclass)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT COALESCE(pg_catalog.jsonb_object_agg(p.polname, pg_catalog.jsonb_build_array(
           p.polpermissive, p.polcmd, p.polroles::oid[],
           pg_catalog.pg_get_expr(p.polqual, p.polrelid),
           pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))), '{}')
  FROM pg_catalog.pg_policy p
 WHERE p.polrelid = tbl
   AND p.polname IN ('tenancy_isolation', 'tenancy_read', 'tenancy_write_insert',
                     'tenancy_write_update', 'tenancy_write_delete')
$fn$;

-- The policies isolate() owns on a table, by name.
CREATE FUNCTION @extschema@.isolation_policy_names()
RETURNS name[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT ARRAY['tenancy_isolation', 'tenancy_read', 'tenancy_write_insert',
             'tenancy_write_update', 'tenancy_write_delete']::name[]
$fn$;

-- Sets (or, for a NULL expression, drops) the DEFAULT of a table's tenant column. Citus
-- refuses ALTER TABLE on a distribution column: for a table it distributes by the tenant column,
-- the default is set on the coordinator's table only, without propagation. That is where an
-- INSERT's default is evaluated (and picks the shard); an INSERT … SELECT that Citus pushes down
-- to the workers must name the tenant column (the shards of a table isolated after it was
-- distributed have no default, and NOT NULL refuses the row). `expr` is pg_tenancy's own
-- expression or one read back from the catalog, never a caller's text.
CREATE FUNCTION @extschema@.set_tenant_default(tbl regclass, tenant_column name, expr text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_distributed boolean := false;
    v_propagation text;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p
                                 WHERE p.logicalrelid = $1 AND p.partmethod = ''h''
                                   AND pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) = $2)'
           INTO v_distributed USING tbl, tenant_column::text;
    END IF;
    IF v_distributed THEN
        v_propagation := pg_catalog.current_setting('citus.enable_ddl_propagation');
        PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
    END IF;
    IF expr IS NULL THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', tbl, tenant_column);
    ELSE
        EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s', tbl, tenant_column, expr);
    END IF;
    IF v_distributed THEN
        PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', v_propagation, true);
    END IF;
END
$fn$;

CREATE FUNCTION @extschema@.isolate(
    tbl              regclass,
    tenant_column    name DEFAULT 'tenant_id',
    read_permission  text DEFAULT NULL,
    write_permission text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_kind     "char";
    v_rls      boolean;
    v_force    boolean;
    v_schema   name;
    v_attnum   int2;
    v_type     oid;
    v_notnull  boolean;
    v_perm     text;
    v_policy   name;
    v_qual     jsonb;
    v_index    regclass;
    v_seq      regclass;
    v_prior    @extschema@.isolation_registry%ROWTYPE;
    v_grantee  text;
    v_tenant   text;
    v_check    text;
    v_read     text;
    v_write    text;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: table must not be null',
            HINT = 'pass a table name such as ''public.orders''';
    END IF;
    SELECT c.relkind, c.relrowsecurity, c.relforcerowsecurity, n.nspname
      INTO v_kind, v_rls, v_force, v_schema
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl;
    IF v_kind IS NULL OR v_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: %s is not a table', tbl),
            HINT = 'isolate() takes an ordinary or partitioned table; isolate the tables under a view instead';
    END IF;
    IF v_schema IN ('pg_catalog', 'information_schema', '@extschema@') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: %s is a system or pg_tenancy table', tbl),
            HINT = 'isolate the application''s own tables';
    END IF;
    IF tenant_column IS NULL OR tenant_column = '' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: tenant_column must not be null or empty',
            HINT = 'name the uuid column that holds the tenant id, by default tenant_id';
    END IF;
    SELECT a.attnum, a.atttypid, a.attnotnull INTO v_attnum, v_type, v_notnull
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = tenant_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: table %s has no column %I', tbl, tenant_column),
            HINT = pg_catalog.format('add it: ALTER TABLE %s ADD COLUMN %I uuid NOT NULL', tbl, tenant_column);
    END IF;
    IF v_type <> 'pg_catalog.uuid'::pg_catalog.regtype THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: column %I of %s is %s, not uuid', tenant_column, tbl,
                                        pg_catalog.format_type(v_type, NULL)),
            HINT = 'the tenant column must be of type uuid';
    END IF;
    IF NOT v_notnull THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: column %I of %s is nullable', tenant_column, tbl),
            HINT = pg_catalog.format('make it NOT NULL: ALTER TABLE %s ALTER COLUMN %I SET NOT NULL', tbl, tenant_column);
    END IF;
    FOREACH v_perm IN ARRAY ARRAY[read_permission, write_permission] LOOP
        IF v_perm IS NOT NULL
           AND NOT EXISTS (SELECT FROM @extschema@.permissions p WHERE p.name = v_perm) THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = pg_catalog.format('tenancy: unknown permission %L', pg_catalog.left(v_perm, 64)),
                HINT = 'add it first: INSERT INTO tenancy.permissions (name) VALUES (''resource:action'')';
        END IF;
    END LOOP;

    -- What the table looked like before the first isolate(), so that unisolate() can restore it.
    SELECT * INTO v_prior FROM @extschema@.isolation_registry r WHERE r.relid = tbl;
    IF NOT FOUND THEN
        v_prior.prior_rls := v_rls;
        v_prior.prior_force := v_force;
        SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) INTO v_prior.prior_default
          FROM pg_catalog.pg_attrdef d WHERE d.adrelid = tbl AND d.adnum = v_attnum;
        SELECT COALESCE(pg_catalog.array_agg(DISTINCT acl.privilege_type ORDER BY acl.privilege_type), '{}')
          INTO v_prior.prior_privileges
          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) acl
         WHERE c.oid = tbl AND acl.grantee = 'tenancy_client'::pg_catalog.regrole
           AND acl.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE');
    ELSIF v_prior.tenant_column <> tenant_column THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: %s is already isolated on column %I', tbl, v_prior.tenant_column),
            HINT = 'run tenancy.unisolate() first to change the tenant column';
    END IF;

    FOR v_policy IN
        SELECT p.polname FROM pg_catalog.pg_policy p
         WHERE p.polrelid = tbl AND p.polname = ANY (@extschema@.isolation_policy_names())
    LOOP
        EXECUTE pg_catalog.format('DROP POLICY %I ON %s', v_policy, tbl);
    END LOOP;

    -- Reads compare the tenant column with an inline call of the STABLE current_tenant(): the
    -- planner uses it as an index condition evaluated once per scan, Citus accepts it (it
    -- refuses subqueries in policies), and no value is ever frozen into a cached plan. Written
    -- rows are checked by check_row_tenant(), which records a refusal when it happens.
    --
    -- A permission is ANDed into the policy of each command it governs, which then has one
    -- policy of its own: PERMISSIVE policies only. (A RESTRICTIVE policy would say the same on
    -- one server, but Citus recreates the policies of a table's shards without AS RESTRICTIVE,
    -- which would turn "tenant AND permission" into "tenant OR permission" on the workers.)
    -- has_permission() is decided once per statement (and cached per connection), so an inline
    -- call costs a memory read per row.
    v_tenant := pg_catalog.format('%I = @extschema@.current_tenant()', tenant_column);
    v_check := pg_catalog.format('@extschema@.check_row_tenant(%I)', tenant_column);
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', tbl);
    IF read_permission IS NULL AND write_permission IS NULL THEN
        EXECUTE pg_catalog.format(
            'CREATE POLICY tenancy_isolation ON %s AS PERMISSIVE FOR ALL TO PUBLIC USING (%s) WITH CHECK (%s)',
            tbl, v_tenant, v_check);
    ELSE
        v_read := v_tenant;
        IF read_permission IS NOT NULL THEN
            v_read := v_read || pg_catalog.format(' AND @extschema@.has_permission(%L)', read_permission);
        END IF;
        v_write := v_tenant;
        IF write_permission IS NOT NULL THEN
            v_write := v_write || pg_catalog.format(' AND @extschema@.has_permission(%L)', write_permission);
            v_check := v_check || pg_catalog.format(' AND @extschema@.check_write_permission(%L)', write_permission);
        END IF;
        EXECUTE pg_catalog.format(
            'CREATE POLICY tenancy_isolation ON %s AS PERMISSIVE FOR SELECT TO PUBLIC USING (%s)',
            tbl, v_read);
        EXECUTE pg_catalog.format(
            'CREATE POLICY tenancy_write_insert ON %s AS PERMISSIVE FOR INSERT TO PUBLIC WITH CHECK (%s)',
            tbl, v_check);
        EXECUTE pg_catalog.format(
            'CREATE POLICY tenancy_write_update ON %s AS PERMISSIVE FOR UPDATE TO PUBLIC USING (%s) WITH CHECK (%s)',
            tbl, v_write, v_check);
        EXECUTE pg_catalog.format(
            'CREATE POLICY tenancy_write_delete ON %s AS PERMISSIVE FOR DELETE TO PUBLIC USING (%s)',
            tbl, v_write);
    END IF;

    PERFORM @extschema@.set_tenant_default(tbl, tenant_column, '@extschema@.current_tenant()');

    -- An index led by the tenant column, unless one exists (partial indexes do not count).
    SELECT i.indexrelid INTO v_index
      FROM pg_catalog.pg_index i
     WHERE i.indrelid = tbl AND i.indkey[0] = v_attnum AND i.indpred IS NULL
     LIMIT 1;
    IF v_index IS NULL THEN
        EXECUTE pg_catalog.format('CREATE INDEX ON %s (%I)', tbl, tenant_column);
        SELECT i.indexrelid INTO v_index
          FROM pg_catalog.pg_index i
         WHERE i.indrelid = tbl AND i.indkey[0] = v_attnum AND i.indpred IS NULL
         ORDER BY i.indexrelid DESC
         LIMIT 1;
        v_prior.created_index := v_index::text;
    END IF;

    -- The application's privileges, and never the ones that bypass or leak past RLS.
    EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO tenancy_client', tbl);
    EXECUTE pg_catalog.format('REVOKE TRUNCATE, REFERENCES, TRIGGER ON %s FROM PUBLIC, tenancy_client, tenancy_app', tbl);
    -- Also from every application role that holds them directly (not superusers, not the owner).
    FOR v_grantee IN
        SELECT DISTINCT pg_catalog.quote_ident(g.rolname)
          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) acl
          JOIN pg_catalog.pg_roles g ON g.oid = acl.grantee
         WHERE c.oid = tbl AND acl.privilege_type IN ('TRUNCATE', 'REFERENCES', 'TRIGGER')
           AND acl.grantee <> c.relowner AND NOT g.rolsuper
           AND pg_catalog.pg_has_role(g.oid, 'tenancy_client', 'MEMBER')
    LOOP
        EXECUTE pg_catalog.format('REVOKE TRUNCATE, REFERENCES, TRIGGER ON %s FROM %s', tbl, v_grantee);
    END LOOP;
    -- serial columns need USAGE for their DEFAULT nextval(); identity columns do not (and
    -- nextval() in an application's hands only exhausts the sequence and counts other tenants'
    -- inserts).
    FOR v_seq IN
        SELECT d.objid::regclass
          FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class s ON s.oid = d.objid
         WHERE d.refobjid = tbl AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.deptype = 'a' AND s.relkind = 'S'
    LOOP
        EXECUTE pg_catalog.format('GRANT USAGE ON SEQUENCE %s TO tenancy_client', v_seq);
    END LOOP;

    v_qual := @extschema@.policy_signature(tbl);

    INSERT INTO @extschema@.isolation_registry AS r
           (relid, tenant_column, read_permission, write_permission, policies, created_index,
            prior_rls, prior_force, prior_default, prior_privileges)
    VALUES (tbl, tenant_column, read_permission, write_permission, v_qual, v_prior.created_index,
            v_prior.prior_rls, v_prior.prior_force, v_prior.prior_default, v_prior.prior_privileges)
    ON CONFLICT (relid) DO UPDATE
       SET read_permission = EXCLUDED.read_permission,
           write_permission = EXCLUDED.write_permission,
           policies = EXCLUDED.policies,
           created_index = COALESCE(EXCLUDED.created_index, r.created_index),
           isolated_at = pg_catalog.now();
END
$fn$;

CREATE FUNCTION @extschema@.unisolate(tbl regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_reg    @extschema@.isolation_registry%ROWTYPE;
    v_policy name;
    v_priv   text;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: table must not be null',
            HINT = 'pass the name of an isolated table';
    END IF;
    SELECT * INTO v_reg FROM @extschema@.isolation_registry r WHERE r.relid = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: table %s is not isolated', tbl),
            HINT = 'SELECT * FROM tenancy.isolated_tables lists the isolated tables';
    END IF;

    FOR v_policy IN
        SELECT p.polname FROM pg_catalog.pg_policy p
         WHERE p.polrelid = tbl AND p.polname = ANY (@extschema@.isolation_policy_names())
    LOOP
        EXECUTE pg_catalog.format('DROP POLICY %I ON %s', v_policy, tbl);
    END LOOP;

    PERFORM @extschema@.set_tenant_default(tbl, v_reg.tenant_column, v_reg.prior_default);

    IF v_reg.created_index IS NOT NULL AND pg_catalog.to_regclass(v_reg.created_index) IS NOT NULL THEN
        EXECUTE pg_catalog.format('DROP INDEX %s', pg_catalog.to_regclass(v_reg.created_index));
    END IF;

    EXECUTE pg_catalog.format('REVOKE SELECT, INSERT, UPDATE, DELETE ON %s FROM tenancy_client', tbl);
    FOREACH v_priv IN ARRAY v_reg.prior_privileges LOOP
        EXECUTE pg_catalog.format('GRANT %s ON %s TO tenancy_client', v_priv, tbl);
    END LOOP;

    IF NOT v_reg.prior_force THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
    END IF;
    IF NOT v_reg.prior_rls THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
    END IF;

    DELETE FROM @extschema@.isolation_registry r WHERE r.relid = tbl;
END
$fn$;

-- Each isolated table, its settings, and how its live state differs from what isolate() made.
CREATE VIEW @extschema@.isolated_tables AS
SELECT s.relid AS table_name,
       s.tenant_column,
       s.read_permission,
       s.write_permission,
       s.drift,
       pg_catalog.cardinality(s.drift) = 0 AS in_sync
  FROM (
    SELECT r.relid, r.tenant_column, r.read_permission, r.write_permission,
           ARRAY(SELECT d FROM pg_catalog.unnest(ARRAY[
               CASE WHEN NOT c.relrowsecurity THEN 'rls_disabled' END,
               CASE WHEN NOT c.relforcerowsecurity THEN 'rls_not_forced' END,
               CASE WHEN lv.live -> 'tenancy_isolation' IS DISTINCT FROM r.policies -> 'tenancy_isolation'
                    THEN 'isolation_policy' END,
               CASE WHEN lv.live -> 'tenancy_read' IS DISTINCT FROM r.policies -> 'tenancy_read'
                    THEN 'read_policy' END,
               CASE WHEN (lv.live -> 'tenancy_write_insert', lv.live -> 'tenancy_write_update',
                          lv.live -> 'tenancy_write_delete')
                         IS DISTINCT FROM
                         (r.policies -> 'tenancy_write_insert', r.policies -> 'tenancy_write_update',
                          r.policies -> 'tenancy_write_delete')
                    THEN 'write_policy' END,
               CASE WHEN NOT EXISTS (
                   SELECT FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = r.relid AND a.attname = r.tenant_column AND NOT a.attisdropped
                      AND a.attnotnull AND a.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype)
                    THEN 'tenant_column' END,
               CASE WHEN NOT EXISTS (
                   SELECT FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_attribute a
                          ON a.attrelid = d.adrelid AND a.attnum = d.adnum
                    WHERE d.adrelid = r.relid AND a.attname = r.tenant_column
                      AND @extschema@.deparse(d.adbin, d.adrelid) = '@extschema@.current_tenant()')
                    THEN 'default' END,
               CASE WHEN NOT EXISTS (
                   SELECT FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a
                          ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                    WHERE i.indrelid = r.relid AND a.attname = r.tenant_column AND i.indpred IS NULL)
                    THEN 'index' END,
               CASE WHEN NOT (pg_catalog.has_table_privilege('tenancy_client', r.relid, 'SELECT')
                          AND pg_catalog.has_table_privilege('tenancy_client', r.relid, 'INSERT')
                          AND pg_catalog.has_table_privilege('tenancy_client', r.relid, 'UPDATE')
                          AND pg_catalog.has_table_privilege('tenancy_client', r.relid, 'DELETE'))
                    THEN 'grants' END,
               CASE WHEN EXISTS (
                   SELECT FROM pg_catalog.aclexplode(c.relacl) acl
                    WHERE acl.privilege_type IN ('TRUNCATE', 'REFERENCES', 'TRIGGER')
                      AND acl.grantee <> c.relowner
                      AND (acl.grantee = 0 OR EXISTS (
                          SELECT FROM pg_catalog.pg_roles g
                           WHERE g.oid = acl.grantee AND NOT g.rolsuper
                             AND pg_catalog.pg_has_role(g.oid, 'tenancy_client', 'MEMBER'))))
                    THEN 'dangerous_grants' END
           ]) AS d WHERE d IS NOT NULL) AS drift
      FROM @extschema@.isolation_registry r
      JOIN pg_catalog.pg_class c ON c.oid = r.relid
      CROSS JOIN LATERAL (SELECT @extschema@.policy_signature(r.relid) AS live) lv
  ) s;

CREATE FUNCTION @extschema@.auto_isolate(schema_name name, enabled boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF schema_name IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname = schema_name) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: schema %s does not exist', COALESCE(pg_catalog.quote_ident(schema_name), 'NULL')),
            HINT = 'create the schema first';
    END IF;
    IF enabled IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: enabled must not be null',
            HINT = 'pass true to turn automatic isolation on, false to turn it off';
    END IF;
    IF enabled THEN
        INSERT INTO @extschema@.auto_isolate_schemas AS a (schema_name) VALUES (auto_isolate.schema_name)
        ON CONFLICT DO NOTHING;
    ELSE
        DELETE FROM @extschema@.auto_isolate_schemas a WHERE a.schema_name = auto_isolate.schema_name;
    END IF;
END
$fn$;

-- Event trigger: isolate every new table with a tenant_id column in an auto_isolate() schema.
-- SECURITY DEFINER because it fires for whoever runs the DDL; it only ever adds isolation to a
-- table that was just created. A tenant_id column that is not uuid NOT NULL makes the CREATE
-- fail (22023): the unsafe table is never created.
CREATE FUNCTION @extschema@.auto_isolate_trigger()
RETURNS event_trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_obj record;
BEGIN
    FOR v_obj IN
        SELECT c.objid::regclass AS tbl
          FROM pg_catalog.pg_event_trigger_ddl_commands() c
          JOIN pg_catalog.pg_class k ON k.oid = c.objid
          JOIN pg_catalog.pg_namespace n ON n.oid = k.relnamespace
          JOIN @extschema@.auto_isolate_schemas a ON a.schema_name = n.nspname
         WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND c.objsubid = 0
           AND k.relkind IN ('r', 'p')
           AND NOT k.relispartition
           AND EXISTS (SELECT FROM pg_catalog.pg_attribute t
                        WHERE t.attrelid = k.oid AND t.attname = 'tenant_id' AND NOT t.attisdropped)
    LOOP
        PERFORM @extschema@.isolate(v_obj.tbl);
    END LOOP;
END
$fn$;

CREATE EVENT TRIGGER tenancy_auto_isolate ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
    EXECUTE FUNCTION @extschema@.auto_isolate_trigger();

-- Forget dropped tables.
CREATE FUNCTION @extschema@.forget_dropped_tables()
RETURNS event_trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    DELETE FROM @extschema@.isolation_registry r
     USING pg_catalog.pg_event_trigger_dropped_objects() o
     WHERE o.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND o.objsubid = 0
       AND r.relid::oid = o.objid;
END
$fn$;

CREATE EVENT TRIGGER tenancy_forget_dropped ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION @extschema@.forget_dropped_tables();
