-- Users, tenants, members and the RBAC checks: create_user(), create_tenant(),
-- has_permission(), require_permission(), has_role(), require_role(), set_member_role(),
-- remove_member() and the members view.
--
-- Runs as an application role made here (regress_rbac_app IN ROLE tenancy_app) through
-- SET ROLE; the client tests cover real connections. Roles are cluster-wide: they are
-- dropped at the start and at the end.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_rbac_app;
RESET client_min_messages;
CREATE ROLE regress_rbac_app LOGIN IN ROLE tenancy_app;

-- Test helpers: enter a tenant as a user and record the answers of checks in regress_grid.
-- A statement that has used the context cannot switch it (no statement sees two tenants), so
-- each member's answers are collected by a procedure whose statements run one by one.
CREATE TABLE regress_grid (who text, item text, ok boolean);
GRANT ALL ON regress_grid TO PUBLIC;
CREATE PROCEDURE regress_fill_permissions(who text, t uuid, u uuid, items text[])
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM tenancy.clear_context();
    PERFORM tenancy.set_tenant(t, u);
    INSERT INTO regress_grid SELECT who, i, tenancy.has_permission(i) FROM unnest(items) AS i;
END
$fn$;
CREATE PROCEDURE regress_fill_ranks(who text, t uuid, u uuid, items text[])
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM tenancy.clear_context();
    PERFORM tenancy.set_tenant(t, u);
    INSERT INTO regress_grid SELECT who, i, tenancy.has_role(i) FROM unnest(items) AS i;
END
$fn$;

SET ROLE regress_rbac_app;

------------------------------------------------------------------------------------------
-- create_user(): one user per email, compared case-insensitively, the email trimmed.
------------------------------------------------------------------------------------------
SELECT tenancy.create_user('rbac-owner@example.com') AS owner \gset
INSERT INTO regress_ids (id, label) VALUES (:'owner', 'owner');
SELECT tenancy.create_user('RBAC-Owner@Example.COM') = :'owner' AS same_user_other_case,
       tenancy.create_user('  rbac-owner@example.com  ') = :'owner' AS same_user_trimmed,
       tenancy.create_user('rbac-owner@example.com', :'owner') = :'owner' AS same_user_own_id;
-- A chosen id is used for a new user; an id that disagrees with the email's user is refused.
INSERT INTO regress_ids (id, label) VALUES ('00000000-0000-4000-8000-0000000000aa', 'chosen-id');
SELECT tenancy.create_user('rbac-chosen@example.com', '00000000-0000-4000-8000-0000000000aa') AS chosen \gset
SELECT regress_mask(:'chosen') AS chosen;
SELECT regress_try($$SELECT tenancy.create_user('rbac-chosen@example.com', gen_random_uuid())$$) AS email_has_other_id;
SELECT regress_try($$SELECT tenancy.create_user('rbac-other@example.com', '00000000-0000-4000-8000-0000000000aa')$$) AS id_taken;
SELECT regress_try(format('SELECT tenancy.create_user(%L)', e)) AS invalid_email
  FROM unnest(ARRAY['', '   ', 'ab', 'no-at-sign', 'a@b', 'a@b.', 'a@.b', '@example.com',
                    'a@@example.com', 'a b@example.com', E'a\tb@example.com', E'a@example.com\n',
                    'a@b@example.com', repeat('x', 243) || '@example.com']) WITH ORDINALITY AS x(e, n)
 ORDER BY n;
SELECT regress_try('SELECT tenancy.create_user(NULL)') AS null_email;
-- The longest valid email (254 characters).
SELECT tenancy.create_user(repeat('x', 242) || '@example.com') IS NOT NULL AS max_length_ok;

------------------------------------------------------------------------------------------
-- create_tenant(): slugs derived from the name, or given and checked.
------------------------------------------------------------------------------------------
SELECT tenancy.create_tenant('RBAC Shop', :'owner') AS shop \gset
SELECT tenancy.create_tenant('RBAC Shop', :'owner') AS shop2 \gset
SELECT tenancy.create_tenant('  Ünïcode & Co.  ', :'owner') AS uni \gset
SELECT tenancy.create_tenant('¡¡¡', :'owner') AS bang \gset
SELECT tenancy.create_tenant(repeat('Long name ', 20), :'owner') AS long \gset
SELECT tenancy.create_tenant('Explicit', :'owner', 'rbac-explicit-slug') AS explicit \gset
INSERT INTO regress_ids (id, label) VALUES
    (:'shop', 'shop'), (:'shop2', 'shop2'), (:'uni', 'uni'), (:'bang', 'bang'),
    (:'long', 'long'), (:'explicit', 'explicit');
