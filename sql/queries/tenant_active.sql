SELECT t.status OPERATOR(pg_catalog.=) 'active'::pg_catalog.text
  FROM tenancy.tenants t
 WHERE t.id OPERATOR(pg_catalog.=) $1
