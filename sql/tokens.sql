-- Invitations and API tokens: the table logic. Signing, verification and hashing of tokens is
-- done in Rust (src/tokens/); these SECURITY DEFINER functions call its internal helpers,
-- which application roles cannot execute. Every token failure is the same 28000 and message;
-- the reason goes to the log only.

CREATE FUNCTION @extschema@.invite(email text, role text, ttl interval DEFAULT '48 hours')
RETURNS TABLE (invitation_id uuid, token text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_tenant uuid := @extschema@.current_tenant();
    v_email  text := @extschema@.check_email(email);
    v_id     uuid := pg_catalog.gen_random_uuid();
    v_issued timestamptz := pg_catalog.clock_timestamp();
    v_token  text;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: role must not be null',
            HINT = 'pass a role name such as ''staff''';
    END IF;
    PERFORM @extschema@.has_role(role);  -- 22023 for an unknown role
    IF ttl IS NULL OR ttl < interval '1 minute' OR ttl > interval '30 days' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: invalid ttl %s', COALESCE(ttl::text, 'NULL')),
            HINT = 'an invitation lives between 1 minute and 30 days, for example interval ''48 hours''';
    END IF;
    PERFORM @extschema@.require_permission('members:write');
    IF NOT @extschema@.has_role(role) THEN
        PERFORM @extschema@.log_denial('invite', 'members:write', 'role_above_caller');
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('tenancy: cannot invite as %s, which outranks your role', pg_catalog.quote_literal(role)),
            HINT = 'invite with a role of your own rank or lower';
    END IF;

    v_token := @extschema@.sign_invitation(v_id, v_issued);
    INSERT INTO @extschema@.invitations
           (id, tenant_id, email, role, invited_by, token_hash, issued_at, expires_at)
    VALUES (v_id, v_tenant, v_email, role, @extschema@.actor_id(),
            pg_catalog.sha256(pg_catalog.convert_to(v_token, 'UTF8')), v_issued, v_issued + ttl);
    invitation_id := v_id;
    token := v_token;
    RETURN NEXT;
END
$fn$;

-- accept_invitation() is a SQL wrapper: PL/pgSQL cannot compile an input and an output
-- parameter of the same name (user_id), which the contract's signature has.
CREATE FUNCTION @extschema@.accept_invitation_as(token text, accepting_user uuid)
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

CREATE FUNCTION @extschema@.accept_invitation(token text, user_id uuid DEFAULT NULL)
RETURNS TABLE (tenant_id uuid, user_id uuid, role text)
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT a.out_tenant_id, a.out_user_id, a.out_role FROM @extschema@.accept_invitation_as($1, $2) AS a
$fn$;

-- The pending invitation of the current tenant, locked; 22023 when there is none. Checks the
-- caller may manage it.
CREATE FUNCTION @extschema@.pending_invitation(action text, invitation uuid)
RETURNS @extschema@.invitations
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_inv @extschema@.invitations%ROWTYPE;
BEGIN
    IF invitation IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: invitation_id must not be null',
            HINT = 'pass the id invite() returned';
    END IF;
    PERFORM @extschema@.require_permission('members:write');
    SELECT * INTO v_inv FROM @extschema@.invitations i
     WHERE i.id = invitation AND i.tenant_id = @extschema@.current_tenant()
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: unknown invitation %s', invitation),
            HINT = 'SELECT id, email, role FROM tenancy.invitations lists this tenant''s invitations';
    END IF;
    IF v_inv.accepted_at IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: invitation %s was already accepted', invitation),
            HINT = 'change the member''s role with tenancy.set_member_role() instead';
    END IF;
    IF NOT @extschema@.has_role(v_inv.role) THEN
        PERFORM @extschema@.log_denial(action, 'members:write', 'role_above_caller');
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('tenancy: invitation %s is for role %s, which outranks yours', invitation, pg_catalog.quote_literal(v_inv.role)),
            HINT = 'ask a member of higher rank';
    END IF;
    RETURN v_inv;
END
$fn$;

CREATE FUNCTION @extschema@.resend_invitation(invitation_id uuid)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_inv    @extschema@.invitations%ROWTYPE := @extschema@.pending_invitation('resend_invitation', invitation_id);
    v_issued timestamptz := pg_catalog.clock_timestamp();
    v_token  text;
BEGIN
    IF v_inv.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: invitation %s was revoked', invitation_id),
            HINT = 'send a new invitation with tenancy.invite()';
    END IF;
    v_token := @extschema@.sign_invitation(v_inv.id, v_issued);
    UPDATE @extschema@.invitations i
       SET token_hash = pg_catalog.sha256(pg_catalog.convert_to(v_token, 'UTF8')),
           issued_at = v_issued,
           expires_at = v_issued + (v_inv.expires_at - v_inv.issued_at)
     WHERE i.id = v_inv.id;
    RETURN v_token;
END
$fn$;

CREATE FUNCTION @extschema@.revoke_invitation(invitation_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
DECLARE
    v_inv @extschema@.invitations%ROWTYPE := @extschema@.pending_invitation('revoke_invitation', invitation_id);
BEGIN
    UPDATE @extschema@.invitations i
       SET revoked_at = COALESCE(i.revoked_at, pg_catalog.clock_timestamp())
     WHERE i.id = v_inv.id;
END
$fn$;

CREATE FUNCTION @extschema@.create_api_token(name text, scopes text[], expires_at timestamptz DEFAULT NULL)
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

CREATE FUNCTION @extschema@.revoke_api_token(token_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_variable
BEGIN
    IF token_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'tenancy: token_id must not be null',
            HINT = 'pass the id create_api_token() returned';
    END IF;
    PERFORM @extschema@.require_permission('tokens:write');
    UPDATE @extschema@.api_tokens k
       SET revoked_at = COALESCE(k.revoked_at, pg_catalog.clock_timestamp())
     WHERE k.id = token_id AND k.tenant_id = @extschema@.current_tenant();
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('tenancy: unknown API token %s', token_id),
            HINT = 'SELECT id, name FROM tenancy.api_tokens lists this tenant''s tokens';
    END IF;
END
$fn$;