RESET ROLE;
SELECT regress_mask(id::text) AS tenant, name, length(name) AS name_length,
       CASE WHEN id = :'shop2' THEN slug ~ '^rbac-shop-[0-9a-f]{8}$'
            WHEN id = :'bang' THEN slug ~ '^tenant(-[0-9a-f]{8})?$' END AS random_suffix_ok,
       CASE WHEN id IN (:'shop2', :'bang') THEN '(random)' ELSE slug END AS slug,
       status
  FROM tenancy.tenants
 WHERE id IN (:'shop', :'shop2', :'uni', :'bang', :'long', :'explicit')
 ORDER BY name, slug;
-- Each tenant has its creator as its only member, an owner.
SELECT regress_mask(tenant_id::text) AS tenant, regress_mask(user_id::text) AS member, role
  FROM tenancy.memberships
 WHERE tenant_id IN (:'shop', :'shop2', :'uni', :'bang', :'long', :'explicit')
 ORDER BY 1;
SET ROLE regress_rbac_app;
SELECT regress_try(format('SELECT tenancy.create_tenant(%L, %L, %L)', 'Again', :'owner', 'rbac-explicit-slug')) AS slug_taken;
SELECT regress_try(format('SELECT tenancy.create_tenant(%L, %L, %L)', 'Bad', :'owner', s)) AS invalid_slug
  FROM unnest(ARRAY['', 'Upper', 'with space', '-lead', 'trail-', 'dou--ble', 'under_score',
                    'ünï', repeat('a', 64)]) WITH ORDINALITY AS x(s, n)
 ORDER BY n;
SELECT regress_try(format('SELECT tenancy.create_tenant(%L, %L)', n, :'owner')) AS invalid_name
  FROM unnest(ARRAY['', '   ', repeat('n', 201)]) WITH ORDINALITY AS x(n, i)
 ORDER BY i;
SELECT regress_try(format('SELECT tenancy.create_tenant(NULL, %L)', :'owner')) AS null_name;
SELECT regress_try($$SELECT tenancy.create_tenant('Orphan', NULL)$$) AS null_owner;
SELECT regress_try($$SELECT tenancy.create_tenant('Orphan', '00000000-0000-4000-8000-0000000000bb')$$) AS unknown_owner;
-- A 200-character name and a 63-character slug are fine.
SELECT tenancy.create_tenant(repeat('n', 200), :'owner', repeat('a', 63)) IS NOT NULL AS max_lengths_ok;

------------------------------------------------------------------------------------------
-- The members of RBAC Shop: one per seeded role, a stranger and a platform admin.
------------------------------------------------------------------------------------------
SELECT tenancy.create_user('rbac-admin@example.com') AS admin \gset
SELECT tenancy.create_user('rbac-manager@example.com') AS manager \gset
SELECT tenancy.create_user('rbac-staff@example.com') AS staff \gset
SELECT tenancy.create_user('rbac-viewer@example.com') AS viewer \gset
SELECT tenancy.create_user('rbac-stranger@example.com') AS stranger \gset
SELECT tenancy.create_user('rbac-platform@example.com') AS padmin \gset
INSERT INTO regress_ids (id, label) VALUES
    (:'admin', 'admin'), (:'manager', 'manager'), (:'staff', 'staff'), (:'viewer', 'viewer'),
    (:'stranger', 'stranger'), (:'padmin', 'padmin');
-- The viewer owns a tenant of their own: roles are per tenant.
SELECT tenancy.create_tenant('RBAC Viewer Own', :'viewer') AS vown \gset
INSERT INTO regress_ids (id, label) VALUES (:'vown', 'viewer-own');
RESET ROLE;
-- Members join by invitation (a later feature); the superuser adds them directly here.
INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES
    (:'shop', :'admin', 'admin'), (:'shop', :'manager', 'manager'),
    (:'shop', :'staff', 'staff'), (:'shop', :'viewer', 'viewer');
UPDATE tenancy.users SET platform_admin = true WHERE id = :'padmin';
SET ROLE regress_rbac_app;

