UPDATE tenancy.signing_keys k
   SET retired_at = pg_catalog.clock_timestamp()
 WHERE k.kid OPERATOR(pg_catalog.=) $1
   AND k.retired_at IS NULL
RETURNING k.kid
