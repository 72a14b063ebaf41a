-- The user's standing in a tenant: platform admin flag, membership role, its rank and grants.
-- Runs as the bootstrap superuser from Rust: every name and operator is schema-qualified.
SELECT u.platform_admin,
       m.role,
       r.rank,
       ARRAY(SELECT rp.permission
               FROM tenancy.role_permissions rp
              WHERE rp.role OPERATOR(pg_catalog.=) m.role)
  FROM tenancy.users u
  LEFT JOIN tenancy.memberships m
         ON m.user_id OPERATOR(pg_catalog.=) u.id
        AND m.tenant_id OPERATOR(pg_catalog.=) $1
  LEFT JOIN tenancy.roles r
         ON r.name OPERATOR(pg_catalog.=) m.role
 WHERE u.id OPERATOR(pg_catalog.=) $2