-- has_permission() for each role, over the seeded permissions: the seeded matrix.
SELECT array_agg(name ORDER BY name) AS seeded_permissions FROM tenancy.permissions WHERE seeded \gset
BEGIN;
CALL regress_fill_permissions('owner', :'shop', :'owner', :'seeded_permissions');
CALL regress_fill_permissions('admin', :'shop', :'admin', :'seeded_permissions');
CALL regress_fill_permissions('manager', :'shop', :'manager', :'seeded_permissions');
CALL regress_fill_permissions('staff', :'shop', :'staff', :'seeded_permissions');
CALL regress_fill_permissions('viewer', :'shop', :'viewer', :'seeded_permissions');
CALL regress_fill_permissions('padmin', :'shop', :'padmin', :'seeded_permissions');
SELECT item AS permission,
       bool_or(ok) FILTER (WHERE who = 'owner') AS owner,
       bool_or(ok) FILTER (WHERE who = 'admin') AS admin,
       bool_or(ok) FILTER (WHERE who = 'manager') AS manager,
       bool_or(ok) FILTER (WHERE who = 'staff') AS staff,
       bool_or(ok) FILTER (WHERE who = 'viewer') AS viewer,
       bool_or(ok) FILTER (WHERE who = 'padmin') AS platform_admin
  FROM regress_grid
 GROUP BY item
 ORDER BY item;
ROLLBACK;

-- has_role() for each member, over the seeded roles: rank comparison.
SELECT array_agg(name ORDER BY name) AS all_roles FROM tenancy.roles \gset
BEGIN;
CALL regress_fill_ranks('owner', :'shop', :'owner', :'all_roles');
CALL regress_fill_ranks('admin', :'shop', :'admin', :'all_roles');
CALL regress_fill_ranks('manager', :'shop', :'manager', :'all_roles');
CALL regress_fill_ranks('staff', :'shop', :'staff', :'all_roles');
CALL regress_fill_ranks('viewer', :'shop', :'viewer', :'all_roles');
CALL regress_fill_ranks('padmin', :'shop', :'padmin', :'all_roles');
CALL regress_fill_ranks('viewer-own', :'vown', :'viewer', :'all_roles');
SELECT r.name AS min_role, r.rank,
       bool_or(g.ok) FILTER (WHERE g.who = 'owner') AS owner,
       bool_or(g.ok) FILTER (WHERE g.who = 'admin') AS admin,
       bool_or(g.ok) FILTER (WHERE g.who = 'manager') AS manager,
       bool_or(g.ok) FILTER (WHERE g.who = 'staff') AS staff,
       bool_or(g.ok) FILTER (WHERE g.who = 'viewer') AS viewer,
       bool_or(g.ok) FILTER (WHERE g.who = 'padmin') AS platform_admin,
       bool_or(g.ok) FILTER (WHERE g.who = 'viewer-own') AS viewer_in_own_tenant
  FROM tenancy.roles r JOIN regress_grid g ON g.item = r.name
 GROUP BY r.name, r.rank
 ORDER BY r.rank DESC;
ROLLBACK;

-- Without a context, or with a tenant-only context (no actor), every check is false; the
-- require_* functions raise 28000 without a context and 42501 without an actor.
SELECT tenancy.has_permission('orders:read') AS no_context_permission,
       tenancy.has_role('viewer') AS no_context_role;
SELECT regress_try($$SELECT tenancy.require_permission('orders:read')$$) AS no_context_require_permission;
SELECT regress_try($$SELECT tenancy.require_role('viewer')$$) AS no_context_require_role;
BEGIN;
SELECT tenancy.set_tenant(:'shop');
SELECT tenancy.has_permission('orders:read') AS tenant_only_permission,
       tenancy.has_role('viewer') AS tenant_only_role;
SELECT regress_try($$SELECT tenancy.require_permission('orders:read')$$) AS tenant_only_require_permission;
SELECT regress_try($$SELECT tenancy.require_role('viewer')$$) AS tenant_only_require_role;
COMMIT;

