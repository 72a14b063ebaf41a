-- Tenants, users and memberships: the functions that write them, and the members view.
--
-- Every function here is SECURITY DEFINER (application roles cannot write these tables
-- directly), pins search_path and qualifies every name. Checks on the caller are made against
-- the tenant context (tenancy.require_permission, tenancy.has_role), never against the
-- database role, which is the definer's inside these functions.

-- An email, trimmed, or 22023. Emails are compared case-insensitively for uniqueness.
CREATE FUNCTION @extschema@.check_email(email text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_email text := pg_catalog.btrim(email);
BEGIN
    IF email IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: email must not be null',
            HINT = 'pass the user''s email address';
    END IF;
    IF pg_catalog.length(v_email) NOT BETWEEN 3 AND 254
       OR v_email !~ '^[^@[:space:][:cntrl:]]+@[^@.[:space:][:cntrl:]]+(\.[^@.[:space:][:cntrl:]]+)+$' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: invalid email %s', pg_catalog.quote_literal(pg_catalog.left(v_email, 64))),
            HINT = 'an email is local@domain.tld, at most 254 characters, without spaces';
    END IF;
    RETURN v_email;
END
$fn$;

CREATE FUNCTION @extschema@.create_user(email text, id uuid DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_email    text := @extschema@.check_email(create_user.email);
    v_existing uuid;
    v_id       uuid;
BEGIN

    SELECT u.id INTO v_existing
      FROM @extschema@.users u
     WHERE pg_catalog.lower(u.email) = pg_catalog.lower(v_email);
    IF NOT FOUND THEN
        INSERT INTO @extschema@.users AS u (id, email)
        VALUES (COALESCE(create_user.id, pg_catalog.gen_random_uuid()), v_email)
        ON CONFLICT DO NOTHING
        RETURNING u.id INTO v_id;
        IF v_id IS NOT NULL THEN
            RETURN v_id;
        END IF;
        -- Lost a race for the same email, or the id belongs to someone else.
        SELECT u.id INTO v_existing
          FROM @extschema@.users u
         WHERE pg_catalog.lower(u.email) = pg_catalog.lower(v_email);
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = pg_catalog.format('tenancy: user id %s cannot be used for %s', create_user.id,
                                            pg_catalog.quote_literal(v_email)),
                HINT = 'omit the id to let tenancy.create_user() choose one';
        END IF;
    END IF;
    IF create_user.id IS NOT NULL AND create_user.id <> v_existing THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: user id %s cannot be used for %s', create_user.id,
                                        pg_catalog.quote_literal(v_email)),
            HINT = 'omit the id to let tenancy.create_user() choose one';
    END IF;
    RETURN v_existing;
END
$fn$;

CREATE FUNCTION @extschema@.create_tenant(name text, owner_id uuid, slug text DEFAULT NULL)
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

-- Shared checks of set_member_role() and remove_member(): the caller holds members:write and
-- outranks (or equals) the member; the member exists. Returns the member's current role, with
-- the tenant row locked so that concurrent changes cannot remove the last owner.
CREATE FUNCTION @extschema@.member_change_check(action text, member uuid)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_tenant uuid := @extschema@.current_tenant();
    v_role   text;
BEGIN
    IF member IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: user_id must not be null',
            HINT = 'pass the id of a member of the current tenant';
    END IF;
    PERFORM @extschema@.require_permission('members:write');
    PERFORM FROM @extschema@.tenants t WHERE t.id = v_tenant FOR UPDATE;
    SELECT m.role INTO v_role
      FROM @extschema@.memberships m
     WHERE m.tenant_id = v_tenant AND m.user_id = member
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: user %s is not a member of tenant %s', member, v_tenant),
            HINT = 'list members with SELECT * FROM tenancy.members; add people with tenancy.invite()';
    END IF;
    IF NOT @extschema@.has_role(v_role) THEN
        PERFORM @extschema@.log_denial(action, 'members:write', 'member_outranks_caller');
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('tenancy: member %s has role %s, which outranks yours', member, pg_catalog.quote_literal(v_role)),
            HINT = 'only a member of equal or higher rank can change or remove this member';
    END IF;
    RETURN v_role;
END
$fn$;

CREATE FUNCTION @extschema@.last_owner_check(action text, member uuid, current_role_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF current_role_name = 'owner' AND (
        SELECT pg_catalog.count(*) FROM @extschema@.memberships m
         WHERE m.tenant_id = @extschema@.current_tenant() AND m.role = 'owner') <= 1 THEN
        PERFORM @extschema@.log_denial(action, 'members:write', 'last_owner');
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('tenancy: user %s is the last owner of tenant %s', member, @extschema@.current_tenant()),
            HINT = 'make another member owner first';
    END IF;
END
$fn$;

CREATE FUNCTION @extschema@.set_member_role(user_id uuid, role text)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_current text;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: role must not be null',
            HINT = 'pass a role name such as ''staff''';
    END IF;
    -- has_role() raises 22023 for an unknown role before anything else is checked.
    PERFORM @extschema@.has_role(role);
    v_current := @extschema@.member_change_check('set_member_role', user_id);
    IF NOT @extschema@.has_role(role) THEN
        PERFORM @extschema@.log_denial('set_member_role', 'members:write', 'role_above_caller');
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('tenancy: cannot grant role %s, which outranks yours', pg_catalog.quote_literal(role)),
            HINT = 'grant a role of your own rank or lower';
    END IF;
    IF v_current = role THEN
        RETURN;
    END IF;
    PERFORM @extschema@.last_owner_check('set_member_role', user_id, v_current);
    UPDATE @extschema@.memberships m SET role = set_member_role.role
     WHERE m.tenant_id = @extschema@.current_tenant() AND m.user_id = set_member_role.user_id;
END
$fn$;

CREATE FUNCTION @extschema@.remove_member(user_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_current text;
BEGIN
    v_current := @extschema@.member_change_check('remove_member', user_id);
    PERFORM @extschema@.last_owner_check('remove_member', user_id, v_current);
    DELETE FROM @extschema@.memberships m
     WHERE m.tenant_id = @extschema@.current_tenant() AND m.user_id = remove_member.user_id;
END
$fn$;

-- The current tenant's members with their emails. Application roles cannot read
-- tenancy.users, so the rows come from a SECURITY DEFINER function that filters by the context:
-- a function is never inlined, so no condition of the caller's query (and no EXPLAIN ANALYZE
-- row count) ever reaches the scan of users. Without a context it raises 28000 (current_tenant()
-- is evaluated first); an actor without members:read gets no rows.
CREATE FUNCTION @extschema@.member_rows()
RETURNS TABLE (user_id uuid, email text, role text)
LANGUAGE sql STABLE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT m.user_id, u.email, m.role
  FROM @extschema@.memberships m
  JOIN @extschema@.users u ON u.id = m.user_id
 WHERE (SELECT @extschema@.current_tenant() IS NOT NULL
           AND @extschema@.has_permission('members:read'))
   AND m.tenant_id = (SELECT @extschema@.current_tenant())
$fn$;

CREATE VIEW @extschema@.members AS
SELECT r.user_id, r.email, r.role FROM @extschema@.member_rows() AS r;

-- The permissions the context's actor may use now (after a token's or a JWT's scopes), for
-- user interfaces that show only what a user can do. Empty without an actor. New in 0.2.0.
CREATE FUNCTION @extschema@.current_permissions()
RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT p.name
  FROM @extschema@.permissions p
 WHERE @extschema@.has_permission(p.name)
 ORDER BY p.name
$fn$;
