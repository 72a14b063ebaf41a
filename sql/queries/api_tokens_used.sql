-- Token uses from the log writer: last_used_at brought up to the newest use of each token
-- (never moved back). Touches no column the cache invalidation triggers watch.
UPDATE tenancy.api_tokens k
   SET last_used_at = u.at
  FROM (SELECT v.id,
               'epoch'::pg_catalog.timestamptz OPERATOR(pg_catalog.+)
                   (v.at_us OPERATOR(pg_catalog.*) '1 microsecond'::pg_catalog.interval) AS at
          FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.uuid[]),
                          pg_catalog.unnest($2::pg_catalog.int8[])) AS v(id, at_us)) AS u
 WHERE k.id OPERATOR(pg_catalog.=) u.id
   AND (k.last_used_at IS NULL OR k.last_used_at OPERATOR(pg_catalog.<) u.at)
