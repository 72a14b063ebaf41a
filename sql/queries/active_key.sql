SELECT k.secret
  FROM tenancy.signing_keys k
 WHERE k.kid OPERATOR(pg_catalog.=) $1
   AND k.retired_at IS NULL
