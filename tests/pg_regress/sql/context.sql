-- The per-transaction tenant context: set_tenant(), clear_context(), current_tenant(),
-- current_user_id() and context().
--
-- Runs as application roles made here (regress_ctx_app IN ROLE tenancy_app,
-- regress_ctx_client IN ROLE tenancy_client) through SET ROLE: superusers bypass RLS and
-- set_tenant() warns them. The client tests cover real connections (PGOPTIONS, new backends,
-- pooled sessions). Roles are cluster-wide: they are dropped at the start and at the end.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_ctx_app;
DROP ROLE IF EXISTS regress_ctx_client;
DROP ROLE IF EXISTS regress_ctx_bypass;
RESET client_min_messages;
CREATE ROLE regress_ctx_app LOGIN IN ROLE tenancy_app;
CREATE ROLE regress_ctx_client LOGIN IN ROLE tenancy_client;
CREATE ROLE regress_ctx_bypass LOGIN BYPASSRLS IN ROLE tenancy_app;

-- Fixtures, made by the application role: an owner of tenants A and B, a staff member of
-- A, a stranger, a platform admin, and a suspended tenant C.
SET ROLE regress_ctx_app;
SELECT tenancy.create_user('ctx-owner@example.com') AS owner \gset
SELECT tenancy.create_user('ctx-staff@example.com') AS staff \gset
SELECT tenancy.create_user('ctx-stranger@example.com') AS stranger \gset
SELECT tenancy.create_user('ctx-admin@example.com') AS padmin \gset
SELECT tenancy.create_tenant('Context A', :'owner') AS ta \gset
SELECT tenancy.create_tenant('Context B', :'owner') AS tb \gset
SELECT tenancy.create_tenant('Context C', :'owner') AS tc \gset
INSERT INTO regress_ids (id, label) VALUES
    (:'owner', 'owner'), (:'staff', 'staff'), (:'stranger', 'stranger'), (:'padmin', 'padmin'),
    (:'ta', 'A'), (:'tb', 'B'), (:'tc', 'C'),
    ('00000000-0000-0000-0000-000000000001', 'no-such-id');
RESET ROLE;
-- Members join by invitation (a later feature); the superuser adds them directly here.
INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES (:'ta', :'staff', 'staff');
UPDATE tenancy.users SET platform_admin = true WHERE id = :'padmin';
UPDATE tenancy.tenants SET status = 'suspended' WHERE id = :'tc';

SET ROLE regress_ctx_app;

-- Without a context: current_tenant() fails closed, the others say "nothing".
SELECT tenancy.current_tenant();
SELECT tenancy.current_user_id() IS NULL AS no_user, tenancy.context() AS context;
SELECT tenancy.clear_context();

-- A context lasts for its transaction.
BEGIN;
SELECT tenancy.set_tenant(:'ta', :'owner');
SELECT tenancy.current_tenant() = :'ta' AS tenant_a, tenancy.current_user_id() = :'owner' AS owner;
SELECT regress_mask(tenancy.context()::text) AS context;
COMMIT;
SELECT regress_try('SELECT tenancy.current_tenant()') AS after_commit;
SELECT tenancy.context() AS context;

-- A tenant-only context has no user, and so no role.
BEGIN;
SELECT tenancy.set_tenant(:'tb');
SELECT tenancy.current_tenant() = :'tb' AS tenant_b, tenancy.current_user_id() IS NULL AS no_user;
SELECT regress_mask(tenancy.context()::text) AS context;
ROLLBACK;
SELECT tenancy.context() AS after_rollback;

-- The role in context() is the member's role in that tenant.
BEGIN;
SELECT tenancy.set_tenant(:'ta', :'staff');
SELECT tenancy.context() ->> 'role' AS role;
COMMIT;

-- Outside a transaction block the context lasts for one statement, and set_tenant() says so.
SELECT tenancy.set_tenant(:'ta');
SELECT tenancy.context() AS next_statement;

-- Setting the very same context again is a no-op; any other context needs clear_context()
-- first, so that no statement ever sees two tenants or two actors.
BEGIN;
SELECT tenancy.set_tenant(:'ta', :'owner');
SELECT tenancy.set_tenant(:'ta', :'owner');
SELECT regress_try(format('SELECT tenancy.set_tenant(%L, %L)', :'tb', :'owner')) AS other_tenant;
SELECT regress_try(format('SELECT tenancy.set_tenant(%L, %L)', :'ta', :'staff')) AS other_user;
SELECT regress_try(format('SELECT tenancy.set_tenant(%L)', :'ta')) AS without_user;
SELECT tenancy.current_tenant() = :'ta' AS still_a, tenancy.current_user_id() = :'owner' AS still_owner;
SELECT tenancy.clear_context();
SELECT tenancy.context() AS cleared;
SELECT tenancy.set_tenant(:'tb', :'owner');
SELECT tenancy.current_tenant() = :'tb' AS now_b;
COMMIT;

-- Who may enter a tenant.
BEGIN;
SELECT regress_try(format('SELECT tenancy.set_tenant(%L)', '00000000-0000-0000-0000-000000000001')) AS unknown_tenant;
SELECT regress_try(format('SELECT tenancy.set_tenant(%L)', :'tc')) AS suspended_tenant;
SELECT regress_try(format('SELECT tenancy.set_tenant(%L, %L)', :'tc', :'owner')) AS suspended_with_owner;
SELECT regress_try(format('SELECT tenancy.set_tenant(%L, %L)', :'ta', :'stranger')) AS not_a_member;
SELECT regress_try(format('SELECT tenancy.set_tenant(%L, %L)', :'ta', '00000000-0000-0000-0000-000000000001')) AS unknown_user;
SELECT regress_try(format('SELECT tenancy.set_tenant(%L, %L)', :'tb', :'staff')) AS member_of_other_tenant;
SELECT regress_try('SELECT tenancy.set_tenant(NULL)') AS null_tenant;
SELECT regress_try(format('SELECT tenancy.set_tenant(NULL, %L)', :'owner')) AS null_tenant_with_user;
SELECT tenancy.context() AS nothing_set;
-- A platform admin may enter any tenant; it has no membership role there.
SELECT tenancy.set_tenant(:'tb', :'padmin');
SELECT regress_mask(tenancy.context()::text) AS context;
COMMIT;

