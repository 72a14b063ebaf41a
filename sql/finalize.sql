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

CREATE POLICY tenancy_own_tenant ON @extschema@.tenants
    FOR SELECT TO tenancy_client
    USING (id = (SELECT @extschema@.current_tenant()));
CREATE POLICY tenancy_own_tenant ON @extschema@.memberships
    FOR SELECT TO tenancy_client
    USING (tenant_id = (SELECT @extschema@.current_tenant()));

REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

GRANT SELECT ON @extschema@.tenants, @extschema@.memberships,
                @extschema@.roles, @extschema@.permissions, @extschema@.role_permissions,
                @extschema@.members
   TO tenancy_client;

-- Read accessors and checks: harmless for anyone (isolation policies call them as the querying
-- role, whoever it is).
GRANT EXECUTE ON FUNCTION
    @extschema@.current_tenant(),
    @extschema@.current_user_id(),
    @extschema@.context(),
    @extschema@.clear_context(),
    @extschema@.has_permission(text),
    @extschema@.require_permission(text),
    @extschema@.has_role(text),
    @extschema@.require_role(text)
   TO PUBLIC;

-- Checked against the tenant context inside.
GRANT EXECUTE ON FUNCTION
    @extschema@.set_member_role(uuid, text),
    @extschema@.remove_member(uuid)
   TO tenancy_client;

-- Trusted backends only: choosing a tenant, creating tenants and users.
GRANT EXECUTE ON FUNCTION
    @extschema@.set_tenant(uuid, uuid),
    @extschema@.create_tenant(text, uuid, text),
    @extschema@.create_user(text, uuid)
   TO tenancy_app;

-- isolate(), unisolate(), auto_isolate() and the isolated_tables view stay with superusers
-- (and whom they grant them to): see docs/api.md.