-- require_permission() / require_role() for the staff member.
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'staff');
SELECT regress_try($$SELECT tenancy.require_permission('orders:write')$$) AS orders_write;
SELECT regress_try($$SELECT tenancy.require_permission('products:read')$$) AS products_read;
SELECT regress_try($$SELECT tenancy.require_permission('products:write')$$) AS products_write;
SELECT regress_try($$SELECT tenancy.require_role('staff')$$) AS role_staff;
SELECT regress_try($$SELECT tenancy.require_role('manager')$$) AS role_manager;
-- Unknown names are bad arguments, also for checks that would pass.
SELECT regress_try($$SELECT tenancy.require_permission('orders:refund')$$) AS unknown_permission;
SELECT regress_try($$SELECT tenancy.has_permission('orders')$$) AS malformed_permission;
SELECT regress_try($$SELECT tenancy.require_permission('orders:*')$$) AS wildcard_is_no_permission;
SELECT regress_try($$SELECT tenancy.has_role('boss')$$) AS unknown_role;
SELECT regress_try($$SELECT tenancy.require_role('Staff')$$) AS role_names_are_exact;
SELECT regress_try('SELECT tenancy.require_permission(NULL)') AS null_permission;
SELECT regress_try('SELECT tenancy.require_role(NULL)') AS null_role;
COMMIT;

-- A stranger cannot enter the shop; a platform admin can, and passes every check.
SELECT regress_try(format('SELECT tenancy.set_tenant(%L, %L)', :'shop', :'stranger')) AS stranger;
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'padmin');
SELECT regress_try($$SELECT tenancy.require_permission('tenant:delete')$$) AS platform_admin_delete;
SELECT regress_try($$SELECT tenancy.require_role('owner')$$) AS platform_admin_owner;
COMMIT;

-- Permissions the application adds: a grant by exact name, and through a resource:* grant.
RESET ROLE;
INSERT INTO tenancy.permissions (name, description) VALUES
    ('costs:read', 'see cost prices'), ('orders:refund', 'refund an order');
INSERT INTO tenancy.role_permissions (role, permission) VALUES ('staff', 'costs:read');
SET ROLE regress_rbac_app;
BEGIN;
CALL regress_fill_permissions('owner', :'shop', :'owner', ARRAY['costs:read', 'orders:refund']);
CALL regress_fill_permissions('manager', :'shop', :'manager', ARRAY['costs:read', 'orders:refund']);
CALL regress_fill_permissions('staff', :'shop', :'staff', ARRAY['costs:read', 'orders:refund']);
CALL regress_fill_permissions('viewer', :'shop', :'viewer', ARRAY['costs:read', 'orders:refund']);
SELECT item AS permission,
       bool_or(ok) FILTER (WHERE who = 'owner') AS owner,
       bool_or(ok) FILTER (WHERE who = 'manager') AS manager,
       bool_or(ok) FILTER (WHERE who = 'staff') AS staff,
       bool_or(ok) FILTER (WHERE who = 'viewer') AS viewer
  FROM regress_grid
 GROUP BY item
 ORDER BY item;
ROLLBACK;

------------------------------------------------------------------------------------------
-- The members view: the current tenant's members, for actors holding members:read.
------------------------------------------------------------------------------------------
SELECT regress_try('SELECT * FROM tenancy.members') AS no_context;
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'viewer');
SELECT regress_mask(user_id::text) AS member, email, role FROM tenancy.members ORDER BY email;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'staff');
SELECT count(*) AS staff_sees FROM tenancy.members;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'shop');
SELECT count(*) AS tenant_only_sees FROM tenancy.members;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'vown', :'viewer');
SELECT regress_mask(user_id::text) AS member, email, role FROM tenancy.members ORDER BY email;
-- The memberships and tenants tables show the current tenant's rows only.
SELECT regress_mask(tenant_id::text) AS tenant, regress_mask(user_id::text) AS member, role
  FROM tenancy.memberships ORDER BY 2;
SELECT regress_mask(id::text) AS tenant, name FROM tenancy.tenants ORDER BY 1;
COMMIT;

------------------------------------------------------------------------------------------
-- set_member_role() and remove_member(): members:write, rank limits, the last owner.
------------------------------------------------------------------------------------------
-- A second viewer and a second staff member to work on.
SELECT tenancy.create_user('rbac-viewer2@example.com') AS viewer2 \gset
SELECT tenancy.create_user('rbac-staff2@example.com') AS staff2 \gset
INSERT INTO regress_ids (id, label) VALUES (:'viewer2', 'viewer2'), (:'staff2', 'staff2');
RESET ROLE;
INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES
    (:'shop', :'viewer2', 'viewer'), (:'shop', :'staff2', 'staff');
