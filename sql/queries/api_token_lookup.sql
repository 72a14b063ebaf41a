-- OPERATOR() has one precedence for all operators: parenthesise every compound operand.
-- An API token by id, with what authenticate() decides on. Runs as the bootstrap superuser:
-- every name and operator is schema-qualified.
SELECT k.tenant_id,
       k.created_by,
       k.scopes,
       k.token_hash,
       k.revoked_at IS NOT NULL,
       k.expires_at IS NOT NULL
           AND k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp(),
       k.last_used_at IS NULL
           OR k.last_used_at OPERATOR(pg_catalog.<)
              (pg_catalog.now() OPERATOR(pg_catalog.-) '1 minute'::pg_catalog.interval)
  FROM tenancy.api_tokens k
 WHERE k.id OPERATOR(pg_catalog.=) $1
