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

-- has_permission() and current_tenant() answer a policy's call for every row through entry
-- points of their own (the grants stay).
CREATE OR REPLACE FUNCTION @extschema@.has_permission(permission text) RETURNS boolean
LANGUAGE c STABLE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'has_permission_fast';
CREATE OR REPLACE FUNCTION @extschema@.current_tenant() RETURNS uuid STRICT STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'current_tenant_fast';

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

-- create_tenant(): a derived slug taken by a concurrent call is derived again (it was refused).
CREATE OR REPLACE FUNCTION @extschema@.create_tenant(name text, owner_id uuid, slug text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_name text := pg_catalog.btrim(create_tenant.name);
    v_slug text := create_tenant.slug;
    v_base text;
    v_id   uuid;
BEGIN
    IF v_name IS NULL OR v_name = '' OR pg_catalog.length(v_name) > 200 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: invalid tenant name %s',
                                        COALESCE(pg_catalog.quote_literal(pg_catalog.left(v_name, 64)), 'NULL')),
            HINT = 'a tenant name is 1 to 200 characters';
    END IF;
    IF owner_id IS NULL OR NOT EXISTS (SELECT FROM @extschema@.users u WHERE u.id = owner_id) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: unknown owner user %s', COALESCE(owner_id::text, 'NULL')),
            HINT = 'create the owner first with tenancy.create_user(email)';
    END IF;

    IF v_slug IS NOT NULL THEN
        IF v_slug !~ '^[a-z0-9]+(-[a-z0-9]+)*$' OR pg_catalog.length(v_slug) > 63 THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = pg_catalog.format('tenancy: invalid slug %s', pg_catalog.quote_literal(pg_catalog.left(v_slug, 64))),
                HINT = 'a slug is lower-case letters, digits and single dashes, at most 63 characters';
        END IF;
        IF EXISTS (SELECT FROM @extschema@.tenants t WHERE t.slug = v_slug) THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = pg_catalog.format('tenancy: slug %s is taken', pg_catalog.quote_literal(v_slug)),
                HINT = 'choose another slug, or pass NULL to derive a free one from the name';
        END IF;
    ELSE
        v_base := pg_catalog.btrim(pg_catalog.left(
            pg_catalog.regexp_replace(pg_catalog.lower(v_name), '[^a-z0-9]+', '-', 'g'), 48), '-');
        IF v_base = '' THEN
            v_base := 'tenant';
        END IF;
        v_slug := v_base;
        WHILE EXISTS (SELECT FROM @extschema@.tenants t WHERE t.slug = v_slug) LOOP
            v_slug := v_base || '-' || pg_catalog.left(pg_catalog.md5(pg_catalog.gen_random_uuid()::text), 8);
        END LOOP;
    END IF;

    -- A slug taken by a concurrent create_tenant() between the check and the insert: the
    -- caller's own is refused, a derived one is derived again.
    FOR v_attempt IN 1..10 LOOP
        BEGIN
            INSERT INTO @extschema@.tenants AS t (name, slug) VALUES (v_name, v_slug)
                RETURNING t.id INTO v_id;
            EXIT;
        EXCEPTION WHEN unique_violation THEN
            IF create_tenant.slug IS NOT NULL OR v_attempt = 10 THEN
                RAISE EXCEPTION USING ERRCODE = '22023',
                    MESSAGE = pg_catalog.format('tenancy: slug %s is taken', pg_catalog.quote_literal(v_slug)),
                    HINT = 'choose another slug, or pass NULL to derive a free one from the name';
            END IF;
            v_slug := v_base || '-' || pg_catalog.left(pg_catalog.md5(pg_catalog.gen_random_uuid()::text), 8);
        END;
    END LOOP;
    INSERT INTO @extschema@.memberships (tenant_id, user_id, role) VALUES (v_id, owner_id, 'owner');
    RETURN v_id;
END
$fn$;

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

-- Linter: one function per check.
--
-- audit() was one function; it is now the union of one internal function per check, over a
-- scope computed once (sql/linter.sql). New: the linter_scope type, its helpers and the
-- lint_* checks, executable by superusers only; audit() is replaced in place (same
-- signature, so grants on it survive), and its output is unchanged.

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

-- Executable by superusers only, as finalize.sql's REVOKE makes them in a fresh install.
REVOKE ALL ON FUNCTION
    @extschema@.linter_current_scope(),
    @extschema@.linter_grantees(),
    @extschema@.linter_protected_tables(oid[]),
    @extschema@.linter_views_over_protected(oid[]),
    @extschema@.lint_untracked_tenant_table(@extschema@.linter_scope),
    @extschema@.lint_isolation_drift(@extschema@.linter_scope),
    @extschema@.lint_app_role_superuser(@extschema@.linter_scope),
    @extschema@.lint_app_role_bypassrls(@extschema@.linter_scope),
    @extschema@.lint_app_role_createrole(@extschema@.linter_scope),
    @extschema@.lint_app_role_member_of_privileged_role(@extschema@.linter_scope),
    @extschema@.lint_app_role_owns_isolated_table(@extschema@.linter_scope),
    @extschema@.lint_dangerous_grant(@extschema@.linter_scope),
    @extschema@.lint_partition_readable_by_app(@extschema@.linter_scope),
    @extschema@.lint_permissive_policy_widens(@extschema@.linter_scope),
    @extschema@.lint_view_without_security_invoker(@extschema@.linter_scope),
    @extschema@.lint_matview_readable_by_app(@extschema@.linter_scope),
    @extschema@.lint_definer_function_without_search_path(@extschema@.linter_scope),
    @extschema@.lint_app_role_can_create_temp_or_schema(@extschema@.linter_scope),
    @extschema@.lint_app_role_can_create_in_schema(@extschema@.linter_scope),
    @extschema@.lint_app_role_owns_schema(@extschema@.linter_scope),
    @extschema@.lint_app_role_owns_database(@extschema@.linter_scope),
    @extschema@.lint_unique_without_tenant_column(@extschema@.linter_scope),
    @extschema@.lint_foreign_key_without_tenant_column(@extschema@.linter_scope),
    @extschema@.lint_set_privilege_on_tenancy_setting(@extschema@.linter_scope),
    @extschema@.lint_cache_trigger_disabled(@extschema@.linter_scope),
    @extschema@.lint_durable_log_off(@extschema@.linter_scope)
  FROM PUBLIC;

-- Every finding of every check, most severe first (then by code, object and message).
CREATE OR REPLACE FUNCTION @extschema@.audit()
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

-- log_decision(): decisions about a given tenant taken in SQL, allowed or denied (src/log.rs),
-- as cargo pgrx schema generates it. Internal.
CREATE FUNCTION @extschema@.log_decision(
	"tenant" uuid, /* Option < pgrx :: Uuid > */
	"action" TEXT, /* Option < & str > */
	"permission" TEXT, /* Option < & str > */
	"allowed" bool, /* Option < bool > */
	"reason" TEXT /* Option < & str > */
) RETURNS void
VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'log_decision_wrapper';
REVOKE ALL ON FUNCTION @extschema@.log_decision(uuid, text, text, boolean, text) FROM PUBLIC;

-- A seeded permission for export_tenant(), held by owners (through '*') only. A row of that
-- name that an application added before is kept as it is.
INSERT INTO @extschema@.permissions (name, description, seeded)
VALUES ('tenant:export', 'export every row of the tenant''s isolated tables', true)
ON CONFLICT (name) DO NOTHING;

------------------------------------------------------------------------------------------------
-- The tenant lifecycle: sql/lifecycle.sql as in a fresh install of 0.3.0.
------------------------------------------------------------------------------------------------

