-- pg_tenancy: group roles, tables and seed data.
--
-- Runs first (bootstrap). Everything is created in @extschema@ (always `tenancy`: the extension
-- is not relocatable). Policies and grants that name functions come later, in finalize.sql.

-- The two NOLOGIN group roles. They are cluster-wide, so they may already exist from another
-- database; they are created only when absent and are never dropped by DROP EXTENSION.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'tenancy_client') THEN
        CREATE ROLE tenancy_client NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'tenancy_app') THEN
        CREATE ROLE tenancy_app NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('tenancy_app', 'tenancy_client', 'MEMBER') THEN
        GRANT tenancy_client TO tenancy_app;
    END IF;
END
$roles$;

CREATE TABLE @extschema@.tenants (
    id         uuid        NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    name       text        NOT NULL,
    slug       text        NOT NULL,
    status     text        NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT tenants_pkey PRIMARY KEY (id),
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    CONSTRAINT tenants_status_check CHECK (status IN ('active', 'suspended')),
    CONSTRAINT tenants_name_check CHECK (pg_catalog.length(name) BETWEEN 1 AND 200),
    CONSTRAINT tenants_slug_check CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND pg_catalog.length(slug) <= 63)
);

CREATE TABLE @extschema@.users (
    id             uuid        NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    email          text        NOT NULL,
    platform_admin boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_check CHECK (pg_catalog.length(email) BETWEEN 3 AND 254)
);
-- Unique case-insensitively: 'Ana@Example.com' and 'ana@example.com' are one user.
CREATE UNIQUE INDEX users_email_lower_key ON @extschema@.users (pg_catalog.lower(email));

CREATE TABLE @extschema@.roles (
    name        text NOT NULL,
    rank        int  NOT NULL,
    description text,
    seeded      boolean NOT NULL DEFAULT false,
    CONSTRAINT roles_pkey PRIMARY KEY (name),
    CONSTRAINT roles_rank_key UNIQUE (rank),
    CONSTRAINT roles_name_check CHECK (name ~ '^[a-z][a-z0-9_]*$' AND pg_catalog.length(name) <= 63),
    CONSTRAINT roles_rank_check CHECK (rank > 0)
);

CREATE TABLE @extschema@.permissions (
    name        text NOT NULL,
    description text,
    seeded      boolean NOT NULL DEFAULT false,
    CONSTRAINT permissions_pkey PRIMARY KEY (name),
    CONSTRAINT permissions_name_check
        CHECK (name ~ '^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$' AND pg_catalog.length(name) <= 127)
);

-- A grant is an exact permission name, 'resource:*', or '*'.
CREATE TABLE @extschema@.role_permissions (
    role       text NOT NULL,
    permission text NOT NULL,
    seeded     boolean NOT NULL DEFAULT false,
    CONSTRAINT role_permissions_pkey PRIMARY KEY (role, permission),
    CONSTRAINT role_permissions_role_fkey FOREIGN KEY (role)
        REFERENCES @extschema@.roles (name) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT role_permissions_permission_check
        CHECK (permission = '*' OR permission ~ '^[a-z][a-z0-9_]*:([a-z][a-z0-9_]*|\*)$')
);

CREATE TABLE @extschema@.memberships (
    tenant_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    role       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT memberships_pkey PRIMARY KEY (tenant_id, user_id),
    CONSTRAINT memberships_tenant_fkey FOREIGN KEY (tenant_id)
        REFERENCES @extschema@.tenants (id) ON DELETE CASCADE,
    CONSTRAINT memberships_user_fkey FOREIGN KEY (user_id)
        REFERENCES @extschema@.users (id) ON DELETE CASCADE,
    CONSTRAINT memberships_role_fkey FOREIGN KEY (role)
        REFERENCES @extschema@.roles (name) ON UPDATE CASCADE
);
CREATE INDEX memberships_user_idx ON @extschema@.memberships (user_id);

-- What isolate() did to each table, so that drift can be shown and unisolate() can undo it.
CREATE TABLE @extschema@.isolation_registry (
    relid            regclass    NOT NULL,
    tenant_column    name        NOT NULL,
    read_permission  text,
    write_permission text,
    policies         jsonb       NOT NULL,
    created_index    text,
    prior_rls        boolean     NOT NULL,
    prior_force      boolean     NOT NULL,
    prior_default    text,
    prior_privileges text[]      NOT NULL DEFAULT '{}',
    isolated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT isolation_registry_pkey PRIMARY KEY (relid)
);

-- Schemas whose new tables are isolated automatically (see auto_isolate()).
CREATE TABLE @extschema@.auto_isolate_schemas (
    schema_name name NOT NULL,
    CONSTRAINT auto_isolate_schemas_pkey PRIMARY KEY (schema_name)
);

-- Seed data. Applications add their own roles and permissions as rows.
INSERT INTO @extschema@.roles (name, rank, description, seeded) VALUES
    ('owner',   100, 'full control of the tenant, including billing and deletion', true),
    ('admin',    80, 'everything but billing changes and deleting the tenant', true),
    ('manager',  60, 'catalogue, inventory and orders; manages members of lower rank', true),
    ('staff',    40, 'day-to-day work on orders and inventory', true),
    ('viewer',   20, 'read-only access', true);

INSERT INTO @extschema@.permissions (name, description, seeded) VALUES
    ('products:read',   'read products', true),
    ('products:write',  'create and change products', true),
    ('inventory:read',  'read stock levels', true),
    ('inventory:write', 'change stock levels', true),
    ('orders:read',     'read orders', true),
    ('orders:write',    'create and change orders', true),
    ('payments:read',   'read payments', true),
    ('payments:write',  'create and change payments', true),
    ('webhooks:read',   'read webhook settings', true),
    ('webhooks:write',  'change webhook settings', true),
    ('billing:read',    'read the billing account', true),
    ('billing:write',   'change the billing account', true),
    ('analytics:read',  'read analytics', true),
    ('members:read',    'list members', true),
    ('members:write',   'invite, change and remove members of lower rank', true),
    ('tokens:write',    'create and revoke API tokens', true),
    ('tenant:delete',   'delete the tenant', true),
    ('tenant:export',   'export every row of the tenant''s isolated tables', true);

INSERT INTO @extschema@.role_permissions (role, permission, seeded)
SELECT r, g, true FROM (
SELECT 'owner' AS r, '*' AS g
UNION ALL
SELECT 'admin', p.name FROM @extschema@.permissions p
 WHERE p.name NOT IN ('billing:write', 'tenant:delete', 'tenant:export')
UNION ALL
SELECT 'manager', g FROM pg_catalog.unnest(ARRAY['products:*', 'inventory:*', 'orders:*',
       'members:read', 'members:write', 'analytics:read']) AS g
UNION ALL
SELECT 'staff', g FROM pg_catalog.unnest(ARRAY['products:read', 'orders:*', 'inventory:*']) AS g
UNION ALL
SELECT 'viewer', p.name FROM @extschema@.permissions p WHERE p.name LIKE '%:read'
) AS matrix;

-- pg_dump keeps the rows of configuration tables. Seeded rows are left out (CREATE EXTENSION
-- puts them back on restore); the rows an application added are dumped.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.users', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.roles', 'WHERE NOT seeded');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.permissions', 'WHERE NOT seeded');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.role_permissions', 'WHERE NOT seeded');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.memberships', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.isolation_registry', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.auto_isolate_schemas', '');
