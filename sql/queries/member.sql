-- A user's standing in a tenant: platform admin flag and membership role (NULL when not a
-- member). Runs as the bootstrap superuser: every name and operator is schema-qualified.
SELECT u.platform_admin,
       m.role
  FROM tenancy.users u
  LEFT JOIN tenancy.memberships m
         ON m.user_id OPERATOR(pg_catalog.=) u.id
        AND m.tenant_id OPERATOR(pg_catalog.=) $1
 WHERE u.id OPERATOR(pg_catalog.=) $2