-- A tenant's life after create_tenant(): the tenants of a user, suspension and resumption,
-- handing ownership over, deleting a tenant's data and exporting it.
--
-- Who may do what is decided against the tenant context, as everywhere in pg_tenancy, with one
-- exception for operators: a superuser session without a context may suspend, resume, purge and
-- delete (a DBA's maintenance). A SECURITY DEFINER function cannot see who called it (inside it,
-- the current user is its owner), so each of these entry points is a SECURITY INVOKER wrapper
-- that looks at its caller, then calls either
--   *_checked  SECURITY DEFINER, executable by tenancy_client: decides from the context; or
--   *_write    SECURITY DEFINER, executable by nobody else: the work, called directly by the
--              wrapper when the caller is a superuser without a context.
-- The check is made on the wrapper's caller, so a superuser who runs someone else's SECURITY
-- DEFINER function never lends it this exception.
--
-- The *_write functions run as the extension's owner (a superuser), which bypasses row-level
-- security: they see and delete every tenant's rows, and filter by the tenant explicitly.

------------------------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------------------------

-- Every change of a tenant's status: who (a platform admin's user id, or the database role of a
-- superuser session), when and why. Append-only; kept when the tenant is deleted (like
-- auth_log), with a last row 'deleted'. Application roles read their own tenant's rows.
CREATE TABLE @extschema@.tenant_status_history (
    id        uuid        NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    tenant_id uuid        NOT NULL,
    status    text        NOT NULL,
    reason    text,
    user_id   uuid,
    db_role   text        NOT NULL,
    CONSTRAINT tenant_status_history_pkey PRIMARY KEY (id),
    CONSTRAINT tenant_status_history_status_check CHECK (status IN ('suspended', 'active', 'deleted'))
);
CREATE INDEX tenant_status_history_tenant_at_idx ON @extschema@.tenant_status_history (tenant_id, at);

-- Tombstones: the ids of deleted tenants, never used again (a trigger on tenants refuses them).
-- Readable by superusers only.
CREATE TABLE @extschema@.deleted_tenants (
    id           uuid        NOT NULL,
    slug         text        NOT NULL,
    deleted_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    deleted_by   uuid,
    db_role      text        NOT NULL,
    rows_deleted jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT deleted_tenants_pkey PRIMARY KEY (id)
);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.tenant_status_history', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.deleted_tenants', '');

CREATE FUNCTION @extschema@.refuse_deleted_tenant_id()
RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF EXISTS (SELECT FROM @extschema@.deleted_tenants d WHERE d.id = NEW.id) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: tenant id %s belonged to a deleted tenant', NEW.id),
            HINT = 'the id of a deleted tenant is never used again; let tenancy.create_tenant() choose one';
    END IF;
    RETURN NEW;
END
$fn$;

CREATE TRIGGER tenancy_refuse_deleted_id
    BEFORE INSERT OR UPDATE OF id ON @extschema@.tenants
    FOR EACH ROW EXECUTE FUNCTION @extschema@.refuse_deleted_tenant_id();

------------------------------------------------------------------------------------------------
-- Shared helpers (internal)
------------------------------------------------------------------------------------------------

-- Whether the context's user is a platform admin acting in person: a user in the context
-- (set_tenant()'s user_id, a JWT's sub) and no scopes. An API token or a JWT with `scope` is a
-- credential for the permissions it names, never for platform administration.
CREATE FUNCTION @extschema@.acting_platform_admin()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT COALESCE((
    SELECT u.platform_admin
      FROM @extschema@.users u
     WHERE u.id = @extschema@.current_user_id()
       AND pg_catalog.jsonb_typeof(@extschema@.context() -> 'scopes') = 'null'), false)
$fn$;

-- The role the client acts as (after SET ROLE), whoever owns the running function: what the
-- records of suspensions and deletions name as db_role.
CREATE FUNCTION @extschema@.session_role()
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT CASE WHEN pg_catalog.current_setting('role') = 'none'
            THEN SESSION_USER::text
            ELSE pg_catalog.current_setting('role') END
$fn$;

-- Raises unless the context may act on `tenant`: its user is a platform admin acting in person,
-- or (when `permission` is given) the context is in that tenant and its actor holds the
-- permission. Returns why it was allowed; refusals are logged.
CREATE FUNCTION @extschema@.lifecycle_authorize(action text, tenant uuid, permission text)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_ctx jsonb := @extschema@.context();
BEGIN
    IF v_ctx = '{}'::jsonb THEN
        PERFORM @extschema@.log_decision(tenant, action, permission, false, 'no_context');
        RAISE EXCEPTION USING ERRCODE = '28000', MESSAGE = 'tenancy: no tenant context',
            HINT = CASE WHEN permission IS NULL
                        THEN 'set a context whose user is a platform admin first: tenancy.set_tenant(any_tenant_id, admin_user_id)'
                        ELSE 'set a context first: the tenant''s with an owner''s user id, or any tenant''s with a platform admin''s' END;
    END IF;
    IF @extschema@.acting_platform_admin() THEN
        RETURN 'platform_admin';
    END IF;
    IF permission IS NOT NULL AND (v_ctx ->> 'tenant_id')::uuid = tenant
       AND @extschema@.has_permission(permission) THEN
        RETURN 'permission';
    END IF;
    PERFORM @extschema@.log_decision(tenant, action, permission, false,
                                     CASE WHEN permission IS NULL THEN 'not_platform_admin'
                                          ELSE 'permission_missing' END);
    IF permission IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('tenancy: %s(%s) is for platform admins only', action, tenant),
            HINT = 'set a context whose user is a platform admin (tenancy.users.platform_admin), without token or scopes';
    END IF;
    RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = pg_catalog.format('tenancy: %s(%s) needs permission %s in that tenant', action, tenant,
                                    pg_catalog.quote_literal(permission)),
        HINT = 'an owner of the tenant does it in the tenant''s context, or a platform admin from any context';
END
$fn$;

