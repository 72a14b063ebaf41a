SELECT r.rank FROM tenancy.roles r WHERE r.name OPERATOR(pg_catalog.=) $1
