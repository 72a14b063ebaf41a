-- pg_tenancy 0.2.0 → 0.3.0. Frozen once 0.3.0 is released.
\echo Use "ALTER EXTENSION pg_tenancy UPDATE" to load this file. \quit

-- The authorization log: the login role beside the acting role, and merged repeats.
ALTER TABLE @extschema@.auth_log
    ADD COLUMN login_role text,
    ADD COLUMN repeats integer NOT NULL DEFAULT 1,
    ADD COLUMN last_at timestamptz,
    ADD CONSTRAINT auth_log_repeats_check CHECK (repeats >= 1);
COMMENT ON COLUMN @extschema@.auth_log.db_role IS
    'the role the client acted as (after SET ROLE)';
COMMENT ON COLUMN @extschema@.auth_log.login_role IS
    'the role the session logged in as (session_user)';
COMMENT ON COLUMN @extschema@.auth_log.repeats IS
    'how many identical decisions this row stands for: under load, a decision identical to one still waiting to be written (but for its time) is merged into it';
COMMENT ON COLUMN @extschema@.auth_log.last_at IS
    'when repeats > 1: the time of the last merged decision (at is the first)';
CREATE OR REPLACE VIEW @extschema@.auth_stats AS
SELECT pg_catalog.date_trunc('hour', l.at) AS hour,
       l.tenant_id,
       l.action,
       l.permission,
       COALESCE(pg_catalog.sum(l.repeats) FILTER (WHERE l.outcome = 'allow'), 0)::bigint AS allowed,
       COALESCE(pg_catalog.sum(l.repeats) FILTER (WHERE l.outcome = 'deny'), 0)::bigint AS denied
  FROM @extschema@.auth_log l
 GROUP BY 1, 2, 3, 4;

-- log_status() reports merged events.
DROP FUNCTION @extschema@.log_status();
CREATE FUNCTION @extschema@."log_status"() RETURNS TABLE (
	"durable" bool,
	"queued" bigint,
	"merged" bigint,
	"dropped" bigint,
	"writers" bigint
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'log_status_wrapper';
REVOKE ALL ON FUNCTION @extschema@.log_status() FROM PUBLIC;

-- API tokens made in a token's context: they expire no later and die with it.
ALTER TABLE @extschema@.api_tokens
    ADD COLUMN parent_id uuid,
    ADD CONSTRAINT api_tokens_parent_fkey FOREIGN KEY (parent_id)
        REFERENCES @extschema@.api_tokens (id) ON DELETE CASCADE;
CREATE INDEX api_tokens_parent_idx ON @extschema@.api_tokens (parent_id);
GRANT SELECT (parent_id) ON @extschema@.api_tokens TO tenancy_client;
CREATE OR REPLACE TRIGGER tenancy_cache_invalidate
    AFTER INSERT
       OR UPDATE OF id, tenant_id, name, scopes, created_by, created_at, expires_at, revoked_at,
                    token_hash, parent_id
       OR DELETE OR TRUNCATE ON @extschema@.api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.cache_invalidate();
ALTER TABLE @extschema@.api_tokens ENABLE ALWAYS TRIGGER tenancy_cache_invalidate;
CREATE OR REPLACE TRIGGER tenancy_cache_invalidate_replica
    AFTER INSERT
       OR UPDATE OF id, tenant_id, name, scopes, created_by, created_at, expires_at, revoked_at,
                    token_hash, parent_id
       OR DELETE ON @extschema@.api_tokens
    FOR EACH ROW EXECUTE FUNCTION @extschema@.cache_invalidate();
ALTER TABLE @extschema@.api_tokens ENABLE REPLICA TRIGGER tenancy_cache_invalidate_replica;

-- The checks isolate()'s policies make on written rows (they record a refusal when it
-- happens), and whether the caller is a trusted backend.
CREATE FUNCTION @extschema@."check_row_tenant"(
	"tenant" uuid
) RETURNS bool
STABLE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'check_row_tenant_wrapper';
CREATE FUNCTION @extschema@."check_write_permission"(
	"permission" TEXT
) RETURNS bool
STABLE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'check_write_permission_wrapper';
CREATE FUNCTION @extschema@."caller_may_set_tenant"() RETURNS bool
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'caller_may_set_tenant_wrapper';
REVOKE ALL ON FUNCTION @extschema@.caller_may_set_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.check_row_tenant(uuid),
                          @extschema@.check_write_permission(text) TO PUBLIC;

-- The members view's rows: application roles only (it filters by the context itself).
REVOKE EXECUTE ON FUNCTION @extschema@.member_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.member_rows() TO tenancy_client;