------------------------------------------------------------------------------------------------
-- user_tenants(): the tenants a user belongs to (the "workspace switcher")
------------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.user_tenant_rows(user_id uuid)
RETURNS TABLE (tenant_id uuid, name text, slug text, role text, status text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT t.id, t.name, t.slug, m.role, t.status
  FROM @extschema@.memberships m
  JOIN @extschema@.tenants t ON t.id = m.tenant_id
 WHERE m.user_id = $1
 ORDER BY t.name, t.id
$fn$;

-- Any user's tenants: for tenancy_app, which authenticates users itself. NULL means the
-- context's user.
CREATE FUNCTION @extschema@.user_tenants_any(user_id uuid)
RETURNS TABLE (tenant_id uuid, name text, slug text, role text, status text)
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_user uuid := COALESCE(user_tenants_any.user_id, @extschema@.current_user_id());
BEGIN
    IF v_user IS NULL THEN
        PERFORM @extschema@.log_decision(NULL, 'user_tenants', NULL, false, 'no_user');
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'tenancy: user_id must not be null without a user in the context',
            HINT = 'pass the id of the user whose tenants to list';
    END IF;
    IF NOT EXISTS (SELECT FROM @extschema@.users u WHERE u.id = v_user) THEN
        PERFORM @extschema@.log_decision(NULL, 'user_tenants', NULL, false, 'unknown_user ' || v_user);
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: unknown user %s', v_user),
            HINT = 'pass the id of an existing user (tenancy.create_user() returns it)';
    END IF;
    PERFORM @extschema@.log_decision(NULL, 'user_tenants', NULL, true, 'tenancy_app user ' || v_user);
    RETURN QUERY SELECT * FROM @extschema@.user_tenant_rows(v_user);
END
$fn$;

-- The context's own user's tenants: for tenancy_client, whose context a token set.
CREATE FUNCTION @extschema@.user_tenants_own(user_id uuid)
RETURNS TABLE (tenant_id uuid, name text, slug text, role text, status text)
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_own uuid := @extschema@.current_user_id();
BEGIN
    IF @extschema@.context() = '{}'::jsonb THEN
        PERFORM @extschema@.log_decision(NULL, 'user_tenants', NULL, false, 'no_context');
        RAISE EXCEPTION USING ERRCODE = '28000', MESSAGE = 'tenancy: no tenant context',
            HINT = 'call tenancy.authenticate(token) with a token of the user first';
    END IF;
    IF v_own IS NULL THEN
        PERFORM @extschema@.log_decision(NULL, 'user_tenants', NULL, false, 'no_user');
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = 'tenancy: the context has no user whose tenants could be listed',
            HINT = 'an API token acts for its tenant, not for a user: authenticate with a JWT whose sub is the user';
    END IF;
    IF user_tenants_own.user_id IS NOT NULL AND user_tenants_own.user_id <> v_own THEN
        PERFORM @extschema@.log_decision(NULL, 'user_tenants', NULL, false, 'other_user ' || user_tenants_own.user_id);
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('tenancy: cannot list the tenants of user %s', user_tenants_own.user_id),
            HINT = 'a client lists the tenants of its own user only: call tenancy.user_tenants() without an argument';
    END IF;
    PERFORM @extschema@.log_decision(NULL, 'user_tenants', NULL, true, 'own_user ' || v_own);
    RETURN QUERY SELECT * FROM @extschema@.user_tenant_rows(v_own);
END
$fn$;

-- Whoever may execute user_tenants_any() (tenancy_app, superusers) may ask for any user; every
-- other caller gets its own user's list.
CREATE FUNCTION @extschema@.user_tenants(user_id uuid DEFAULT NULL)
RETURNS TABLE (tenant_id uuid, name text, slug text, role text, status text)
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF pg_catalog.has_function_privilege('@extschema@.user_tenants_any(uuid)', 'EXECUTE') THEN
        RETURN QUERY SELECT * FROM @extschema@.user_tenants_any(user_tenants.user_id);
    ELSE
        RETURN QUERY SELECT * FROM @extschema@.user_tenants_own(user_tenants.user_id);
    END IF;
END
$fn$;

------------------------------------------------------------------------------------------------
-- suspend_tenant() / resume_tenant()
------------------------------------------------------------------------------------------------

-- Sets the status, records who, when and why, and logs. The UPDATE fires the statement trigger
-- on tenants: every connection forgets the tenant's cached status when this commits, so
-- set_tenant(), authenticate() and accept_invitation() refuse (or admit) it from their next
-- statement on.
CREATE FUNCTION @extschema@.tenant_status_write(tenant_id uuid, status text, reason text, decided_by text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_action text := CASE status WHEN 'suspended' THEN 'suspend_tenant' ELSE 'resume_tenant' END;
    v_old    text;
BEGIN
    IF tenant_status_write.tenant_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: tenant_id must not be null',
            HINT = 'pass the id of a tenant';
    END IF;
    IF status IS NULL OR status NOT IN ('suspended', 'active') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: invalid tenant status %s', COALESCE(pg_catalog.quote_literal(status), 'NULL')),
            HINT = 'a tenant is ''active'' or ''suspended''';
    END IF;
    IF status = 'suspended'
       AND (reason IS NULL OR pg_catalog.btrim(reason) = '' OR pg_catalog.length(reason) > 1000) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: invalid suspension reason %s',
                                        COALESCE(pg_catalog.quote_literal(pg_catalog.left(reason, 64)), 'NULL')),
            HINT = 'say why the tenant is suspended, in 1 to 1000 characters (it is recorded)';
    END IF;
    SELECT t.status INTO v_old FROM @extschema@.tenants t WHERE t.id = tenant_status_write.tenant_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: unknown tenant %s', tenant_status_write.tenant_id),
            HINT = 'pass the id of an existing tenant';
    END IF;
    IF v_old = status THEN
        PERFORM @extschema@.log_decision(tenant_status_write.tenant_id, v_action, NULL, true, decided_by || ' unchanged');
        RETURN;
    END IF;
    UPDATE @extschema@.tenants t SET status = tenant_status_write.status WHERE t.id = tenant_status_write.tenant_id;
    INSERT INTO @extschema@.tenant_status_history (tenant_id, status, reason, user_id, db_role)
    VALUES (tenant_status_write.tenant_id, status, reason, @extschema@.current_user_id(), @extschema@.session_role());
    PERFORM @extschema@.log_decision(tenant_status_write.tenant_id, v_action, NULL, true, decided_by);
END
$fn$;

CREATE FUNCTION @extschema@.tenant_status_checked(tenant_id uuid, status text, reason text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_by text := @extschema@.lifecycle_authorize(
        CASE status WHEN 'suspended' THEN 'suspend_tenant' ELSE 'resume_tenant' END, tenant_id, NULL);
BEGIN
    PERFORM @extschema@.tenant_status_write(tenant_id, status, reason, v_by);
END
$fn$;

CREATE FUNCTION @extschema@.suspend_tenant(tenant_id uuid, reason text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- The operators' exception: a superuser (the caller of this SECURITY INVOKER function)
    -- without a context.
    IF @extschema@.context() = '{}'::jsonb
       AND COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER), false) THEN
        PERFORM @extschema@.tenant_status_write(tenant_id, 'suspended', reason, 'superuser');
    ELSE
        PERFORM @extschema@.tenant_status_checked(tenant_id, 'suspended', reason);
    END IF;
END
$fn$;

CREATE FUNCTION @extschema@.resume_tenant(tenant_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF @extschema@.context() = '{}'::jsonb
       AND COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER), false) THEN
        PERFORM @extschema@.tenant_status_write(tenant_id, 'active', NULL, 'superuser');
    ELSE
        PERFORM @extschema@.tenant_status_checked(tenant_id, 'active', NULL);
    END IF;
END
$fn$;

------------------------------------------------------------------------------------------------
-- transfer_ownership()
------------------------------------------------------------------------------------------------

