-- pg_tenancy 0.1.0 → 0.2.0. Frozen once 0.2.0 is released.
\echo Use "ALTER EXTENSION pg_tenancy UPDATE" to load this file. \quit

-- The permissions the context's actor may use now (after a token's or a JWT's scopes).
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
REVOKE ALL ON FUNCTION @extschema@.current_permissions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.current_permissions() TO PUBLIC;

-- Per-backend caches of tenant status, memberships, roles, permission names, API-token rows
-- and signing keys (src/cache.rs), invalidated by a statement-level trigger on each table.
CREATE FUNCTION @extschema@.cache_invalidate()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'cache_invalidate_wrapper';
REVOKE ALL ON FUNCTION @extschema@.cache_invalidate() FROM PUBLIC;

CREATE TRIGGER tenancy_cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.users
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.memberships
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.roles
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.role_permissions
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.permissions
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate
    AFTER INSERT
       OR UPDATE OF id, tenant_id, name, scopes, created_by, created_at, expires_at, revoked_at,
                    token_hash
       OR DELETE OR TRUNCATE ON @extschema@.api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.cache_invalidate();

ALTER TABLE @extschema@.tenants ENABLE ALWAYS TRIGGER tenancy_cache_invalidate;
ALTER TABLE @extschema@.users ENABLE ALWAYS TRIGGER tenancy_cache_invalidate;
ALTER TABLE @extschema@.memberships ENABLE ALWAYS TRIGGER tenancy_cache_invalidate;
ALTER TABLE @extschema@.roles ENABLE ALWAYS TRIGGER tenancy_cache_invalidate;
ALTER TABLE @extschema@.role_permissions ENABLE ALWAYS TRIGGER tenancy_cache_invalidate;
ALTER TABLE @extschema@.permissions ENABLE ALWAYS TRIGGER tenancy_cache_invalidate;
ALTER TABLE @extschema@.api_tokens ENABLE ALWAYS TRIGGER tenancy_cache_invalidate;
ALTER TABLE @extschema@.signing_keys ENABLE ALWAYS TRIGGER tenancy_cache_invalidate;