-- Invitations: an existing user joins only by their own consent; emails compared
-- case-insensitively. Tokens made by tokens.
CREATE OR REPLACE FUNCTION @extschema@.accept_invitation_as(token text, accepting_user uuid)
RETURNS TABLE (out_tenant_id uuid, out_user_id uuid, out_role text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_id     uuid := @extschema@.verify_invitation(token);  -- raises 28000 unless it verifies
    v_inv    @extschema@.invitations%ROWTYPE;
    v_user   uuid;
    v_email  text;
    v_role   text;
BEGIN
    SELECT * INTO v_inv FROM @extschema@.invitations i WHERE i.id = v_id FOR UPDATE;
    -- Re-checked under the row lock: a concurrent accept or resend may have won.
    IF NOT FOUND OR v_inv.token_hash <> pg_catalog.sha256(pg_catalog.convert_to(token, 'UTF8')) THEN
        PERFORM @extschema@.invitation_failed('superseded');
    ELSIF v_inv.accepted_at IS NOT NULL THEN
        PERFORM @extschema@.invitation_failed('already_accepted');
    ELSIF v_inv.revoked_at IS NOT NULL THEN
        PERFORM @extschema@.invitation_failed('revoked');
    ELSIF pg_catalog.clock_timestamp() >= v_inv.expires_at THEN
        PERFORM @extschema@.invitation_failed('expired');
    ELSIF NOT EXISTS (SELECT FROM @extschema@.tenants t WHERE t.id = v_inv.tenant_id AND t.status = 'active') THEN
        PERFORM @extschema@.invitation_failed('tenant_suspended');
    END IF;

    -- The invitation binds an email (compared as users.email is: case-insensitively), and an
    -- existing user joins only by their own consent: signed in as that user (the context's
    -- user), or named by a trusted backend (tenancy_app), which authenticates users itself.
    -- Holding the token is not enough: the inviter holds it too.
    IF accepting_user IS NULL THEN
        SELECT u.id, u.email INTO v_user, v_email
          FROM @extschema@.users u WHERE pg_catalog.lower(u.email) = pg_catalog.lower(v_inv.email);
        IF NOT FOUND THEN
            v_user := @extschema@.create_user(v_inv.email);
            v_email := v_inv.email;
        ELSIF v_user IS DISTINCT FROM @extschema@.current_user_id() THEN
            PERFORM @extschema@.log_denial('accept_invitation', NULL, 'existing_user_not_signed_in');
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = 'tenancy: the invited email belongs to an existing user, who must accept the invitation signed in',
                HINT = 'authenticate as that user first (a JWT with its sub), or have the trusted backend pass its user_id';
        END IF;
    ELSE
        IF NOT @extschema@.caller_may_set_tenant()
           AND accepting_user IS DISTINCT FROM @extschema@.current_user_id() THEN
            PERFORM @extschema@.log_denial('accept_invitation', NULL, 'not_own_user');
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = 'tenancy: a client can accept an invitation only for the user it is signed in as',
                HINT = 'pass NULL, or authenticate as that user first';
        END IF;
        SELECT u.id, u.email INTO v_user, v_email FROM @extschema@.users u WHERE u.id = accepting_user;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = pg_catalog.format('tenancy: unknown user %s', accepting_user),
                HINT = 'pass NULL to create the user from the invitation''s email';
        END IF;
    END IF;
    IF pg_catalog.lower(v_email) IS DISTINCT FROM pg_catalog.lower(v_inv.email) THEN
        PERFORM @extschema@.log_denial('accept_invitation', NULL, 'email_mismatch');
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('tenancy: user %s does not have the email the invitation was sent to', v_user),
            HINT = 'the invited person must accept with the exact email address that was invited';
    END IF;

    UPDATE @extschema@.invitations i
       SET accepted_at = pg_catalog.clock_timestamp(), accepted_by = v_user
     WHERE i.id = v_id;
    -- An existing member keeps the role they have.
    INSERT INTO @extschema@.memberships AS m (tenant_id, user_id, role)
    VALUES (v_inv.tenant_id, v_user, v_inv.role)
    ON CONFLICT ON CONSTRAINT memberships_pkey DO NOTHING;
    SELECT m.role INTO v_role FROM @extschema@.memberships m
     WHERE m.tenant_id = v_inv.tenant_id AND m.user_id = v_user;

    out_tenant_id := v_inv.tenant_id;
    out_user_id := v_user;
    out_role := v_role;
    RETURN NEXT;
END
$fn$;

CREATE OR REPLACE FUNCTION @extschema@.create_api_token(name text, scopes text[], expires_at timestamptz DEFAULT NULL)
RETURNS TABLE (token_id uuid, token text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_tenant  uuid := @extschema@.current_tenant();
    v_name    text := pg_catalog.btrim(name);
    v_scope   text;
    v_id      uuid := pg_catalog.gen_random_uuid();
    v_token   text;
    v_parent  uuid := (@extschema@.context() ->> 'token_id')::uuid;
    v_expires timestamptz := expires_at;
BEGIN
    IF v_name IS NULL OR v_name = '' OR pg_catalog.length(v_name) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: invalid token name %s', COALESCE(pg_catalog.quote_literal(pg_catalog.left(v_name, 64)), 'NULL')),
            HINT = 'a token name is 1 to 200 characters, e.g. ''nightly export''';
    END IF;
    IF scopes IS NULL OR pg_catalog.cardinality(scopes) > 100 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: scopes must be an array of at most 100 permissions',
            HINT = 'for example ARRAY[''orders:read'', ''inventory:write'']';
    END IF;
    IF expires_at IS NOT NULL AND expires_at <= pg_catalog.clock_timestamp() THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: expires_at %s is in the past', expires_at),
            HINT = 'pass a future time, or NULL for a token that does not expire';
    END IF;
    PERFORM @extschema@.require_permission('tokens:write');
    FOREACH v_scope IN ARRAY scopes LOOP
        -- has_permission() raises 22023 for NULL and unknown names.
        IF NOT @extschema@.has_permission(v_scope) THEN
            PERFORM @extschema@.log_denial('create_api_token', v_scope, 'scope_not_held');
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = pg_catalog.format('tenancy: cannot grant scope %s, which you do not hold', pg_catalog.quote_literal(v_scope)),
                HINT = 'a token can only carry permissions its creator holds';
        END IF;
    END LOOP;

    -- A token made in a token's context never outlives it: it expires no later, and it dies
    -- when that token is revoked, expires or is deleted (authenticate() checks the chain).
    IF v_parent IS NOT NULL THEN
        SELECT LEAST(v_expires, k.expires_at) INTO v_expires
          FROM @extschema@.api_tokens k WHERE k.id = v_parent;
    END IF;
    v_token := @extschema@.new_api_token(v_id);
    INSERT INTO @extschema@.api_tokens AS k
           (id, tenant_id, name, scopes, created_by, expires_at, token_hash, parent_id)
    VALUES (v_id, v_tenant, v_name,
            ARRAY(SELECT DISTINCT s FROM pg_catalog.unnest(scopes) AS s ORDER BY s),
            @extschema@.actor_id(), v_expires,
            pg_catalog.sha256(pg_catalog.convert_to(v_token, 'UTF8')), v_parent);
    token_id := v_id;
    token := v_token;
    RETURN NEXT;
END
$fn$;

-- isolate(): inline policies (no subquery: cheaper, and what Citus accepts) whose WITH CHECK
-- records refusals; every registered table is isolated again in the new shape.
CREATE OR REPLACE FUNCTION @extschema@.isolate(
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
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE pg_catalog.format(
        'CREATE POLICY tenancy_isolation ON %s AS PERMISSIVE FOR ALL TO PUBLIC '
        'USING (%I = @extschema@.current_tenant()) WITH CHECK (@extschema@.check_row_tenant(%I))',
        tbl, tenant_column, tenant_column);
    -- has_permission() is decided once per statement (and cached per connection), so an inline
    -- call costs a memory read per row.
    IF read_permission IS NOT NULL THEN
        EXECUTE pg_catalog.format(
            'CREATE POLICY tenancy_read ON %s AS RESTRICTIVE FOR SELECT TO PUBLIC '
            'USING (@extschema@.has_permission(%L))', tbl, read_permission);
    END IF;
    IF write_permission IS NOT NULL THEN
        EXECUTE pg_catalog.format(
            'CREATE POLICY tenancy_write_insert ON %s AS RESTRICTIVE FOR INSERT TO PUBLIC '
            'WITH CHECK (@extschema@.check_write_permission(%L))', tbl, write_permission);
        EXECUTE pg_catalog.format(
            'CREATE POLICY tenancy_write_update ON %s AS RESTRICTIVE FOR UPDATE TO PUBLIC '
            'USING (@extschema@.has_permission(%2$L)) WITH CHECK (@extschema@.check_write_permission(%2$L))',
            tbl, write_permission);
        EXECUTE pg_catalog.format(
            'CREATE POLICY tenancy_write_delete ON %s AS RESTRICTIVE FOR DELETE TO PUBLIC '
            'USING (@extschema@.has_permission(%L))', tbl, write_permission);
    END IF;

    EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT @extschema@.current_tenant()',
                              tbl, tenant_column);

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

DO $reisolate$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT g.relid, g.tenant_column, g.read_permission, g.write_permission
               FROM @extschema@.isolation_registry g
               JOIN pg_catalog.pg_class c ON c.oid = g.relid
    LOOP
        PERFORM @extschema@.isolate(r.relid, r.tenant_column, r.read_permission, r.write_permission);
    END LOOP;
END
$reisolate$;