-- The owner makes another member owner and becomes admin, in one step. The tenant row is locked
-- first, as set_member_role() and remove_member() do, so concurrent transfers and member
-- changes of one tenant run one after the other and each sees what the previous one committed.
CREATE FUNCTION @extschema@.transfer_ownership(new_owner uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_tenant uuid := @extschema@.current_tenant();  -- 28000 without a context
    v_user   uuid := @extschema@.current_user_id();
    v_mine   text;
BEGIN
    IF new_owner IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: new_owner must not be null',
            HINT = 'pass the id of a member of the current tenant';
    END IF;
    -- has_role() is false for API tokens and scoped JWTs: ownership is handed over in person.
    IF v_user IS NOT NULL AND @extschema@.has_role('owner') THEN
        PERFORM FROM @extschema@.tenants t WHERE t.id = v_tenant FOR UPDATE;
        SELECT m.role INTO v_mine FROM @extschema@.memberships m
         WHERE m.tenant_id = v_tenant AND m.user_id = v_user
           FOR UPDATE;
    END IF;
    -- Re-read under the lock: a concurrent transfer may have made the caller admin already. A
    -- platform admin who is not an owner has nothing to hand over.
    IF v_mine IS DISTINCT FROM 'owner' THEN
        PERFORM @extschema@.log_denial('transfer_ownership', 'role:owner', 'not_owner');
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('tenancy: only an owner of tenant %s can transfer its ownership', v_tenant),
            HINT = 'the owner calls it in a context set for their own user (not through an API token or a scoped JWT)';
    END IF;
    IF new_owner = v_user THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: user %s already owns tenant %s', new_owner, v_tenant),
            HINT = 'pass the id of another member';
    END IF;
    PERFORM FROM @extschema@.memberships m
     WHERE m.tenant_id = v_tenant AND m.user_id = new_owner
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: user %s is not a member of tenant %s', new_owner, v_tenant),
            HINT = 'ownership goes to an existing member: invite them first with tenancy.invite()';
    END IF;
    UPDATE @extschema@.memberships m SET role = 'owner'
     WHERE m.tenant_id = v_tenant AND m.user_id = new_owner;
    -- The last-owner rule, as set_member_role() applies it: the caller steps down only while
    -- another owner remains (here, at least the new one).
    PERFORM @extschema@.last_owner_check('transfer_ownership', v_user, 'owner');
    UPDATE @extschema@.memberships m SET role = 'admin'
     WHERE m.tenant_id = v_tenant AND m.user_id = v_user;
    PERFORM @extschema@.log_decision(v_tenant, 'transfer_ownership', 'role:owner', true, 'owner to ' || new_owner);
END
$fn$;

------------------------------------------------------------------------------------------------
-- The isolated tables, in the order their rows are deleted
------------------------------------------------------------------------------------------------

-- Every relation under an isolated table, with that table (its "unit") and the unit's tenant
-- column. A unit is an isolated table with no isolated ancestor: deleting from it, or reading
-- it, covers its partitions and inheritance children (which have no row-level security of
-- their own), so each row is deleted or exported once.
CREATE FUNCTION @extschema@.isolated_relations()
RETURNS TABLE (relid regclass, unit regclass, tenant_column name)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
WITH RECURSIVE
up (rel, anc) AS (
    SELECT r.relid::oid, r.relid::oid FROM @extschema@.isolation_registry r
    UNION
    SELECT up.rel, i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.anc
),
units AS (
    SELECT r.relid::oid AS unit, r.tenant_column
      FROM @extschema@.isolation_registry r
     WHERE NOT EXISTS (SELECT FROM up JOIN @extschema@.isolation_registry a ON a.relid::oid = up.anc
                        WHERE up.rel = r.relid::oid AND up.anc <> r.relid::oid)
),
down (rel, unit) AS (
    SELECT u.unit, u.unit FROM units u
    UNION
    SELECT i.inhrelid, down.unit FROM down JOIN pg_catalog.pg_inherits i ON i.inhparent = down.rel
)
SELECT d.rel::pg_catalog.regclass, d.unit::pg_catalog.regclass, u.tenant_column
  FROM down d JOIN units u ON u.unit = d.unit
$fn$;

-- The units in foreign-key order: a table that references another comes first (its rows go
-- before the rows they reference). Tables whose foreign keys form a cycle share a step and are
-- deleted in one statement (PostgreSQL checks the keys at its end). A unit's keys to itself, and
-- to and from its own partitions, need no order. Within a step and among steps that could go
-- in any order, tables are ordered by name.
CREATE FUNCTION @extschema@.delete_plan()
RETURNS TABLE (step int, table_name regclass, tenant_column name)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_units oid[];
    v_cols  name[];
    v_comp  oid[];          -- per unit: its component (the least unit of its cycle, or itself)
    v_src   oid[];          -- foreign keys between components: v_src[i] references v_dst[i]
    v_dst   oid[];
    v_done  oid[] := '{}';
    v_ready oid[];
    v_c     oid;
    v_step  int := 0;
BEGIN
    SELECT pg_catalog.array_agg(r.unit::oid ORDER BY r.unit::text),
           pg_catalog.array_agg(r.tenant_column ORDER BY r.unit::text)
      INTO v_units, v_cols
      FROM @extschema@.isolated_relations() r
     WHERE r.relid = r.unit;
    IF v_units IS NULL THEN
        RETURN;
    END IF;

    WITH RECURSIVE
    rel AS (SELECT r.relid::oid AS relid, r.unit::oid AS unit FROM @extschema@.isolated_relations() r),
    edge AS (
        SELECT DISTINCT s.unit AS src, d.unit AS dst
          FROM pg_catalog.pg_constraint k
          JOIN rel s ON s.relid = k.conrelid
          JOIN rel d ON d.relid = k.confrelid
         WHERE k.contype = 'f' AND s.unit <> d.unit
    ),
    reach (src, dst) AS (
        SELECT e.src, e.dst FROM edge e
        UNION
        SELECT r.src, e.dst FROM reach r JOIN edge e ON e.src = r.dst
    )
    SELECT pg_catalog.array_agg(
               LEAST(u.unit, (SELECT pg_catalog.min(a.dst) FROM reach a
                               WHERE a.src = u.unit
                                 AND EXISTS (SELECT FROM reach b WHERE b.src = a.dst AND b.dst = u.unit)))
               ORDER BY u.n)
      INTO v_comp
      FROM pg_catalog.unnest(v_units) WITH ORDINALITY AS u(unit, n);

    SELECT pg_catalog.array_agg(x.s), pg_catalog.array_agg(x.d)
      INTO v_src, v_dst
      FROM (SELECT DISTINCT cs.c AS s, cd.c AS d
              FROM pg_catalog.pg_constraint k
              JOIN @extschema@.isolated_relations() rs ON rs.relid::oid = k.conrelid
              JOIN @extschema@.isolated_relations() rd ON rd.relid::oid = k.confrelid
              JOIN ROWS FROM (pg_catalog.unnest(v_units), pg_catalog.unnest(v_comp)) AS cs(u, c) ON cs.u = rs.unit::oid
              JOIN ROWS FROM (pg_catalog.unnest(v_units), pg_catalog.unnest(v_comp)) AS cd(u, c) ON cd.u = rd.unit::oid
             WHERE k.contype = 'f' AND cs.c <> cd.c) x;

    -- Kahn's algorithm: a component is ready once no component left references it.
    LOOP
        v_ready := ARRAY(
            SELECT DISTINCT c.c FROM pg_catalog.unnest(v_comp) AS c(c)
             WHERE c.c <> ALL (v_done)
               AND NOT EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest(v_src), pg_catalog.unnest(v_dst)) AS e(s, d)
                                WHERE e.d = c.c AND e.s <> ALL (v_done)));
        EXIT WHEN pg_catalog.cardinality(v_ready) = 0;
        FOR v_c IN
            SELECT r.c FROM pg_catalog.unnest(v_ready) AS r(c)
             ORDER BY (SELECT pg_catalog.min(x.u::pg_catalog.regclass::text)
                         FROM ROWS FROM (pg_catalog.unnest(v_units), pg_catalog.unnest(v_comp)) AS x(u, c) WHERE x.c = r.c)
        LOOP
            v_step := v_step + 1;
            RETURN QUERY
                SELECT v_step, x.u::pg_catalog.regclass, x.col
                  FROM ROWS FROM (pg_catalog.unnest(v_units), pg_catalog.unnest(v_comp), pg_catalog.unnest(v_cols)) AS x(u, c, col)
                 WHERE x.c = v_c
                 ORDER BY x.u::pg_catalog.regclass::text;
            v_done := v_done || v_c;
        END LOOP;
    END LOOP;
END
$fn$;

------------------------------------------------------------------------------------------------
-- Deleting rows of a tenant (internal; runs as the extension's owner, past row-level security)
------------------------------------------------------------------------------------------------

-- Deletes the tenant's rows of `tables` (one table, or the tables of one cycle in one
-- statement) and returns how many per table. With `batch_size`, at most that many rows of a
-- single table. A row that cannot be deleted (a foreign key from a table that is not deleted
-- here, SET NULL on a NOT NULL column, ...) fails the whole call with 22023 naming the tables.
CREATE FUNCTION @extschema@.delete_tenant_rows(tenant uuid, tables regclass[], tenant_columns name[], batch_size bigint)
RETURNS bigint[]
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_sql    text;
    v_n      bigint;
    v_counts bigint[];
    v_msg    text;
    v_detail text;
    v_schema text;
    v_table  text;