-- An error ends the context with its transaction, also when the error is pg_tenancy's own.
-- (VERBOSITY sqlstate: the message names uuids.)
BEGIN;
SELECT tenancy.set_tenant(:'ta', :'owner');
SELECT 1 / 0;
ROLLBACK;
SELECT tenancy.context() AS after_error;
BEGIN;
SELECT tenancy.set_tenant(:'ta', :'owner');
\set VERBOSITY sqlstate
SELECT tenancy.set_tenant(:'tb', :'owner');
\set VERBOSITY default
ROLLBACK;
SELECT tenancy.context() AS after_tenancy_error;

-- Savepoints: ROLLBACK TO reverts what was done after the savepoint, RELEASE keeps it.
BEGIN;
SAVEPOINT s1;
SELECT tenancy.set_tenant(:'ta', :'owner');
ROLLBACK TO SAVEPOINT s1;
SELECT tenancy.context() AS rolled_back_to_s1;
SELECT tenancy.set_tenant(:'ta', :'owner');
SAVEPOINT s2;
SELECT tenancy.clear_context();
ROLLBACK TO SAVEPOINT s2;
SELECT tenancy.current_tenant() = :'ta' AS clear_was_undone;
SAVEPOINT s3;
SELECT tenancy.clear_context();
SELECT tenancy.set_tenant(:'tb', :'owner');
RELEASE SAVEPOINT s3;
SELECT tenancy.current_tenant() = :'tb' AS released_keeps_b;
SAVEPOINT s4;
SELECT 1 / 0;
ROLLBACK TO SAVEPOINT s4;
SELECT tenancy.current_tenant() = :'tb' AS error_after_savepoint_keeps_b;
COMMIT;
SELECT tenancy.context() AS after_commit;

-- The context cannot be written through the setting that carries it: not by SET, SET LOCAL,
-- set_config() or RESET, and RESET ALL leaves it alone.
BEGIN;
SELECT tenancy.set_tenant(:'ta', :'owner');
SELECT regress_try(format('SET tenancy.context = %L', 't=' || :'tb' || ';s=set_tenant')) AS set;
SELECT regress_try(format('SET LOCAL tenancy.context = %L', 't=' || :'tb' || ';s=set_tenant')) AS set_local;
SELECT regress_try(format('SELECT set_config(%L, %L, true)', 'tenancy.context', 't=' || :'tb' || ';s=set_tenant')) AS set_config;
SELECT regress_try($$SELECT set_config('tenancy.context', '', true)$$) AS set_config_empty;
SELECT regress_try('RESET tenancy.context') AS reset;
SELECT regress_try('SET tenancy.context TO DEFAULT') AS set_default;
RESET ALL;
SELECT tenancy.current_tenant() = :'ta' AS still_a, tenancy.current_user_id() = :'owner' AS still_owner;
COMMIT;
BEGIN;
SELECT regress_try(format('SET LOCAL tenancy.context = %L', 't=' || :'ta' || ';s=set_tenant')) AS set_local_without_context;
SELECT tenancy.context() AS nothing_planted;
COMMIT;
RESET ROLE;
-- Not even a superuser can plant a context, nor make one stick to a role or database.
SELECT regress_try(format('SET tenancy.context = %L', 't=' || :'ta' || ';s=set_tenant')) AS superuser_set;
SELECT regress_try(format('ALTER ROLE regress_ctx_app SET tenancy.context = %L', 't=' || :'ta' || ';s=set_tenant')) AS alter_role;
SELECT regress_try(format('ALTER DATABASE %I SET tenancy.context = %L', current_database(), 't=' || :'ta' || ';s=set_tenant')) AS alter_database;
SELECT count(*) AS stored_settings FROM pg_db_role_setting s, unnest(s.setconfig) c WHERE c LIKE 'tenancy.context%';
SELECT tenancy.context() AS nothing_planted;
-- The empty value is the "no context" value: a superuser may write it, and
-- current_tenant() treats it like no context at all.
BEGIN;
SELECT regress_try($$SET LOCAL tenancy.context = ''$$) AS superuser_set_empty;
SELECT regress_try('SELECT tenancy.current_tenant()') AS empty_context;
SELECT tenancy.context() AS context;
COMMIT;

-- A tenancy_client member cannot choose a tenant; it can use the read accessors.
SET ROLE regress_ctx_client;
SELECT regress_try(format('SELECT tenancy.set_tenant(%L)', :'ta')) AS client_set_tenant;
SELECT regress_try('SELECT tenancy.current_tenant()') AS client_current_tenant;
SELECT tenancy.current_user_id() IS NULL AS no_user, tenancy.context() AS context;
SELECT tenancy.clear_context();
RESET ROLE;

-- Roles that bypass row-level security get a WARNING from set_tenant(), naming the role and
-- why: isolation does not hold for them.
BEGIN;
SELECT tenancy.set_tenant(:'ta', :'owner');
ROLLBACK;
SET ROLE regress_ctx_bypass;
BEGIN;
SELECT tenancy.set_tenant(:'ta', :'owner');
ROLLBACK;
RESET ROLE;

DROP ROLE regress_ctx_app;
DROP ROLE regress_ctx_client;
DROP ROLE regress_ctx_bypass;