SET ROLE regress_rbac_app;

-- Without a context, or without an actor.
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'staff')) AS no_context;
SELECT regress_try(format('SELECT tenancy.remove_member(%L)', :'viewer2')) AS no_context_remove;
BEGIN;
SELECT tenancy.set_tenant(:'shop');
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'staff')) AS tenant_only;
COMMIT;

-- Staff and viewers lack members:write.
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'staff');
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'staff')) AS staff_promotes;
SELECT regress_try(format('SELECT tenancy.remove_member(%L)', :'viewer2')) AS staff_removes;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'viewer');
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'viewer')) AS viewer_sets;
COMMIT;

-- A manager: up to their own rank, never on a member who outranks them.
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'manager');
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'staff')) AS viewer2_to_staff;
-- "Above the caller's rank" is refused; the caller's own rank is not above it.
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'manager')) AS viewer2_to_manager;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'staff')) AS equal_rank_back_to_staff;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'admin')) AS viewer2_to_admin;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'owner')) AS viewer2_to_owner;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'admin', 'viewer')) AS demote_admin;
SELECT regress_try(format('SELECT tenancy.remove_member(%L)', :'admin')) AS remove_admin;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'owner', 'viewer')) AS demote_owner;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'staff2', 'viewer')) AS staff2_to_viewer;
SELECT regress_try(format('SELECT tenancy.remove_member(%L)', :'staff2')) AS remove_staff2;
-- Bad arguments.
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'boss')) AS unknown_role;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, NULL)', :'viewer2')) AS null_role;
SELECT regress_try($$SELECT tenancy.set_member_role(NULL, 'staff')$$) AS null_user;
SELECT regress_try('SELECT tenancy.remove_member(NULL)') AS null_user_remove;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'stranger', 'staff')) AS not_a_member;
SELECT regress_try(format('SELECT tenancy.remove_member(%L)', :'stranger')) AS remove_not_a_member;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'owner');
SELECT regress_mask(user_id::text) AS member, role FROM tenancy.members ORDER BY email;
COMMIT;

-- An admin: everything below owner.
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'admin');
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'manager', 'staff')) AS demote_manager;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'manager', 'admin')) AS manager_to_admin;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'manager', 'owner')) AS manager_to_owner;
SELECT regress_try(format('SELECT tenancy.remove_member(%L)', :'owner')) AS remove_owner;
COMMIT;

-- The owner: a tenant keeps at least one owner.
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'owner');
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'owner', 'admin')) AS demote_last_owner;
SELECT regress_try(format('SELECT tenancy.remove_member(%L)', :'owner')) AS remove_last_owner;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'owner', 'owner')) AS owner_to_owner;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'admin', 'owner')) AS admin_to_owner;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'owner', 'admin')) AS demote_self_with_two_owners;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'admin');
SELECT tenancy.context() ->> 'role' AS admin_is_now;
SELECT regress_try(format('SELECT tenancy.remove_member(%L)', :'admin')) AS remove_self_last_owner;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'owner', 'owner')) AS restore_owner;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'admin', 'admin')) AS back_to_admin;
COMMIT;

-- A platform admin passes the rank checks, but cannot remove the last owner either.
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'padmin');
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'owner')) AS padmin_grants_owner;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'viewer2', 'viewer')) AS padmin_demotes_owner;
SELECT regress_try(format('SELECT tenancy.remove_member(%L)', :'owner')) AS padmin_removes_last_owner;
COMMIT;

-- A role change applies at the next statement, also inside the transaction that made it.
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'manager');
SELECT tenancy.has_role('manager') AS is_manager, tenancy.has_permission('products:write') AS products_write;
SELECT tenancy.set_member_role(:'manager', 'viewer');
SELECT tenancy.has_role('manager') AS is_manager, tenancy.has_permission('products:write') AS products_write,
       tenancy.context() ->> 'role' AS role;
SELECT regress_try(format('SELECT tenancy.set_member_role(%L, %L)', :'manager', 'manager')) AS promote_self_back;
ROLLBACK;

-- The final membership of the shop.
BEGIN;
SELECT tenancy.set_tenant(:'shop', :'owner');
SELECT regress_mask(user_id::text) AS member, email, role FROM tenancy.members ORDER BY email;
COMMIT;

RESET ROLE;
DROP ROLE regress_rbac_app;
