SELECT true FROM tenancy.permissions p WHERE p.name OPERATOR(pg_catalog.=) $1
