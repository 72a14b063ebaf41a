-- last_used_at, written at most once a minute per token.
UPDATE tenancy.api_tokens k
   SET last_used_at = pg_catalog.now()
 WHERE k.id OPERATOR(pg_catalog.=) $1
   AND (k.last_used_at IS NULL
        OR k.last_used_at OPERATOR(pg_catalog.<)
           (pg_catalog.now() OPERATOR(pg_catalog.-) '1 minute'::pg_catalog.interval))