BEGIN
    IF pg_catalog.cardinality(tables) = 1 THEN
        IF batch_size IS NULL THEN
            v_sql := pg_catalog.format('DELETE FROM %s AS t WHERE t.%I = $1', tables[1], tenant_columns[1]);
        ELSE
            v_sql := pg_catalog.format(
                'DELETE FROM %1$s AS t WHERE t.%2$I = $1 AND (t.tableoid, t.ctid) IN '
                '(SELECT s.tableoid, s.ctid FROM %1$s AS s WHERE s.%2$I = $1 LIMIT $2)',
                tables[1], tenant_columns[1]);
        END IF;
        EXECUTE v_sql USING tenant, batch_size;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        RETURN ARRAY[v_n];
    END IF;
    SELECT 'WITH ' || pg_catalog.string_agg(
               pg_catalog.format('d%s AS (DELETE FROM %s AS t WHERE t.%I = $1 RETURNING 1)', x.n, x.t, x.c),
               ', ' ORDER BY x.n)
           || ' SELECT ARRAY[' || pg_catalog.string_agg(
               pg_catalog.format('(SELECT pg_catalog.count(*) FROM d%s)', x.n), ', ' ORDER BY x.n)
           || ']::bigint[]'
      INTO v_sql
      FROM ROWS FROM (pg_catalog.unnest(tables), pg_catalog.unnest(tenant_columns)) WITH ORDINALITY AS x(t, c, n);
    EXECUTE v_sql INTO v_counts USING tenant;
    RETURN v_counts;
EXCEPTION
    WHEN foreign_key_violation OR restrict_violation OR not_null_violation OR check_violation THEN
        GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL,
                                v_schema = SCHEMA_NAME, v_table = TABLE_NAME;
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: tenant %s cannot be deleted: deleting its rows of %s fails on table %s',
                                        tenant, pg_catalog.array_to_string(tables, ', '),
                                        CASE WHEN v_table = '' THEN '?' ELSE pg_catalog.quote_ident(v_schema) || '.'
                                             || pg_catalog.quote_ident(v_table) END),
            DETAIL = v_msg || COALESCE(': ' || NULLIF(v_detail, ''), ''),
            HINT = 'make that table''s foreign key ON DELETE CASCADE, or isolate the table so that its rows are '
                   'deleted first; tenancy.audit() reports such keys (delete_tenant_blocked)';
END
$fn$;

