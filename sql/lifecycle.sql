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
