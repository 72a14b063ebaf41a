SELECT k.kid, k.secret
  FROM tenancy.signing_keys k
 WHERE k.retired_at IS NULL
 ORDER BY k.created_at DESC, k.kid
 LIMIT 1
