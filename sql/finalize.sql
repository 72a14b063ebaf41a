-- Row-level security on pg_tenancy's own tables, and every grant. Runs last.
--
-- Application roles (members of tenancy_client; tenancy_app is one) read their own tenant's
-- rows of tenants and memberships, the role and permission catalogue, and nothing of users.
-- They write these tables only through the SECURITY DEFINER functions.

ALTER TABLE @extschema@.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.isolation_registry ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.auto_isolate_schemas ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.signing_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.api_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.auth_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.tenant_status_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.deleted_tenants ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenancy_own_tenant ON @extschema@.tenants
    FOR SELECT TO tenancy_client
    USING (id = (SELECT @extschema@.current_tenant()));
CREATE POLICY tenancy_own_tenant ON @extschema@.memberships
    FOR SELECT TO tenancy_client
    USING (tenant_id = (SELECT @extschema@.current_tenant()));
CREATE POLICY tenancy_own_tenant ON @extschema@.invitations
    FOR SELECT TO tenancy_client
    USING (tenant_id = (SELECT @extschema@.current_tenant()));
CREATE POLICY tenancy_own_tenant ON @extschema@.api_tokens
    FOR SELECT TO tenancy_client
    USING (tenant_id = (SELECT @extschema@.current_tenant()));
CREATE POLICY tenancy_own_tenant ON @extschema@.auth_log
    FOR SELECT TO tenancy_client
    USING (tenant_id = (SELECT @extschema@.current_tenant()));
CREATE POLICY tenancy_own_tenant ON @extschema@.tenant_status_history
    FOR SELECT TO tenancy_client
    USING (tenant_id = (SELECT @extschema@.current_tenant()));

REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

GRANT SELECT ON @extschema@.tenants, @extschema@.memberships,
                @extschema@.roles, @extschema@.permissions, @extschema@.role_permissions,
                @extschema@.members, @extschema@.auth_log, @extschema@.tenant_status_history
   TO tenancy_client;

-- Every column but the token hash.
GRANT SELECT (id, tenant_id, email, role, invited_by, issued_at, expires_at, accepted_at,
              accepted_by, revoked_at, created_at)
   ON @extschema@.invitations TO tenancy_client;
GRANT SELECT (id, tenant_id, name, scopes, created_by, created_at, expires_at, last_used_at,
              revoked_at, parent_id)
   ON @extschema@.api_tokens TO tenancy_client;

-- Read accessors and checks: harmless for anyone (isolation policies call them as the querying
-- role, whoever it is).
GRANT EXECUTE ON FUNCTION
    @extschema@.check_row_tenant(uuid),
    @extschema@.check_write_permission(text),
    @extschema@.current_permissions(),
    @extschema@.current_tenant(),
    @extschema@.current_user_id(),
    @extschema@.context(),
    @extschema@.clear_context(),
    @extschema@.has_permission(text),
    @extschema@.require_permission(text),
    @extschema@.has_role(text),
    @extschema@.require_role(text)
   TO PUBLIC;

-- The rows of the members view, filtered by the context: application roles only.
GRANT EXECUTE ON FUNCTION @extschema@.member_rows() TO tenancy_client;

-- Credentials: what a client presents.
GRANT EXECUTE ON FUNCTION
    @extschema@.authenticate(text),
    @extschema@.accept_invitation(text, uuid)
   TO tenancy_client;

-- Checked against the tenant context inside.
GRANT EXECUTE ON FUNCTION
    @extschema@.set_member_role(uuid, text),
    @extschema@.remove_member(uuid),
    @extschema@.invite(text, text, interval),
    @extschema@.resend_invitation(uuid),
    @extschema@.revoke_invitation(uuid),
    @extschema@.create_api_token(text, text[], timestamptz),
    @extschema@.revoke_api_token(uuid)
   TO tenancy_client;

-- The tenant lifecycle (sql/lifecycle.sql): checked against the context inside, or, for the
-- SECURITY INVOKER entry points, against their caller. The *_checked functions are what the
-- entry points call for application roles; the *_write ones stay with superusers.
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

-- Trusted backends only: choosing a tenant, creating tenants and users, listing any user's
-- tenants.
GRANT EXECUTE ON FUNCTION
    @extschema@.set_tenant(uuid),
    @extschema@.set_tenant(uuid, uuid),
    @extschema@.create_tenant(text, uuid, text),
    @extschema@.create_user(text, uuid),
    @extschema@.user_tenants_any(uuid)
   TO tenancy_app;

-- isolate(), unisolate(), auto_isolate(), the isolated_tables view, create_signing_key() and
-- retire_signing_key() stay with superusers (and whom they grant them to): see docs/api.md.
