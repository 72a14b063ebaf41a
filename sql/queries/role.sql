-- A role's rank and the permissions it grants. Runs as the bootstrap superuser: every name
-- and operator is schema-qualified.
SELECT r.rank,
       ARRAY(SELECT rp.permission
               FROM tenancy.role_permissions rp
              WHERE rp.role OPERATOR(pg_catalog.=) r.name
              ORDER BY rp.permission)
  FROM tenancy.roles r
 WHERE r.name OPERATOR(pg_catalog.=) $1
