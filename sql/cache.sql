-- Invalidation of the per-backend caches (src/cache.rs): every change to a table whose rows
-- the caches hold queues a relation-cache invalidation of that table, delivered to every
-- backend when the change commits. pg_tenancy caches nothing while one of these triggers is
-- missing or not in its mode.
--
-- tenancy_cache_invalidate: FOR EACH STATEMENT, ENABLE ALWAYS (it also fires under
-- session_replication_role = replica).
-- tenancy_cache_invalidate_replica: FOR EACH ROW, ENABLE REPLICA (it fires only under
-- session_replication_role = replica): logical replication's apply worker fires row triggers
-- only, never statement triggers, so on a subscriber this one carries the invalidation.
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
                    token_hash, parent_id
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

CREATE TRIGGER tenancy_cache_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.tenants
    FOR EACH ROW EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.users
    FOR EACH ROW EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.memberships
    FOR EACH ROW EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.roles
    FOR EACH ROW EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.role_permissions
    FOR EACH ROW EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.permissions
    FOR EACH ROW EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate_replica
    AFTER INSERT
       OR UPDATE OF id, tenant_id, name, scopes, created_by, created_at, expires_at, revoked_at,
                    token_hash, parent_id
       OR DELETE ON @extschema@.api_tokens
    FOR EACH ROW EXECUTE FUNCTION @extschema@.cache_invalidate();
CREATE TRIGGER tenancy_cache_invalidate_replica
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.signing_keys
    FOR EACH ROW EXECUTE FUNCTION @extschema@.cache_invalidate();

ALTER TABLE @extschema@.tenants ENABLE REPLICA TRIGGER tenancy_cache_invalidate_replica;
ALTER TABLE @extschema@.users ENABLE REPLICA TRIGGER tenancy_cache_invalidate_replica;
ALTER TABLE @extschema@.memberships ENABLE REPLICA TRIGGER tenancy_cache_invalidate_replica;
ALTER TABLE @extschema@.roles ENABLE REPLICA TRIGGER tenancy_cache_invalidate_replica;
ALTER TABLE @extschema@.role_permissions ENABLE REPLICA TRIGGER tenancy_cache_invalidate_replica;
ALTER TABLE @extschema@.permissions ENABLE REPLICA TRIGGER tenancy_cache_invalidate_replica;
ALTER TABLE @extschema@.api_tokens ENABLE REPLICA TRIGGER tenancy_cache_invalidate_replica;
ALTER TABLE @extschema@.signing_keys ENABLE REPLICA TRIGGER tenancy_cache_invalidate_replica;
