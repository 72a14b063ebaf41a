-- Invalidation of the per-backend caches (src/cache.rs): every change to a table whose rows
-- the caches hold queues a relation-cache invalidation of that table, delivered to every
-- backend when the change commits. ENABLE ALWAYS: the triggers fire under
-- session_replication_role = replica too (logical replication's apply, pg_restore). pg_tenancy
-- caches nothing while one of them is missing or disabled.
--
-- api_tokens: every column but last_used_at, which authenticate() writes once a minute and
-- which no decision reads.

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
