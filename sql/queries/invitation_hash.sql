SELECT i.token_hash FROM tenancy.invitations i WHERE i.id OPERATOR(pg_catalog.=) $1
