-- An API token by id, with what authenticate() decides on (expiry and last use are compared
-- with the clock in Rust, so that the row can be cached). Runs as the bootstrap superuser:
-- every name and operator is schema-qualified.
SELECT k.tenant_id,
       k.created_by,
       k.scopes,
       k.token_hash,
       k.revoked_at IS NOT NULL,
       k.expires_at,
       k.last_used_at,
       k.parent_id
  FROM tenancy.api_tokens k
 WHERE k.id OPERATOR(pg_catalog.=) $1