-- Refuses to delete rows that rows of other tenants reference through a foreign key that does
-- not include the tenant column with an ON DELETE action: the action would delete or change
-- the other tenant's rows. (Without an action, the delete fails by itself.)
CREATE FUNCTION @extschema@.check_cross_tenant_references(tenant uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_k     record;
    v_found boolean;
BEGIN
    FOR v_k IN
        SELECT k.conname, k.conrelid::pg_catalog.regclass AS src, k.confrelid::pg_catalog.regclass AS ref,
               rs.tenant_column AS src_col, rd.tenant_column AS ref_col,
               (SELECT pg_catalog.string_agg(
                           pg_catalog.format('t.%I OPERATOR(%I.%s) r.%I', ra.attname, opn.nspname, op.oprname, sa.attname),
                           ' AND ' ORDER BY x.n)
                  FROM ROWS FROM (pg_catalog.unnest(k.conkey), pg_catalog.unnest(k.confkey),
                                  pg_catalog.unnest(k.conpfeqop)) WITH ORDINALITY AS x(s, r, op, n)
                  JOIN pg_catalog.pg_attribute sa ON sa.attrelid = k.conrelid AND sa.attnum = x.s
                  JOIN pg_catalog.pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = x.r
                  JOIN pg_catalog.pg_operator op ON op.oid = x.op
                  JOIN pg_catalog.pg_namespace opn ON opn.oid = op.oprnamespace) AS cond
          FROM pg_catalog.pg_constraint k
          JOIN @extschema@.isolated_relations() rs ON rs.relid::oid = k.conrelid
          JOIN @extschema@.isolated_relations() rd ON rd.relid::oid = k.confrelid
         WHERE k.contype = 'f' AND k.conparentid = 0 AND k.confdeltype IN ('c', 'n', 'd')
           AND NOT EXISTS (
               SELECT FROM ROWS FROM (pg_catalog.unnest(k.conkey), pg_catalog.unnest(k.confkey)) AS z(s, r)
                 JOIN pg_catalog.pg_attribute sa ON sa.attrelid = k.conrelid AND sa.attnum = z.s
                 JOIN pg_catalog.pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = z.r
                WHERE sa.attname = rs.tenant_column AND ra.attname = rd.tenant_column)
         ORDER BY k.conrelid::pg_catalog.regclass::text, k.conname
    LOOP
        EXECUTE pg_catalog.format(
            'SELECT EXISTS (SELECT FROM %s AS r JOIN %s AS t ON %s WHERE t.%I = $1 AND r.%I IS DISTINCT FROM $1)',
            v_k.src, v_k.ref, v_k.cond, v_k.ref_col, v_k.src_col)
          INTO v_found USING tenant;
        IF v_found THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = pg_catalog.format('tenancy: tenant %s cannot be deleted: rows of other tenants in %s reference its rows in %s',
                                            tenant, v_k.src, v_k.ref),
                DETAIL = pg_catalog.format('foreign key %I does not include the tenant column; its ON DELETE action would change the other tenants'' rows',
                                           v_k.conname),
                HINT = 'include the tenant column in the key (tenancy.audit(): foreign_key_without_tenant_column), '
                       'after moving or removing the references across tenants';
        END IF;
    END LOOP;
END
$fn$;

-- Deletes the tenant's rows of every isolated table, in the order of delete_plan(). Without
-- batch_size: all of them, one row per table in the result, then checks that none is left (a
-- trigger or rule that skipped rows fails the call). With batch_size: at most that many rows,
-- one row per table it deleted from. A step whose rows must go in one statement (tables in a
-- cycle of foreign keys, a table with a foreign key to itself, whose rows reference each other
-- in any order) is deleted whole, and only as the first step of a call: such a call deletes
-- that step alone, whatever its size.
CREATE FUNCTION @extschema@.purge_tenant_rows(tenant uuid, batch_size bigint)
RETURNS TABLE (table_name regclass, rows_deleted bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_left   bigint := batch_size;
    v_step   record;
    v_counts bigint[];
    v_found  boolean;
    v_whole  boolean;
    i        int;
BEGIN
    PERFORM @extschema@.check_cross_tenant_references(tenant);
    FOR v_step IN
        SELECT p.step,
               pg_catalog.array_agg(p.table_name ORDER BY p.table_name::text) AS tables,
               pg_catalog.array_agg(p.tenant_column ORDER BY p.table_name::text) AS cols
          FROM @extschema@.delete_plan() p
         GROUP BY p.step
         ORDER BY p.step
    LOOP
        EXIT WHEN v_left IS NOT NULL AND v_left <= 0;
        v_whole := pg_catalog.cardinality(v_step.tables) > 1 OR EXISTS (
            SELECT FROM pg_catalog.pg_constraint k
              JOIN @extschema@.isolated_relations() s ON s.relid::oid = k.conrelid
              JOIN @extschema@.isolated_relations() d ON d.relid::oid = k.confrelid
             WHERE k.contype = 'f' AND s.unit = v_step.tables[1] AND d.unit = v_step.tables[1]);
        EXIT WHEN v_whole AND v_left < batch_size;
        v_counts := @extschema@.delete_tenant_rows(tenant, v_step.tables, v_step.cols,
                                                   CASE WHEN NOT v_whole THEN v_left END);
        FOR i IN 1 .. pg_catalog.cardinality(v_step.tables) LOOP
            IF batch_size IS NULL OR v_counts[i] > 0 THEN
                table_name := v_step.tables[i];
                rows_deleted := v_counts[i];
                RETURN NEXT;
            END IF;
            v_left := v_left - v_counts[i];
        END LOOP;
    END LOOP;
    IF batch_size IS NULL THEN
        FOR v_step IN SELECT p.table_name, p.tenant_column FROM @extschema@.delete_plan() p ORDER BY p.step, p.table_name::text LOOP
            EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %s AS t WHERE t.%I = $1)', v_step.table_name, v_step.tenant_column)
              INTO v_found USING tenant;
            IF v_found THEN
                RAISE EXCEPTION USING ERRCODE = '22023',
                    MESSAGE = pg_catalog.format('tenancy: tenant %s cannot be deleted: rows of it remain in %s', tenant, v_step.table_name),
                    HINT = 'a trigger or rule on that table skipped the delete; tenancy.audit() reports rules (delete_tenant_blocked)';
            END IF;
        END LOOP;
    END IF;
END
$fn$;

------------------------------------------------------------------------------------------------
-- delete_tenant()
------------------------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.delete_tenant_write(tenant_id uuid, confirm_slug text, decided_by text)
RETURNS TABLE (table_name regclass, rows_deleted bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_tenant  uuid := delete_tenant_write.tenant_id;
    v_slug    text;
    v_deleted boolean := false;
    v_summary jsonb := '{}';
    v_row     record;
    v_n       bigint;
BEGIN
    -- Row-level security is FORCEd on isolated tables: only a role that bypasses it sees every
    -- tenant's rows. The extension is created by a superuser, who owns this function.
    IF NOT COALESCE((SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER), false) THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('tenancy: delete_tenant() runs as role %I, which does not bypass row-level security', CURRENT_USER),
            HINT = 'pg_tenancy''s functions must be owned by the superuser that created the extension';
    END IF;
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: tenant_id must not be null',
            HINT = 'pass the id of the tenant to delete';
    END IF;
    SELECT t.slug INTO v_slug FROM @extschema@.tenants t WHERE t.id = v_tenant FOR UPDATE;
    IF NOT FOUND THEN
        -- Deleted before: deleting again removes rows that arrived since (a transaction that
        -- still had the tenant's context when it was deleted).
        SELECT d.slug INTO v_slug FROM @extschema@.deleted_tenants d WHERE d.id = v_tenant FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = pg_catalog.format('tenancy: unknown tenant %s', v_tenant),
                HINT = 'pass the id of an existing tenant';
        END IF;
        v_deleted := true;
    END IF;
    IF confirm_slug IS DISTINCT FROM v_slug THEN
        PERFORM @extschema@.log_decision(v_tenant, 'delete_tenant', 'tenant:delete', false, 'slug_mismatch');
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: slug %s does not confirm the deletion of tenant %s',
                                        COALESCE(pg_catalog.quote_literal(pg_catalog.left(confirm_slug, 64)), 'NULL'), v_tenant),
            HINT = 'repeat the tenant''s slug exactly, as a confirmation';
    END IF;

    FOR v_row IN SELECT * FROM @extschema@.purge_tenant_rows(v_tenant, NULL) LOOP
        table_name := v_row.table_name;
        rows_deleted := v_row.rows_deleted;
        v_summary := v_summary || pg_catalog.jsonb_build_object(v_row.table_name::text, v_row.rows_deleted);
        RETURN NEXT;
    END LOOP;
    -- pg_tenancy's own rows of the tenant; auth_log and tenant_status_history keep theirs.
    FOR v_row IN
        SELECT x.t, x.c FROM (VALUES (1, '@extschema@.api_tokens'::pg_catalog.regclass, 'tenant_id'::name),
                                     (2, '@extschema@.invitations'::pg_catalog.regclass, 'tenant_id'::name),
                                     (3, '@extschema@.memberships'::pg_catalog.regclass, 'tenant_id'::name),
                                     (4, '@extschema@.tenants'::pg_catalog.regclass, 'id'::name)) AS x(n, t, c)
         ORDER BY x.n
    LOOP
        v_n := (@extschema@.delete_tenant_rows(v_tenant, ARRAY[v_row.t], ARRAY[v_row.c], NULL))[1];
        table_name := v_row.t;
        rows_deleted := v_n;
        v_summary := v_summary || pg_catalog.jsonb_build_object(v_row.t::text, v_n);
        RETURN NEXT;
    END LOOP;

    IF NOT v_deleted THEN
        INSERT INTO @extschema@.deleted_tenants (id, slug, deleted_by, db_role, rows_deleted)
        VALUES (v_tenant, v_slug, @extschema@.current_user_id(), @extschema@.session_role(), v_summary);
        INSERT INTO @extschema@.tenant_status_history (tenant_id, status, reason, user_id, db_role)
        VALUES (v_tenant, 'deleted', NULL, @extschema@.current_user_id(), @extschema@.session_role());
    END IF;
    PERFORM @extschema@.log_decision(v_tenant, 'delete_tenant', 'tenant:delete', true,
                                     decided_by || CASE WHEN v_deleted THEN ' again' ELSE '' END);
END
$fn$;

CREATE FUNCTION @extschema@.delete_tenant_checked(tenant_id uuid, confirm_slug text)
RETURNS TABLE (table_name regclass, rows_deleted bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_by text := @extschema@.lifecycle_authorize('delete_tenant', delete_tenant_checked.tenant_id, 'tenant:delete');
BEGIN
    RETURN QUERY SELECT * FROM @extschema@.delete_tenant_write(delete_tenant_checked.tenant_id, confirm_slug, v_by);
END
$fn$;

CREATE FUNCTION @extschema@.delete_tenant(tenant_id uuid, confirm_slug text)
RETURNS TABLE (table_name regclass, rows_deleted bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- The operators' exception: a superuser (the caller of this SECURITY INVOKER function)
    -- without a context.
    IF @extschema@.context() = '{}'::jsonb
       AND COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER), false) THEN
        RETURN QUERY SELECT * FROM @extschema@.delete_tenant_write(delete_tenant.tenant_id, confirm_slug, 'superuser');
    ELSE
        RETURN QUERY SELECT * FROM @extschema@.delete_tenant_checked(delete_tenant.tenant_id, confirm_slug);
    END IF;
END
$fn$;

------------------------------------------------------------------------------------------------
-- purge_tenant(): delete_tenant() in batches, for a tenant too large for one transaction
------------------------------------------------------------------------------------------------

-- The tenant must be suspended (no new rows arrive) or already deleted. Call it in a transaction
-- of its own until it returns no row, then call delete_tenant() for the rest and the tombstone.
CREATE FUNCTION @extschema@.purge_tenant_write(tenant_id uuid, confirm_slug text, batch_size bigint, decided_by text)
RETURNS TABLE (table_name regclass, rows_deleted bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_tenant uuid := purge_tenant_write.tenant_id;
    v_slug   text;
    v_status text;
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: tenant_id must not be null',
            HINT = 'pass the id of the tenant to purge';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: invalid batch_size %s', COALESCE(batch_size::text, 'NULL')),
            HINT = 'pass the most rows to delete in this call, for example 10000';
    END IF;
    IF NOT COALESCE((SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER), false) THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('tenancy: purge_tenant() runs as role %I, which does not bypass row-level security', CURRENT_USER),
            HINT = 'pg_tenancy''s functions must be owned by the superuser that created the extension';
    END IF;
    SELECT t.slug, t.status INTO v_slug, v_status FROM @extschema@.tenants t WHERE t.id = v_tenant FOR SHARE;
    IF NOT FOUND THEN
        SELECT d.slug, 'deleted' INTO v_slug, v_status FROM @extschema@.deleted_tenants d WHERE d.id = v_tenant;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = pg_catalog.format('tenancy: unknown tenant %s', v_tenant),
                HINT = 'pass the id of an existing tenant';
        END IF;
    END IF;
    IF confirm_slug IS DISTINCT FROM v_slug THEN
        PERFORM @extschema@.log_decision(v_tenant, 'purge_tenant', 'tenant:delete', false, 'slug_mismatch');
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: slug %s does not confirm the deletion of tenant %s',
                                        COALESCE(pg_catalog.quote_literal(pg_catalog.left(confirm_slug, 64)), 'NULL'), v_tenant),
            HINT = 'repeat the tenant''s slug exactly, as a confirmation';
    END IF;
    IF v_status = 'active' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: tenant %s is active: suspend it before purging it in batches', v_tenant),
            HINT = 'tenancy.suspend_tenant(tenant_id, reason) first, so that no new rows arrive between batches';
    END IF;
    RETURN QUERY SELECT * FROM @extschema@.purge_tenant_rows(v_tenant, batch_size);
    PERFORM @extschema@.log_decision(v_tenant, 'purge_tenant', 'tenant:delete', true, decided_by);
END
$fn$;

CREATE FUNCTION @extschema@.purge_tenant_checked(tenant_id uuid, confirm_slug text, batch_size bigint)
RETURNS TABLE (table_name regclass, rows_deleted bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_by text := @extschema@.lifecycle_authorize('purge_tenant', purge_tenant_checked.tenant_id, 'tenant:delete');
BEGIN
    RETURN QUERY SELECT * FROM @extschema@.purge_tenant_write(purge_tenant_checked.tenant_id, confirm_slug, batch_size, v_by);
END
$fn$;

CREATE FUNCTION @extschema@.purge_tenant(tenant_id uuid, confirm_slug text, batch_size bigint DEFAULT 10000)
RETURNS TABLE (table_name regclass, rows_deleted bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- The operators' exception: a superuser (the caller of this SECURITY INVOKER function)
    -- without a context.
    IF @extschema@.context() = '{}'::jsonb
       AND COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = CURRENT_USER), false) THEN
        RETURN QUERY SELECT * FROM @extschema@.purge_tenant_write(purge_tenant.tenant_id, confirm_slug, batch_size, 'superuser');
    ELSE
        RETURN QUERY SELECT * FROM @extschema@.purge_tenant_checked(purge_tenant.tenant_id, confirm_slug, batch_size);
    END IF;
END
$fn$;

------------------------------------------------------------------------------------------------
-- export_tenant()
------------------------------------------------------------------------------------------------

-- Checks tenant:export (logged), logs the export, and lists the isolated tables in the reverse
-- of the delete order (a referenced table before the tables that reference it, as a restore
-- needs them).
CREATE FUNCTION @extschema@.export_plan()
RETURNS TABLE (table_name regclass, tenant_column name, read_permission text)
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM @extschema@.require_permission('tenant:export');
    PERFORM @extschema@.log_decision(@extschema@.current_tenant(), 'export_tenant', 'tenant:export', true, 'permission');
    RETURN QUERY
        SELECT p.table_name, p.tenant_column, r.read_permission
          FROM @extschema@.delete_plan() p
          JOIN @extschema@.isolation_registry r ON r.relid = p.table_name
         ORDER BY p.step DESC, p.table_name::text;
END
$fn$;

-- SECURITY INVOKER: every row is read with the caller's rights, through the isolation policy
-- (and filtered by the context's tenant explicitly as well).
CREATE FUNCTION @extschema@.export_tenant()
RETURNS TABLE (table_name regclass, "row" jsonb)
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_tenant uuid;
    v_t      record;
BEGIN
    PERFORM @extschema@.require_permission('tenant:export');  -- 28000 / 42501, logged
    v_tenant := @extschema@.current_tenant();
    FOR v_t IN SELECT * FROM @extschema@.export_plan() LOOP
        IF NOT (pg_catalog.has_schema_privilege(
                    (SELECT c.relnamespace FROM pg_catalog.pg_class c WHERE c.oid = v_t.table_name), 'USAGE')
                AND pg_catalog.has_table_privilege(v_t.table_name, 'SELECT')) THEN
            RAISE EXCEPTION USING ERRCODE = '42501',
                MESSAGE = pg_catalog.format('tenancy: cannot export table %s: role %I may not read it', v_t.table_name, CURRENT_USER),
                HINT = 'an export is complete or fails: the exporting role needs USAGE on the table''s schema and SELECT '
                       'on the table (isolate() grants SELECT to tenancy_client)';
        END IF;
        IF v_t.read_permission IS NOT NULL THEN
            BEGIN
                PERFORM @extschema@.require_permission(v_t.read_permission);
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE EXCEPTION USING ERRCODE = '42501',
                    MESSAGE = pg_catalog.format('tenancy: cannot export table %s: permission %s denied', v_t.table_name,
                                                pg_catalog.quote_literal(v_t.read_permission)),
                    HINT = 'an export is complete or fails: the exporting role needs every table''s read permission';
            END;
        END IF;
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT $2, pg_catalog.to_jsonb(t) FROM %s AS t WHERE t.%I = $1', v_t.table_name, v_t.tenant_column)
            USING v_tenant, v_t.table_name;
    END LOOP;
END
$fn$;

------------------------------------------------------------------------------------------------
-- Linter check delete_tenant_blocked. tenancy.audit() must include these findings (it is being
-- split into one function per check; wire this one in with the others).
------------------------------------------------------------------------------------------------

-- What makes delete_tenant() fail whatever the tenant:
--   * a foreign key from a table that delete_tenant() does not delete (not isolated, not
--     pg_tenancy's) to an isolated table (or a partition of one) or to tenants, memberships,
--     invitations, api_tokens, with ON DELETE NO ACTION or RESTRICT (it fails as soon as a
--     row references the tenant's rows), or SET NULL / SET DEFAULT on a NOT NULL column without
--     a default;
--   * a DO INSTEAD rule on DELETE on an isolated table (its rows are not deleted).
-- Foreign keys between isolated tables are handled by the delete order; those that leave out
-- the tenant column are reported as foreign_key_without_tenant_column.
CREATE FUNCTION @extschema@.lint_delete_blocked()
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
WITH
rel AS (SELECT r.relid::oid AS relid, r.unit::oid AS unit FROM @extschema@.isolated_relations() r),
target AS (
    SELECT rel.relid FROM rel
    UNION ALL
    SELECT c.oid FROM pg_catalog.pg_class c
     WHERE c.oid IN ('@extschema@.tenants'::pg_catalog.regclass, '@extschema@.memberships'::pg_catalog.regclass,
                     '@extschema@.invitations'::pg_catalog.regclass, '@extschema@.api_tokens'::pg_catalog.regclass)
),
fk AS (
    SELECT k.conname, k.conrelid::pg_catalog.regclass AS src, k.confrelid::pg_catalog.regclass AS ref,
           k.confdeltype,
           CASE k.confdeltype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT'
                              WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END AS action,
           (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY x.n)
              FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY AS x(att, n)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.att) AS src_cols,
           (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY x.n)
              FROM pg_catalog.unnest(k.confkey) WITH ORDINALITY AS x(att, n)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.att) AS ref_cols,
           CASE WHEN k.confmatchtype = 'f' THEN ' MATCH FULL' ELSE '' END
           || CASE k.confupdtype WHEN 'r' THEN ' ON UPDATE RESTRICT' WHEN 'c' THEN ' ON UPDATE CASCADE'
                                 WHEN 'n' THEN ' ON UPDATE SET NULL' WHEN 'd' THEN ' ON UPDATE SET DEFAULT'
                                 ELSE '' END AS head,
           CASE WHEN k.condeferrable THEN ' DEFERRABLE' ELSE '' END
           || CASE WHEN k.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END
           || CASE WHEN NOT k.convalidated THEN ' NOT VALID' ELSE '' END AS tail,
           -- SET NULL / SET DEFAULT fail on a NOT NULL column (SET DEFAULT: one without a default).
           EXISTS (SELECT FROM pg_catalog.unnest(CASE WHEN pg_catalog.cardinality(k.confdelsetcols) > 0
                                                      THEN k.confdelsetcols ELSE k.conkey END) AS s(att)
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = s.att
                    WHERE a.attnotnull
                      AND (k.confdeltype = 'n'
                           OR NOT EXISTS (SELECT FROM pg_catalog.pg_attrdef d
                                           WHERE d.adrelid = k.conrelid AND d.adnum = s.att))) AS sets_not_null
      FROM pg_catalog.pg_constraint k
     WHERE k.contype = 'f' AND k.conparentid = 0
       AND k.confrelid IN (SELECT t.relid FROM target t)
       AND k.conrelid NOT IN (SELECT t.relid FROM target t)
)
SELECT 'medium'::text, 'delete_tenant_blocked'::text, fk.src::text,
       pg_catalog.format('foreign key %I from %s to %s is ON DELETE %s: tenancy.delete_tenant() fails for every '
                         'tenant whose rows of %s are referenced from %s, which it does not delete',
                         fk.conname, fk.src, fk.ref, fk.action, fk.ref, fk.src)
       || CASE WHEN fk.confdeltype IN ('n', 'd') THEN ' (a NOT NULL column cannot be set to ' ||
                    CASE fk.confdeltype WHEN 'n' THEN 'NULL)' ELSE 'its default)' END
               ELSE '' END,
       pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I FOREIGN KEY (%s) REFERENCES %s (%s)%s '
                         'ON DELETE CASCADE%s;',
                         fk.src, fk.conname, fk.conname, fk.src_cols, fk.ref, fk.ref_cols, fk.head, fk.tail)
  FROM fk
 WHERE fk.confdeltype IN ('a', 'r') OR (fk.confdeltype IN ('n', 'd') AND fk.sets_not_null)
UNION ALL
SELECT 'medium', 'delete_tenant_blocked', w.ev_class::pg_catalog.regclass::text,
       pg_catalog.format('rule %I on %s replaces DELETE (DO INSTEAD): tenancy.delete_tenant() cannot delete its rows and fails',
                         w.rulename, w.ev_class::pg_catalog.regclass),
       pg_catalog.format('DROP RULE %I ON %s;', w.rulename, w.ev_class::pg_catalog.regclass)
  FROM pg_catalog.pg_rewrite w
 WHERE w.ev_type = '4' AND w.is_instead AND w.ev_class IN (SELECT rel.unit FROM rel)
ORDER BY 3, 4
$fn$;

------------------------------------------------------------------------------------------------
-- What finalize.sql does for these objects in a fresh install: row-level security, grants, and
-- no EXECUTE for PUBLIC on the new functions.
------------------------------------------------------------------------------------------------

ALTER TABLE @extschema@.tenant_status_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.deleted_tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenancy_own_tenant ON @extschema@.tenant_status_history
    FOR SELECT TO tenancy_client
    USING (tenant_id = (SELECT @extschema@.current_tenant()));
REVOKE ALL ON @extschema@.tenant_status_history, @extschema@.deleted_tenants FROM PUBLIC;
GRANT SELECT ON @extschema@.tenant_status_history TO tenancy_client;

REVOKE ALL ON FUNCTION
    @extschema@.refuse_deleted_tenant_id(),
    @extschema@.acting_platform_admin(),
    @extschema@.session_role(),
    @extschema@.lifecycle_authorize(text, uuid, text),
    @extschema@.user_tenant_rows(uuid),
    @extschema@.user_tenants_any(uuid),
    @extschema@.user_tenants_own(uuid),
    @extschema@.user_tenants(uuid),
    @extschema@.tenant_status_write(uuid, text, text, text),
    @extschema@.tenant_status_checked(uuid, text, text),
    @extschema@.suspend_tenant(uuid, text),
    @extschema@.resume_tenant(uuid),
    @extschema@.transfer_ownership(uuid),
    @extschema@.isolated_relations(),
    @extschema@.delete_plan(),
    @extschema@.delete_tenant_rows(uuid, regclass[], name[], bigint),
    @extschema@.check_cross_tenant_references(uuid),
    @extschema@.purge_tenant_rows(uuid, bigint),
    @extschema@.delete_tenant_write(uuid, text, text),
    @extschema@.delete_tenant_checked(uuid, text),
    @extschema@.delete_tenant(uuid, text),
    @extschema@.purge_tenant_write(uuid, text, bigint, text),
    @extschema@.purge_tenant_checked(uuid, text, bigint),
    @extschema@.purge_tenant(uuid, text, bigint),
    @extschema@.export_plan(),
    @extschema@.export_tenant(),
    @extschema@.lint_delete_blocked()
   FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    @extschema@.user_tenants(uuid),
    @extschema@.user_tenants_own(uuid),
    @extschema@.suspend_tenant(uuid, text),
    @extschema@.resume_tenant(uuid),
    @extschema@.tenant_status_checked(uuid, text, text),
    @extschema@.transfer_ownership(uuid),
    @extschema@.delete_tenant(uuid, text),
    @extschema@.delete_tenant_checked(uuid, text),
    @extschema@.purge_tenant(uuid, text, bigint),
    @extschema@.purge_tenant_checked(uuid, text, bigint),
    @extschema@.export_tenant(),
    @extschema@.export_plan()
   TO tenancy_client;
GRANT EXECUTE ON FUNCTION @extschema@.user_tenants_any(uuid) TO tenancy_app;

-- Tenant defaults on Citus tables, and isolate()/unisolate() in their 0.3.0 form: inline
-- policies (no subquery: cheaper, and what Citus accepts) whose WITH CHECK records refusals,
-- permissions ANDed into one PERMISSIVE policy per command.
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
REVOKE ALL ON FUNCTION @extschema@.set_tenant_default(regclass, name, text) FROM PUBLIC;
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
CREATE OR REPLACE FUNCTION @extschema@.unisolate(tbl regclass)
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

-- The linter reports RESTRICTIVE policies on Citus tables (Citus drops AS RESTRICTIVE on shards).
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
REVOKE ALL ON FUNCTION @extschema@.lint_restrictive_policy_on_citus_table(@extschema@.linter_scope) FROM PUBLIC;

-- set_tenant(uuid): the common call, without a default for the parser to fill in. The two-argument
-- form loses its DEFAULT (PostgreSQL could not tell the calls apart otherwise), which only DROP and
-- CREATE can do: the grants on it are kept, and given to the new overload too.
DO $set_tenant$
DECLARE
    v_acl     aclitem[];
    v_grantee text;
BEGIN
    SELECT p.proacl INTO v_acl FROM pg_catalog.pg_proc p
     WHERE p.oid = '@extschema@.set_tenant(uuid, uuid)'::pg_catalog.regprocedure;
    DROP FUNCTION @extschema@.set_tenant(uuid, uuid);
    CREATE FUNCTION @extschema@."set_tenant"("tenant_id" uuid, "user_id" uuid) RETURNS void
    VOLATILE PARALLEL UNSAFE
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'set_tenant_wrapper';
    CREATE FUNCTION @extschema@."set_tenant"("tenant_id" uuid) RETURNS void
    VOLATILE PARALLEL UNSAFE
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'set_tenant_only_wrapper';
    REVOKE ALL ON FUNCTION @extschema@.set_tenant(uuid, uuid), @extschema@.set_tenant(uuid) FROM PUBLIC;
    FOR v_grantee IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END
          FROM pg_catalog.aclexplode(v_acl) a
          JOIN pg_catalog.pg_proc p ON p.oid = '@extschema@.set_tenant(uuid, uuid)'::pg_catalog.regprocedure
         WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
    LOOP
        EXECUTE pg_catalog.format(
            'GRANT EXECUTE ON FUNCTION @extschema@.set_tenant(uuid, uuid), @extschema@.set_tenant(uuid) TO %s',
            v_grantee);
    END LOOP;
END
$set_tenant$;

-- Every registered table is isolated again in the new shape (last: everything it calls exists).
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
